"""The instruction-cache probe: what a task's code costs when it is not cached.

    python -m bench.icache --build     # the cubin (.bundles/bench/icache.cubin), here: NVRTC, nvJitLink
    python -m bench.icache [--cubin PATH] [--out JSON]    # on the GPU machine: a table (and the JSON)

A worker of the persistent kernel calls a different task function at every
task (five a layer, 6-30 KB of SASS each; bench/NOTES.md round 19). The probe
has FUNCTIONS straight-line functions of KB_PER_FUNCTION KB each (eight
independent IMAD chains: about one instruction a cycle when the code is
cached) and calls the first k of them in rotation, thread 0 timing each call
with clock64; k sweeps the working set from one function to all of them, on
one SM and on every SM at once, with one warp and with eight. Where cycles per
KB jump is the size of the cache that holds the code; the jump is what a miss
costs per KB of code run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
from pathlib import Path

import numpy as np

from bench.build import ROOT

DEFAULT_CUBIN = ROOT / "icache.cubin"
FUNCTIONS, KB_PER_FUNCTION = 64, 4
SWEEP = (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64)
ROUNDS = 12                       # calls of each function; the first two are not counted
THREADS = (32, 256)
INSTRUCTIONS_PER_KB = 64          # 16-byte SASS instructions
CHAINS = 8                        # independent IMAD chains per function


def source(functions: int = FUNCTIONS, kb: int = KB_PER_FUNCTION) -> str:
    """CUDA C of the probe: `functions` functions f0.. of `kb` KB of IMADs, and the kernel."""
    mads = "\\n\\t".join(f"mad.lo.u32 %{r}, %{r}, %{CHAINS}, %{CHAINS + 1};"
                         for _ in range(kb * INSTRUCTIONS_PER_KB // CHAINS) for r in range(CHAINS))
    registers = ", ".join(f'"+r"(r{r})' for r in range(CHAINS))
    lines = ['extern "C" {']
    for f in range(functions):
        lines += [f"__device__ __noinline__ unsigned f{f}(unsigned a, unsigned m, unsigned c) {{",
                  "  unsigned " + ", ".join(f"r{r} = a + {r}" for r in range(CHAINS)) + ";",
                  f'  asm volatile("{mads}" : {registers} : "r"(m), "r"(c));',
                  "  return " + " ^ ".join(f"r{r}" for r in range(CHAINS)) + ";", "}"]
    lines.append("__device__ unsigned call(int f, unsigned a, unsigned m, unsigned c) {\n  switch (f) {")
    lines += [f"  case {f}: return f{f}(a, m, c);" for f in range(functions)]
    lines.append("  }\n  return 0;\n}")
    lines.append("""
// cycles[(block * rounds + round) * k + f]: thread 0's call of function f.
__global__ void icache_probe(long long* cycles, unsigned* sink, int k, int rounds, unsigned m, unsigned c) {
  unsigned acc = threadIdx.x;
  for (int round = 0; round < rounds; ++round)
    for (int f = 0; f < k; ++f) {
      __syncthreads();
      const long long t0 = clock64();
      acc += call(f, acc, m, c);
      const long long t1 = clock64();
      if (threadIdx.x == 0) cycles[((long long)blockIdx.x * rounds + round) * k + f] = t1 - t0;
    }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;   // keeps the calls
}
}""")
    return "\n".join(lines) + "\n"


def build(path: Path, arch: str = "sm_90", functions: int = FUNCTIONS, kb: int = KB_PER_FUNCTION) -> Path:
    """The probe as a cubin at `path`, compiled here (NVRTC, nvJitLink), like the runtime."""
    from mpk.runtime import build as runtime_build
    ltoir = runtime_build.compile_ltoir(source(functions, kb), "icache_probe.cu", arch, {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(runtime_build.link(ltoir, [], arch, ltoir_name="icache_probe.ltoir"))
    return path


def measure(cubin: Path, sweep: tuple[int, ...] = SWEEP, rounds: int = ROUNDS) -> dict:
    """Median cycles of a call, per working set, SM count and CTA size (device 0's primary context)."""
    from mpk.runtime import loader
    driver = loader._driver()
    props = loader.device_properties(0)
    context = loader._check(driver.cuDevicePrimaryCtxRetain(props["device"]), "cuDevicePrimaryCtxRetain")
    module, buffers = None, []
    try:
        loader._check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        image = np.frombuffer(Path(cubin).read_bytes(), np.uint8)
        module = loader._check(driver.cuModuleLoadData(image.ctypes.data), f"cuModuleLoadData({cubin})")
        kernel = loader._check(driver.cuModuleGetFunction(module, b"icache_probe"), "cuModuleGetFunction")
        sms = props["num_sms"]
        buffers.append(cycles := loader.DeviceBuffer(sms * rounds * max(sweep) * 8, "cycles"))
        buffers.append(sink := loader.DeviceBuffer(sms * max(THREADS) * 4, "sink"))
        rows = []
        for k in sweep:
            row = {"functions": k, "working_set_kb": k * KB_PER_FUNCTION, "cycles_per_call": {}}
            for grid in (1, sms):
                for threads in THREADS:
                    args = [ctypes.c_uint64(cycles.ptr), ctypes.c_uint64(sink.ptr), ctypes.c_int(k),
                            ctypes.c_int(rounds), ctypes.c_uint(2654435761), ctypes.c_uint(12345)]
                    pointers = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
                    loader._check(driver.cuLaunchKernel(kernel, grid, 1, 1, threads, 1, 1, 0, 0,
                                                        ctypes.addressof(pointers), 0), "cuLaunchKernel")
                    loader._check(driver.cuCtxSynchronize(), "icache_probe")
                    samples = cycles.download(np.int64, grid * rounds * k).reshape(grid, rounds, k)[:, 2:, :]
                    row["cycles_per_call"][f"{grid}x{threads}"] = float(np.median(samples))
            rows.append(row)
        return {"device": props["name"], "sms": sms, "kb_per_function": KB_PER_FUNCTION, "rows": rows}
    finally:   # the context may outlive the probe (torch's, in a benchmark's process)
        for buffer in buffers:
            driver.cuMemFree(buffer.ptr)
        if module is not None:
            driver.cuModuleUnload(module)
        driver.cuDevicePrimaryCtxRelease(props["device"])


def table(result: dict) -> str:
    kb = result["kb_per_function"]
    columns = list(result["rows"][0]["cycles_per_call"])
    lines = [f"{result['device']}: cycles per call of a {kb} KB function, k functions in rotation "
             f"(median, thread 0; cycles per KB in brackets); CTAs x threads:",
             f"{'k':>3} {'KB':>5} | " + " | ".join(f"{c:>16}" for c in columns)]
    for row in result["rows"]:
        cells = [f"{v:9.0f} ({v / kb:4.0f})" for v in row["cycles_per_call"].values()]
        lines.append(f"{row['functions']:>3} {row['working_set_kb']:>5} | " + " | ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="compile the probe into --cubin (no GPU needed)")
    parser.add_argument("--cubin", type=Path, default=DEFAULT_CUBIN)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.build:
        print(f"{build(args.cubin)}: the instruction-cache probe")
        return 0
    result = measure(args.cubin)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

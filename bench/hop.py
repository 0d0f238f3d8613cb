"""The hop microbenchmark: what one dependency hop costs on this GPU, apart from any model.

    python -m bench.build --hop-only          # the cubin, on the compiling machine (NVRTC, nvJitLink)
    python -m bench.hop [--cubin PATH]        # on the GPU machine: a table and the JSON

A persistent grid of one CTA per SM (bench/hop_probe.cu) runs dependent stages:
in stage s every CTA waits until all CTAs bumped a counter for stage s-1
(`red.release.gpu` / `ld.acquire.gpu`), reads its own slice of stage s's
weights (never in L2), then bumps the counter. Each slice size runs twice:
its loads issued after the wait, and its weights already streaming into
shared memory (cp.async.bulk) before the wait, as the runtime's weight ring
does. Also measured: the one-way flag latency between two SMs (ping-pong).

The time a dependent stage costs beyond streaming its bytes with the weights
in flight is the per-stage overhead, `stage_overhead_us`: bench.decode
multiplies it by a step's dependent stages to give the limit of a step,
floor + overhead x stages. `measure()` runs in bench.decode's process (the
driver's primary context, which torch uses too) or alone.
"""

from __future__ import annotations

import argparse
import ctypes
import json
from pathlib import Path

import numpy as np

from bench.build import ROOT
from mpk.runtime import loader

SOURCE = Path(__file__).resolve().with_name("hop_probe.cu")
DEFAULT_CUBIN = ROOT / "hop.cubin"
KERNELS = ("hop_ping_pong", "hop_stages_load", "hop_stages_prefetch")
BYTES_PER_CTA = (32 << 10, 128 << 10, 192 << 10)
THREADS = 512                 # hop_probe.cu's kMaxThreads
MAX_SLOTS = 32                # hop_probe.cu's kMaxSlots
CHUNK_BYTES = 16 << 10        # one bulk copy and one mbarrier per chunk of the prefetch ring
WEIGHT_BYTES = 1 << 30        # the slices cycle through 1 GiB: 20x the H200's L2
STAGES, ROUNDS, REPEATS = 400, 2000, 5


def build(path: Path = DEFAULT_CUBIN, arch: str = "sm_90") -> Path:
    """hop_probe.cu as a cubin at `path`, compiled here (NVRTC, nvJitLink), like the runtime."""
    from mpk.runtime import build as runtime_build
    headers = {name: text for name, text in runtime_build.runtime_source().items() if name == "mpk_sync.h"}
    ltoir = runtime_build.compile_ltoir(SOURCE.read_text(), SOURCE.name, arch, headers)
    cubin = runtime_build.link(ltoir, [], arch, ltoir_name="hop_probe.ltoir")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cubin)
    return path


def ring_geometry(bytes_per_cta: int, max_dynamic_smem: int) -> tuple[int, int]:
    """(chunk bytes, slots) of the prefetch ring: two stages of chunks, or as many as fit."""
    chunk = min(CHUNK_BYTES, bytes_per_cta)
    if bytes_per_cta % chunk:
        raise ValueError(f"bytes_per_cta {bytes_per_cta} is not a multiple of {chunk}")
    return chunk, min(2 * bytes_per_cta // chunk, max_dynamic_smem // chunk, MAX_SLOTS)


class HopProbe:
    """hop_probe.cu loaded in device 0's primary context (retained, as loader.Session does)."""

    def __init__(self, cubin: Path = DEFAULT_CUBIN):
        driver = loader._driver()
        props = loader.device_properties(0)
        self.name, self.sms = props["name"], props["num_sms"]
        self.device = props["device"]
        self.context = loader._check(driver.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        self.buffers: list[loader.DeviceBuffer] = []
        self.module = self.events = None
        try:
            loader._check(driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
            image = np.frombuffer(Path(cubin).read_bytes(), np.uint8)
            self.module = loader._check(driver.cuModuleLoadData(image.ctypes.data),
                                        f"cuModuleLoadData({cubin}: built with `python -m bench.build --hop-only`?)")
            self.functions = {name: loader._check(driver.cuModuleGetFunction(self.module, name.encode()),
                                                  f"cuModuleGetFunction({name})") for name in KERNELS}
            # Every kernel asks for all the shared memory a CTA may have: one CTA per SM, never two.
            F = driver.CUfunction_attribute
            self.smem = {}
            for name, function in self.functions.items():
                static = loader._check(driver.cuFuncGetAttribute(F.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, function),
                                       "cuFuncGetAttribute(shared size)")
                self.smem[name] = props["max_smem_per_block"] - static
                loader._check(driver.cuFuncSetAttribute(function, F.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                        self.smem[name]), f"cuFuncSetAttribute({name})")
                resident = loader._check(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                    function, THREADS, self.smem[name]), "cuOccupancyMaxActiveBlocksPerMultiprocessor")
                if resident != 1:
                    raise loader.LoaderError(f"{name}: {resident} CTAs per SM, the probe needs exactly 1")
            self.events = [loader._check(driver.cuEventCreate(driver.CUevent_flags.CU_EVENT_DEFAULT),
                                         "cuEventCreate") for _ in range(2)]
            self.flags = self._buffer(8, "counter and failure flag")        # [counter, failed]
            self.pong = self._buffer(24, "ping-pong result")
            self.sink = self._buffer(self.sms * THREADS * 4, "reductions")
            self.weights = self._buffer(WEIGHT_BYTES, "weights")
            loader._check(driver.cuMemsetD32(self.weights.ptr, 0x9E3779B9, WEIGHT_BYTES // 4), "cuMemsetD32")
        except BaseException:
            self.close()
            raise

    def _buffer(self, nbytes: int, what: str) -> loader.DeviceBuffer:
        self.buffers.append(loader.DeviceBuffer(nbytes, what))
        return self.buffers[-1]

    def _run(self, name: str, grid: int, threads: int, *args: ctypes._SimpleCData) -> float:
        """Seconds of one launch between CUDA events, the counter and failure flag zeroed first."""
        driver = loader._driver()
        loader._check(driver.cuMemsetD32(self.flags.ptr, 0, 2), "cuMemsetD32(flags)")
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        loader._check(driver.cuEventRecord(self.events[0], 0), "cuEventRecord")
        loader._check(driver.cuLaunchKernel(self.functions[name], grid, 1, 1, threads, 1, 1, self.smem[name], 0,
                                            ctypes.addressof(pointers), 0), f"cuLaunchKernel({name})")
        loader._check(driver.cuEventRecord(self.events[1], 0), "cuEventRecord")
        loader._check(driver.cuEventSynchronize(self.events[1]), name)
        if self.flags.download(np.uint32, 2)[1]:
            raise loader.LoaderError(f"{name}: a spin-wait timed out (were all {grid} CTAs resident?)")
        return loader._check(driver.cuEventElapsedTime(*self.events), "cuEventElapsedTime") / 1e3

    def flag_latency_ns(self, rounds: int = ROUNDS, repeats: int = REPEATS) -> tuple[float, list[int]]:
        """(one-way ns, median over launches; the two SMs) of the ping-pong."""
        u64, i32 = ctypes.c_uint64, ctypes.c_int
        one_way = []
        for _ in range(repeats):
            self._run("hop_ping_pong", 2, 32, u64(self.flags.ptr), u64(self.flags.ptr + 4), i32(rounds // 10),
                      i32(rounds), u64(self.pong.ptr))
            ns, *sms = self.pong.download(np.uint64, 3).tolist()
            one_way.append(ns / (2 * rounds))
        if sms[0] == sms[1]:
            raise loader.LoaderError(f"the ping-pong CTAs shared SM {sms[0]}")
        return float(np.median(one_way)), sms

    def us_per_stage(self, bytes_per_cta: int, prefetch: bool, stages: int = STAGES, repeats: int = REPEATS) -> float:
        """Median over launches (after one untimed) of a launch's time / stages."""
        if bytes_per_cta % (16 * THREADS):
            raise ValueError(f"bytes_per_cta must be a multiple of {16 * THREADS}")
        u64, i32 = ctypes.c_uint64, ctypes.c_int
        args = [u64(self.weights.ptr), u64(WEIGHT_BYTES // bytes_per_cta), u64(self.flags.ptr),
                u64(self.flags.ptr + 4), i32(stages), i32(bytes_per_cta)]
        name = "hop_stages_prefetch" if prefetch else "hop_stages_load"
        if prefetch:
            args += [i32(v) for v in ring_geometry(bytes_per_cta, self.smem[name])]
        args.append(u64(self.sink.ptr))
        times = [self._run(name, self.sms, THREADS, *args) for _ in range(repeats + 1)][1:]
        return float(np.median(times)) / stages * 1e6

    def close(self) -> None:
        driver = loader._driver()
        for event in self.events or ():
            driver.cuEventDestroy(event)
        for buffer in self.buffers:
            driver.cuMemFree(buffer.ptr)
        self.events, self.buffers = None, []
        if self.module is not None:
            driver.cuModuleUnload(self.module)
            self.module = None
        if self.context is not None:
            driver.cuDevicePrimaryCtxRelease(self.device)
            self.context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def measure(cubin: Path = DEFAULT_CUBIN, bandwidth: float | None = None, stages: int = STAGES,
            rounds: int = ROUNDS, bytes_per_cta: tuple[int, ...] = BYTES_PER_CTA) -> dict:
    """The flag latency and, per slice size and mode, the time of a dependent stage.

    `bandwidth` (bytes/s): the read bandwidth measured in the same run
    (bench.decode's); None measures it here (mpk.runtime.bandwidth.device_bandwidth,
    with torch). A row's fraction_of_bandwidth is the stage's bytes (all SMs) / its
    time / bandwidth. stage_overhead_us, the per-stage overhead: median over the
    prefetch rows of the stage's time minus the time to stream its bytes at `bandwidth`."""
    with HopProbe(cubin) as probe:
        if bandwidth is None:
            from mpk.runtime.bandwidth import device_bandwidth
            bandwidth = device_bandwidth()
        one_way_ns, flag_sms = probe.flag_latency_ns(rounds)
        rows, overheads = [], []
        for size in bytes_per_cta:
            for prefetch in (False, True):
                us = probe.us_per_stage(size, prefetch, stages)
                stream_us = probe.sms * size / bandwidth * 1e6
                rows.append({"bytes_per_cta": size, "prefetch": prefetch, "us_per_stage": us,
                             "fraction_of_bandwidth": stream_us / us})
                if prefetch:
                    overheads.append(us - stream_us)
        return {"device": probe.name, "sms": probe.sms, "bandwidth_bytes_per_s": bandwidth, "stages": stages,
                "flag_one_way_ns": one_way_ns, "flag_sms": flag_sms, "rows": rows,
                "stage_overhead_us": float(np.median(overheads))}


def table(result: dict) -> str:
    lines = [f"{result['device']}: {result['sms']} SMs, bandwidth {result['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s",
             f"one-way flag latency (SM {result['flag_sms'][0]} <-> SM {result['flag_sms'][1]}): "
             f"{result['flag_one_way_ns']:.0f} ns",
             f"{'per CTA':>8}  {'weights':<24} {'us/stage':>8}  {'of bandwidth':>12}"]
    for row in result["rows"]:
        mode = "in flight before the wait" if row["prefetch"] else "loaded after the wait"
        lines.append(f"{row['bytes_per_cta'] >> 10:>5} KB  {mode:<25}{row['us_per_stage']:>8.2f}  "
                     f"{row['fraction_of_bandwidth']:>11.0%}")
    lines.append(f"per-stage overhead beyond streaming (weights in flight): {result['stage_overhead_us']:.2f} us")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cubin", type=Path, default=DEFAULT_CUBIN)
    parser.add_argument("--stages", type=int, default=STAGES)
    args = parser.parse_args(argv)
    result = measure(args.cubin, stages=args.stages)
    print(table(result))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Compile the persistent runtime and link it with generated task code.

    runtime/*.cu --NVRTC (-dlto -rdc=true)--> LTO-IR  \
                                                       +--nvJitLink (-lto -O3)--> kernel.cubin
    MLIR task code -------------------------> PTX     /

With `caller_saves` the runtime goes in as PTX instead (`caller_saves_ptx`):
every call from the kernel into the task code then saves only what the caller
needs across it, instead of each callee saving the registers it uses
(bench/NOTES.md rounds 12-13: 5-18% faster at batch 1 on an H200; the
compiler's default, driver.Options.caller_saves).

Needs no GPU. The toolkit's libraries come from the `nvidia-cuda-nvrtc` and
`nvidia-nvjitlink` wheels (cuda-python loads them). A cubin linked here loads
on any driver of the same CUDA major version; NVRTC's own PTX and LTO-IR are
tied to its minor version, so they never leave this machine.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

RUNTIME_DIR = Path(__file__).resolve().parent
RUNTIME_SOURCES = ("mpk_runtime.h", "mpk_sync.h", "mpk_runtime.cu")
KERNEL_NAME = "mpk_persistent_kernel"
DISPATCH_NAME = "mpk_dispatch"
PREFETCH_DISPATCH_NAME = "mpk_prefetch_dispatch"   # the side lane's call while a task waits

# As measured on an H100: the generated code is a callee, not
# inlined, so without a cap it schedules loads late; 96 or 64 spill.
DEFAULT_MAX_REGISTERS = 128
# Registers a callee preserves for its caller under `caller_saves` (PTX 9.0's
# `.abi_preserve`): the fewest ptxas takes (0 and 1 overlap the return address).
PRESERVED_REGISTERS = 2
# A PTX `.func` header, definition or declaration, up to its parameter list's "(".
FUNC_HEADER = re.compile(r"^(?:\.(?:extern|visible|weak) )?\.func\s+(?:\([^)]*\)\s*)?(\w+)\s*\(", re.MULTILINE)


class BuildError(RuntimeError):
    """A compile or link step failed; the message carries the tool's log."""


@dataclasses.dataclass(frozen=True)
class Toolkit:
    nvrtc: tuple[int, int]
    nvjitlink: tuple[int, int]

    def describe(self) -> str:
        return f"NVRTC {self.nvrtc[0]}.{self.nvrtc[1]}, nvJitLink {self.nvjitlink[0]}.{self.nvjitlink[1]}"


def toolkit() -> Toolkit:
    """Versions of the NVRTC and nvJitLink libraries cuda-python found."""
    try:
        from cuda.bindings import nvjitlink, nvrtc
        err, major, minor = nvrtc.nvrtcVersion()
        _check_nvrtc(err, "nvrtcVersion")
        return Toolkit((major, minor), tuple(nvjitlink.version()))
    except BuildError:
        raise
    except Exception as e:  # library not found: say which wheel provides it
        raise BuildError(f"NVRTC/nvJitLink not available ({e.__class__.__name__}: {e}); "
                         "install the nvidia-cuda-nvrtc and nvidia-nvjitlink wheels") from None


def feature_arch(arch: str) -> str:
    """The target code is generated for: a Hopper (sm_90) bundle uses sm_90a, whose
    arch-specific instructions (wgmma, the tensor-memory copies of TMA) the prefill
    GEMMs need. Its cubin runs on sm_90 devices only, which is what `arch` says."""
    return "sm_90a" if arch == "sm_90" else arch


def runtime_source() -> dict[str, str]:
    """The runtime's sources by file name (a bundle ships them for a re-link)."""
    return {name: (RUNTIME_DIR / name).read_text() for name in RUNTIME_SOURCES}


def runtime_default(macro: str) -> int:
    """The default value of one of the runtime's switches (`#define NAME N` in
    mpk_runtime.cu): the one place a number the compiler also plans with is set."""
    found = re.search(rf"^#define {macro} (\d+)$", (RUNTIME_DIR / "mpk_runtime.cu").read_text(), re.MULTILINE)
    if found is None:
        raise KeyError(f"mpk_runtime.cu defines no {macro}")
    return int(found.group(1))


def compile_runtime(arch: str = "sm_90", defines: dict[str, str] | None = None,
                    caller_saves: bool = False) -> bytes | str:
    """The runtime as LTO-IR for `arch` (with `caller_saves`: as PTX whose call into
    the task code preserves almost nothing); `defines`: -DNAME=VALUE (the switches at the
    top of mpk_runtime.cu, for an A/B build)."""
    sources = runtime_source()
    headers = {n: s for n, s in sources.items() if n.endswith(".h")}
    code = compile_ltoir(sources["mpk_runtime.cu"], "mpk_runtime.cu", arch, headers, defines, ptx=caller_saves)
    return caller_saves_ptx(code, {DISPATCH_NAME, PREFETCH_DISPATCH_NAME}) if caller_saves else code


def caller_saves_ptx(ptx: str, functions: set[str] | None = None) -> str:
    """`ptx` with each `.func` header (definition or declaration) of `functions` (None:
    all) marked `.abi_preserve PRESERVED_REGISTERS`: a callee then saves none of the
    registers it uses, and each caller saves what it needs across the call. A task
    function saves 12-63 registers a thread on every call otherwise, through L1.

    The directive is PTX 9.0's (the version is raised to it); LLVM's NVPTX backend
    does not emit it yet, hence the text. Caller and callee must agree, so both sides
    of a call are marked here: nvJitLink only warns on stderr about a mismatch."""
    out, pos = [], 0
    for name, end in _func_headers(ptx):
        if functions is None or name in functions:
            out += [ptx[pos:end], f" .abi_preserve {PRESERVED_REGISTERS}"]
            pos = end
    out.append(ptx[pos:])
    text = "".join(out)
    version = re.search(r"^\.version (\d+)\.(\d+)$", text, re.MULTILINE)
    if version and (int(version.group(1)), int(version.group(2))) < (9, 0):
        text = text[:version.start()] + ".version 9.0" + text[version.end():]
    return text


def compile_ltoir(source: str, name: str, arch: str = "sm_90", headers: dict[str, str] | None = None,
                  defines: dict[str, str] | None = None, ptx: bool = False) -> bytes | str:
    """CUDA C++ `source` (file `name`; `headers` by the names it includes them by) as
    LTO-IR for `arch`, for `link` (or, with `ptx`, as PTX text). No CUDA headers:
    NVRTC's builtins and inline PTX only."""
    from cuda.bindings import nvrtc

    headers = headers or {}
    options = [f"-arch={feature_arch(arch)}", *([] if ptx else ["-dlto"]), "-rdc=true", "-std=c++17",
               "-default-device"]
    options += [f"-D{k}={v}" for k, v in (defines or {}).items()]

    err, program = nvrtc.nvrtcCreateProgram(
        source.encode(), name.encode(), len(headers),
        [s.encode() for s in headers.values()], [n.encode() for n in headers])
    _check_nvrtc(err, "nvrtcCreateProgram")
    try:
        (err,) = nvrtc.nvrtcCompileProgram(program, len(options), [o.encode() for o in options])
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise BuildError(f"NVRTC failed to compile {name} ({' '.join(options)}):\n"
                             f"{_nvrtc_log(program)}")
        if ptx:
            err, size = nvrtc.nvrtcGetPTXSize(program)
            _check_nvrtc(err, "nvrtcGetPTXSize")
            text = b" " * size
            (err,) = nvrtc.nvrtcGetPTX(program, text)
            _check_nvrtc(err, "nvrtcGetPTX")
            return text.rstrip(b"\0").decode()
        err, size = nvrtc.nvrtcGetLTOIRSize(program)
        _check_nvrtc(err, "nvrtcGetLTOIRSize")
        ltoir = b" " * size
        (err,) = nvrtc.nvrtcGetLTOIR(program, ltoir)
        _check_nvrtc(err, "nvrtcGetLTOIR")
        return ltoir
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def link(runtime_ltoir: bytes | str, task_ptx: list[tuple[str, str]], arch: str = "sm_90",
         max_registers: int = DEFAULT_MAX_REGISTERS, extra_options: tuple[str, ...] = (),
         ltoir_name: str = "mpk_runtime.ltoir") -> bytes:
    """One cubin from the runtime's LTO-IR (or another `compile_ltoir` output, named
    `ltoir_name` in errors; PTX text when it is a str) and the (name, PTX text) of the
    task code."""
    from cuda.bindings import nvjitlink

    lto = not isinstance(runtime_ltoir, str)
    options = [f"-arch={feature_arch(arch)}", *(["-lto"] if lto else []), "-O3", f"-maxrregcount={max_registers}",
               *extra_options]
    handle = nvjitlink.create(len(options), options)
    try:
        def add(kind, data: bytes, name: str):
            try:
                nvjitlink.add_data(handle, kind, data, len(data), name)
            except nvjitlink.nvJitLinkError as e:
                raise BuildError(f"nvJitLink refused {name}: {e}\n{_link_log(handle)}") from None

        if lto:
            add(nvjitlink.InputType.LTOIR, runtime_ltoir, ltoir_name)
        else:
            add(nvjitlink.InputType.PTX, runtime_ltoir.encode() + b"\0", ltoir_name.replace(".ltoir", ".ptx"))
        for name, ptx in task_ptx:
            add(nvjitlink.InputType.PTX, ptx.encode() + b"\0", name)
        try:
            nvjitlink.complete(handle)
        except nvjitlink.nvJitLinkError as e:
            raise BuildError(f"nvJitLink failed ({' '.join(options)}): {e}\n{_link_log(handle)}") from None
        cubin = bytearray(nvjitlink.get_linked_cubin_size(handle))
        nvjitlink.get_linked_cubin(handle, cubin)
        return bytes(cubin)
    finally:
        nvjitlink.destroy(handle)


def build_cubin(task_ptx: list[tuple[str, str]], arch: str = "sm_90",
                max_registers: int = DEFAULT_MAX_REGISTERS, defines: dict[str, str] | None = None,
                caller_saves: bool = False) -> bytes:
    """Runtime (compiled with `defines`) + task code, linked for `arch`; with
    `caller_saves`, every task call preserves almost no register (`caller_saves_ptx`)."""
    runtime = compile_runtime(arch, defines, caller_saves)
    if caller_saves:
        task_ptx = [(name, caller_saves_ptx(ptx)) for name, ptx in task_ptx]
        # Both sides of the calls between the modules must say it (a mismatch links, silently wrong).
        for name, ptx in [("the runtime", runtime), *task_ptx]:
            for function in (DISPATCH_NAME, PREFETCH_DISPATCH_NAME):
                if function in ptx and not _preserves(ptx, function):
                    raise BuildError(f"{name}: the header of {function} did not take .abi_preserve")
    return link(runtime, task_ptx, arch, max_registers)


def _func_headers(ptx: str):
    """(name, end) of each `.func` header in `ptx`, definition or declaration: `end` is
    just past its parameter list (`.param` lines, so no nested parentheses)."""
    for m in FUNC_HEADER.finditer(ptx):
        yield m.group(1), ptx.index(")", m.end()) + 1


def _preserves(ptx: str, function: str) -> bool:
    """Whether `ptx` has a `.func` header of `function` and every one carries `.abi_preserve`."""
    directive = re.compile(r" *\.abi_preserve\b")
    marked = [directive.match(ptx, end) is not None for name, end in _func_headers(ptx) if name == function]
    return bool(marked) and all(marked)


def _check_nvrtc(err, call: str) -> None:
    from cuda.bindings import nvrtc
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, text = nvrtc.nvrtcGetErrorString(err)
        raise BuildError(f"{call} failed: {text.decode() if isinstance(text, bytes) else text}")


def _nvrtc_log(program) -> str:
    from cuda.bindings import nvrtc
    err, size = nvrtc.nvrtcGetProgramLogSize(program)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS or size <= 1:
        return "(no log)"
    log = b" " * size
    nvrtc.nvrtcGetProgramLog(program, log)
    return log.rstrip(b"\0").decode(errors="replace")


def _link_log(handle) -> str:
    from cuda.bindings import nvjitlink
    try:
        size = nvjitlink.get_error_log_size(handle)
        log = bytearray(size)
        nvjitlink.get_error_log(handle, log)
        return log.rstrip(b"\0").decode(errors="replace").strip() or "(no log)"
    except Exception:  # the log itself is best effort
        return "(no log)"

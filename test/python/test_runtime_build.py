"""The runtime compiles with NVRTC and links with task PTX through nvJitLink, on the CPU."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("mlir")
from mpk.runtime import build, cubin, loader  # noqa: E402

import runtime_stub  # noqa: E402

try:
    build.toolkit()
except build.BuildError as e:  # pragma: no cover - depends on the wheels installed
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def runtime_ltoir():
    return build.compile_runtime("sm_90")


def test_links_with_the_stub_dispatch(runtime_ltoir):
    image = build.link(runtime_ltoir, [("stub.ptx", runtime_stub.stub_ptx())])
    functions = cubin.functions(image)
    assert build.KERNEL_NAME in functions and build.DISPATCH_NAME in functions
    assert functions[build.KERNEL_NAME] > 0


def test_missing_dispatch_is_a_link_error(runtime_ltoir):
    # ptxas names the first of the runtime's two calls into the task code it cannot resolve.
    with pytest.raises(build.BuildError, match="Unresolved extern function 'mpk_(prefetch_)?dispatch'"):
        build.link(runtime_ltoir, [])


CALLS = """.version 8.0
.target sm_90a
.address_size 64
.extern .func mpk_dispatch
(
	.param .b32 mpk_dispatch_param_0
)
;
.visible .func  (.param .b32 func_retval0) mpk_linear_1(
	.param .b64 mpk_linear_1_param_0
)
{
	ret;
}
"""


def test_caller_saves_marks_both_sides_of_a_call():
    """Every `.func` header named (a declaration too) takes `.abi_preserve N`, and the
    PTX version rises to 9.0, the directive's; headers not named are left alone."""
    marked = build.caller_saves_ptx(CALLS, {"mpk_dispatch"})
    assert f") .abi_preserve {build.PRESERVED_REGISTERS}\n;" in marked
    assert marked.startswith(".version 9.0\n") and marked.count(".abi_preserve") == 1
    assert build._preserves(marked, "mpk_dispatch") and not build._preserves(CALLS, "mpk_dispatch")
    every = build.caller_saves_ptx(CALLS)
    assert every.count(".abi_preserve") == 2 and build._preserves(every, "mpk_linear_1")


def test_caller_saves_links_with_the_stub_dispatch():
    """With `caller_saves` the runtime goes in as PTX, its declaration of the dispatcher
    marked as the task code's definition is, and the two link into a kernel."""
    runtime = build.compile_runtime("sm_90", caller_saves=True)
    assert isinstance(runtime, str) and build._preserves(runtime, build.DISPATCH_NAME)
    image = build.build_cubin([("stub.ptx", runtime_stub.stub_ptx())], "sm_90", caller_saves=True)
    functions = cubin.functions(image)
    assert build.KERNEL_NAME in functions and build.DISPATCH_NAME in functions


def test_a_compile_error_carries_the_nvrtc_log():
    with pytest.raises(build.BuildError, match="NVRTC failed"):
        build.compile_runtime("sm_90", defines={"mpk_dispatch": "("})


def _offsets(struct) -> list[tuple[str, int]]:
    return [(name, getattr(struct, name).offset) for name, _ in struct._fields_]


@pytest.mark.parametrize("struct", [loader.MpkLaunch, loader.MpkError])
def test_loader_structs_match_the_header(struct, tmp_path):
    """The ctypes mirrors have the C layout (the host compiler lays structs out
    as the device does): static_asserts compiled against mpk_runtime.h."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    checks = "".join(f"static_assert(offsetof({struct.__name__}, {name}) == {offset}, \"{name}\");\n"
                     for name, offset in _offsets(struct))
    checks += f"static_assert(sizeof({struct.__name__}) == {ctypes.sizeof(struct)}, \"size\");\n"
    source = tmp_path / "layout.cpp"
    source.write_text("#include <cstddef>\n#include \"mpk_runtime.h\"\n" + checks)
    result = subprocess.run([compiler, "-std=c++17", "-fsyntax-only", f"-I{build.RUNTIME_DIR}", str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shared_memory_plan():
    """[task cache][weight records][weight ring][stuck word][scratch]: the cache (32 B per
    task of the longest queue, whole 128-byte lines) only where it fits; scratch and the
    weight records (24 B per task) always; the ring if there is one; the 128 B of the
    stuck word if a task polls flagged buffers."""
    queues = np.array([0, 300, 301, 401])          # the longest queue: 300 tasks, 9600 B
    kernel = {"smem_bytes": 98304, "ring_bytes": 0, "ring_depth": 0}
    assert loader.shared_memory_plan(kernel, queues, 232448) == (300, 98304 + 7296 + 9600)
    assert loader.shared_memory_plan(kernel, queues, 232448, 128) == (300, 98304 + 7296 + 128 + 9600)
    with pytest.raises(loader.LoaderError, match=r"needs 232576 B .*: its longest queue holds 300 tasks, too many for one worker"):
        loader.shared_memory_plan({"smem_bytes": 225280, "ring_bytes": 0}, queues, 232448)
    staged = {"smem_bytes": 98304, "ring_bytes": 122880, "ring_depth": 4}
    assert loader.shared_memory_plan(staged, queues, 232448) == (0, 98304 + 122880 + 7296)
    small_ring = {"smem_bytes": 98304, "ring_bytes": 65536, "ring_depth": 2}
    assert loader.shared_memory_plan(small_ring, queues, 232448) == (300, 98304 + 65536 + 7296 + 9600)
    with pytest.raises(loader.LoaderError, match="needs 269440 B of shared memory"):
        loader.shared_memory_plan({"smem_bytes": 131072, "ring_bytes": 131072, "ring_depth": 2}, queues, 232448)
    with pytest.raises(loader.LoaderError, match="weight ring holds 17 tasks, the runtime 1 to 16"):
        loader.shared_memory_plan({"smem_bytes": 1024, "ring_bytes": 4096, "ring_depth": 17}, queues, 232448)

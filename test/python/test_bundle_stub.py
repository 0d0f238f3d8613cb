"""Bundles on the CPU: the stub bundle's contents, and the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mlir")
from mpk.runtime import build, bundle, cubin, loader, tables  # noqa: E402

import runtime_stub  # noqa: E402

try:
    build.toolkit()
except build.BuildError as e:  # pragma: no cover
    pytest.skip(str(e), allow_module_level=True)


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    return runtime_stub.build_stub_bundle(tmp_path_factory.mktemp("b") / "stub.mpk", num_sms=8)


def test_stub_bundle_contents(stub):
    b = bundle.read(stub)
    assert {build.KERNEL_NAME, build.DISPATCH_NAME} <= set(cubin.functions(b.cubin))
    assert ".visible .func mpk_dispatch" in (stub / bundle.PTX).read_text()
    assert '"mpk.schedule"' in (stub / bundle.TASK_IR).read_text()
    assert (stub / "runtime" / "mpk_runtime.cu").read_text() == build.runtime_source()["mpk_runtime.cu"]
    k = b.kernel
    assert (k["arch"], k["num_sms"], k["threads"], k["steps"], k["num_tasks"]) == ("sm_90", 8, 128, 3, 12)
    assert b.plan["toolkit"].startswith("NVRTC")
    assert b.buffer("b")["per_step"] and b.buffer("a")["space"] == "workspace"
    assert b.tables["queue_offsets"].shape == (9,)
    for name, info in b.plan["tables"].items():
        assert list(b.tables[name].shape) == info["shape"]


def test_refuses_to_overwrite_a_non_bundle(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(bundle.BundleError, match="not a bundle"):
        bundle.write(tmp_path / "precious", plan={}, tables={}, cubin=b"", ptx="", task_ir="",
                     runtime_sources={})


def test_rejects_other_formats(stub, tmp_path):
    import shutil
    other = shutil.copytree(stub, tmp_path / "other.mpk")
    plan = json.loads((other / bundle.PLAN).read_text())
    plan["format"] = "mpk-bundle/99"
    (other / bundle.PLAN).write_text(json.dumps(plan))
    with pytest.raises(bundle.BundleError, match="mpk-bundle/99"):
        bundle.read(other)


def mpk(*args):
    # As the `mpk` console script does (python -m would load mpk.cli twice).
    command = "import sys; from mpk.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", command, *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("args, message", [
    (["run", "/nonexistent.mpk"], "is not an mpk bundle"),
    (["run", "STUB", "--steps", "0"], "--steps must be positive"),
    (["run", "STUB", "--backend", "interp"], "unknown task kind 'produce'"),   # the interpreter verifies tasks.mlir
    (["compile", "--model", "no-such-model", "-o", "x.mpk"], "unknown model 'no-such-model'"),
    (["compile", "/nonexistent.mlir", "-o", "x.mpk"], "no such file"),
    (["compile", "--model", "qwen3-tiny", "--threads", "100", "-o", "x.mpk"], "multiple of 32"),
])
def test_cli_errors_are_one_line(stub, args, message):
    result = mpk(*[stub if a == "STUB" else a for a in args])
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_run_without_gpu_says_so(stub):
    if loader.gpu_count():
        pytest.skip("there is a GPU here")
    result = mpk("run", stub)
    assert result.returncode == 1 and "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_tables_round_trip(stub, tmp_path):
    t = tables.load(stub / bundle.TABLES)
    tables.save(tmp_path / "t.npz", t)
    again = tables.load(tmp_path / "t.npz")
    for name in tables.TABLES:
        np.testing.assert_array_equal(t[name], again[name])

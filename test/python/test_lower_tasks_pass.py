"""mpk-lower-tasks as a pass: fn ids, sharing, kernel attributes, errors."""

from __future__ import annotations

import pytest
from mlir import ir, passmanager

from kind_cases import Case, cases, module_ir
from mpk.lowering.mpk_lower_tasks import LowerTasks, lower_to_ptx


def _lower(module, **options):
    pm = passmanager.PassManager()
    pm.add(LowerTasks(**options), name=LowerTasks.name)
    pm.run(module.operation)


def _ops(module, name):
    return [op for op in module.body.operations if op.name == name]


def _linear(name, n=1024, k=512, tn=64):
    return Case(name, "linear", (1, n // tn), (1, tn),
                [("x", (1, k), "bf16", "workspace"), ("w", (n, k), "bf16", "weight")],
                [("y", (1, n), "bf16", "workspace")])


def test_equal_groups_share_one_function(ctx):
    module = ir.Module.parse(module_ir([_linear("l0"), _linear("l5"), _linear("wide", n=2048),
                                        _linear("l9")]))
    _lower(module)
    fns = {ir.StringAttr(op.attributes["sym_name"]).value: ir.IntegerAttr(op.attributes["fn"]).value
           for op in _ops(module, "mpk.tasks")}
    assert fns == {"l0": 0, "l5": 0, "wide": 1, "l9": 0}
    gpu_module = _ops(module, "gpu.module")[0]
    names = [ir.StringAttr(f.attributes["sym_name"]).value
             for f in gpu_module.regions[0].blocks[0].operations]
    assert names == ["mpk_linear_0", "mpk_linear_1", "mpk_dispatch", "mpk_prefetch_dispatch"]


def test_kernel_records_threads_and_shared_memory(ctx):
    module = ir.Module.parse(module_ir([_linear("l0")]))
    _lower(module, threads=256, smem_bytes=32768)
    kernel = _ops(module, "mpk.kernel")[0]
    assert ir.IntegerAttr(kernel.attributes["threads"]).value == 256
    assert ir.IntegerAttr(kernel.attributes["smem_bytes"]).value == 32768


def test_lower_to_ptx_runs_the_pass_once(ctx):
    module = ir.Module.parse(module_ir([_linear("l0")]))
    ptx = lower_to_ptx(module)
    assert ".visible .func mpk_dispatch(" in ptx and ".version 8.0" in ptx
    assert len(_ops(module, "gpu.module")) == 1  # left for the tables; not lowered in place
    assert lower_to_ptx(module) == ptx


def _diagnostics(module, **options):
    with pytest.raises(ir.MLIRError) as info:
        _lower(module, **options)
    return " | ".join(d.message for d in info.value.error_diagnostics)


def test_unsupported_group_is_reported_at_its_location(ctx):
    case = next(c for c in cases() if c.name == "attention")
    case.params = {**case.params, "head_dim": 512}
    case.tile, case.grid = (1, 1024), (2, 2)
    module = ir.Module.parse(module_ir([case]))
    with pytest.raises(ir.MLIRError) as info:
        _lower(module)
    (diag,) = info.value.error_diagnostics
    assert "cannot lower 'attention' group @attention: head_dim 512" in diag.message
    assert "loc(" in str(diag.location) and ":" in str(diag.location)


def test_bad_thread_count(ctx):
    assert "threads=100" in _diagnostics(ir.Module.parse(module_ir([_linear("l0")])), threads=100)

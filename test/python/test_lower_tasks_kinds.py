"""Every task kind lowers alone to PTX with its function and the dispatcher."""

from __future__ import annotations

import re

import pytest
from mlir import ir

from kind_cases import SMEM_BYTES, THREADS, THREADS_OF, cases, module_ir
from mpk.lowering.mpk_lower_tasks import lower_to_ptx

KIND_CASES = [c for c in cases() if not c.bench]


def _function(ptx: str, name: str) -> str:
    """The body of one `.func` of a PTX text."""
    start = ptx.index(f".visible .func {name}(")
    end = ptx.find(".visible .func", start + 1)
    return ptx[start:end if end >= 0 else len(ptx)]


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.name)
def test_kind_lowers_to_ptx(ctx, case):
    module = ir.Module.parse(module_ir([case]))
    ptx = lower_to_ptx(module, smem_bytes=SMEM_BYTES[case.program],
                       threads=THREADS_OF.get(case.program, THREADS))
    assert ".target sm_90" in ptx
    body = _function(ptx, f"mpk_{case.kind}_0")
    dispatch = _function(ptx, "mpk_dispatch")
    assert f"mpk_{case.kind}_0" in dispatch and "call" in dispatch
    if case.name.startswith(("gemm", "gate_up")) and case.program != "decode":
        # Weight and activation tiles arrive by TMA and feed wgmma from shared memory.
        assert "cp.async.bulk.tensor.2d" in body and "wgmma.mma_async" in body
    elif not case.name.endswith("_odd"):   # narrow shapes
        # Rows move in 16-byte (rope's half heads of 64 bytes: 8-byte) vectors.
        assert re.search(r"(ld|st)\.(global|shared)(\.nc)?\.v[24]\.b32", body), body[:2000]


def test_linear_streams_weights_in_16_byte_read_only_loads(ctx):
    case = next(c for c in KIND_CASES if c.name == "linear_ragged")   # batch 1: the CUDA cores
    body = _function(lower_to_ptx(ir.Module.parse(module_ir([case]))), "mpk_linear_0")
    assert body.count("ld.global.nc.v4.b32") >= 4  # UNROLL loads in flight
    assert "ld.shared.v4.b32" in body  # x staged in shared memory
    assert "shfl.sync.bfly" in body


def test_batched_linear_runs_on_the_tensor_cores(ctx):
    case = next(c for c in KIND_CASES if c.name == "linear_b8_mma")
    body = _function(lower_to_ptx(ir.Module.parse(module_ir([case]))), "mpk_linear_0")
    assert body.count("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") >= 8
    assert body.count("ld.global.nc.v4.b32") + body.count("ld.global.v4.b32") >= 8   # 16-byte weight runs
    assert "ld.shared.v4.b32" in body                                                # x staged


def test_activations_never_use_the_read_only_path(ctx):
    """Only weights are constant for a whole launch; `ld.global.nc` on an
    activation could read a stale line written by another SM."""
    case = next(c for c in KIND_CASES if c.name == "add")
    body = _function(lower_to_ptx(ir.Module.parse(module_ir([case]))), "mpk_add_0")
    assert ".nc" not in body and "ld.global.v4.b32" in body


@pytest.mark.parametrize("program", sorted(SMEM_BYTES))
def test_one_module_with_every_kind(ctx, program):
    members = [c for c in cases() if c.program == program]
    module = ir.Module.parse(module_ir(members))
    ptx = lower_to_ptx(module, smem_bytes=SMEM_BYTES[program], threads=THREADS_OF.get(program, THREADS))
    funcs = re.findall(r"\.visible \.func (\w+)\(", ptx)
    assert funcs[-1] == "mpk_dispatch" or "mpk_dispatch" in funcs
    assert {c.kind for c in members} == {f.split("_", 1)[1].rsplit("_", 1)[0] for f in funcs
                                         if f not in ("mpk_dispatch", "mpk_prefetch_dispatch")}


def test_gemm_tile_on_wgmma_fed_by_tma(ctx):
    """A prefill GEMM tile: 2-D tensor copies completing on mbarriers, wgmma from
    shared-memory descriptors (sm_90a), 4 k-steps of 16 per 64-wide K tile."""
    case = next(c for c in KIND_CASES if c.name == "gemm")
    ptx = lower_to_ptx(ir.Module.parse(module_ir([case])), smem_bytes=SMEM_BYTES["prefill"],
                       threads=THREADS_OF["prefill"])
    body = _function(ptx, "mpk_linear_0")
    assert ".target sm_90a" in ptx
    assert "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes" in body
    assert body.count("wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16") == 4   # 2 warpgroups of 64 x 256
    assert "mbarrier.try_wait.parity.shared::cta.b64" in body and "wgmma.wait_group.sync.aligned" in body

"""`gate_up`: y = silu(x @ w_gate^T) * (x @ w_up^T) for a tile of rows and columns (prefill).

An MLP's gate and up projections over many rows (mpk-partition fuses them
with their silu_mul when they are GEMM tiles): one GEMM tile (kernels/gemm.py)
whose stages hold x's rows and both weights' rows, each warpgroup with one
accumulator per weight, the SiLU product taken in fp32 in the epilogue. The
gate and up activations never reach memory, and the silu_mul is no group of
its own: one dependent stage per layer less.
"""

from __future__ import annotations

from mlir.dialects import arith

from . import gemm, kind


def _tensor_maps(g, threads):
    return gemm.tensor_maps(g, threads, weights=2)


@kind("gate_up", tensor_maps=_tensor_maps)
def gate_up(e, g, task, buffers):
    x, w_gate, w_up, *counts, y = buffers           # counts: [row_counts] (task_kinds.ROW_COUNTS)
    gemm.gemm(e, g, task, x, [w_gate, w_up], y,
              combine=lambda v: arith.mulf(e.silu(v[0]), v[1]), row_counts=counts[0] if counts else None)

"""`gate_up`: y = silu(x @ w_gate^T) * (x @ w_up^T) for a tile of rows and columns.

An MLP's gate and up projections and their silu_mul in one group: the gate
and up activations never reach memory, and the silu_mul is no group of its
own (one dependent stage per layer less). Over many rows (prefill) a task is
a GEMM tile (kernels/gemm.py) whose stages hold x's rows and both weights'
rows, each warpgroup with one accumulator per weight, the SiLU product taken
in fp32 in the epilogue. At decode rows it is the linear's matrix-vector
tile (kernels/linear.py) over both weights' rows at once, x staged once (and
normalized there with `norm_eps`, as a linear's fused layer norm).
"""

from __future__ import annotations

from mlir.dialects import arith

from mpk.lowering.kinds.linear import gemm_tile_rows

from . import gemm, linear


def gate_up(e, g, task, buffers):
    x, w_gate, w_up, *rest, y = buffers     # rest: [norm weight: norm_eps] or [row_counts] (prefill)
    product = lambda v: arith.mulf(e.silu(v[0]), v[1])
    if gemm_tile_rows(x.shape[0]) is not None:
        return gemm.gemm(e, g, task, x, [w_gate, w_up], y, combine=product, row_counts=rest[0] if rest else None)
    norm = (rest[0], float(g.param("norm_eps"))) if rest else None
    linear.matrix_vector(e, g, task, x, [w_gate, w_up], y, norm=norm, combine=product)

"""rmsnorm: `x / sqrt(mean(x^2) + eps) * w` over groups of len(w) elements of a row.

A whole-row norm (a layer's) is one reduction per row; a per-head norm (QK-norm)
normalizes every head of the row on its own.
"""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, copy, full, volume

# At most this many rows, an op is a decode step's (one row per sequence): a linear
# is a matrix-vector product over all rows at once, a layer norm one task.
DECODE_ROWS = 8


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSNormParams(Params):
    eps: float


class RMSNorm(TaskKind):
    name = "rmsnorm"
    params = RMSNormParams
    reference = staticmethod(ops.rmsnorm)

    def tile_unit(self, op):
        return (1, op.inputs[1][0])

    def fixed_tile(self, op):
        # A whole-row norm (the layer norm) is one reduction per row: at decode batch one
        # task of all rows, with many rows (prefill) tiles of rows. Per-head norms split
        # by heads and keep all rows.
        if op.inputs[1][0] != op.domain[1]:
            return (op.domain[0], None)
        return (None if op.domain[0] > DECODE_ROWS else op.domain[0], op.domain[1])

    def elementwise(self, op):
        return op.inputs[1][0] != op.domain[1]

    def reads(self, op, out):
        return [copy(out), full(out[0].shape[0], op.inputs[1])]

    def flops(self, op, out):
        return 4 * volume(out)

    def graph_check(self, c, op, types, p):
        x, w, result = types
        if not (v.float2d(c, op, x, "x") and c.check(w.rank == 1, op, f"weight must be 1-D, got {w}")):
            return
        c.check(x.shape[1] % w.shape[0] == 0, op,
                f"the last dimension of x ({x.shape[1]}) must be a multiple of the weight size ({w.shape[0]})")
        c.check(v.elt(w) == v.elt(x), op, f"weight element type {v.elt(w)} differs from x's {v.elt(x)}")
        v.same_type(c, op, "result and x", result, x)
        v.positive(c, op, p, "eps")

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import rmsnorm
        rmsnorm.rmsnorm(e, g, task, views)

"""mpk-fuse-gate-up: `silu_mul(linear(x, w_gate), linear(x, w_up))` -> `gate_up(x, w_gate, w_up)`.

An MLP's gate and up projections and their SiLU product in one op
(lowering/kinds/gate_up.py): the two products never reach memory and the
silu_mul is no task group (one dependent stage per layer less). Over GEMM
rows a task computes both weights' columns of its 128 rows; at decode rows
(`decode`, on by default) it is the linear's matrix-vector tile over both
weights. Linears with a residual or an `mpk.tile` stay.
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk.lowering import TILE_ATTR, GraphRewrite, create, only_use
from mpk.lowering.kinds.linear import gemm_tile_rows


@dataclasses.dataclass
class MpkFuseGateUp(GraphRewrite):
    name = "mpk-fuse-gate-up"
    summary = "fuse an MLP's gate and up linears and their silu_mul into one gate_up op"
    decode: bool = True     # at decode rows too (bench/NOTES.md round 8), not only over GEMM rows

    def patterns(self):
        return [("mpk.silu_mul", self.fuse)]

    def fuse(self, silu, rewriter):
        silu = silu.operation
        gate, up = (only_use(v, "mpk.linear") for v in silu.operands)
        if gate is None or up is None or len(gate.operands) != 2 or len(up.operands) != 2:
            return True
        if gate.operands[0] != up.operands[0] or any(TILE_ATTR in op.attributes for op in (gate, up)):
            return True
        # GEMM tiles of 128 rows: both weights' columns for all of them in each warpgroup (kernels/gemm.py).
        rows = ir.RankedTensorType(gate.operands[0].type).shape[0]
        if gemm_tile_rows(rows) not in ((128, None) if self.decode else (128,)):
            return True
        fused = create(silu, "mpk.gate_up", [gate.operands[0], gate.operands[1], up.operands[1]],
                       [silu.results[0].type], {})
        rewriter.replace_op(silu, fused)
        rewriter.erase_op(gate)
        rewriter.erase_op(up)
        return None

"""gate_up: `silu(x @ w_gate^T) * (x @ w_up^T)`, an MLP's two projections and their
product in one op (mpk-fuse-gate-up builds it from linear, linear, silu_mul).

Inputs x [R, K], w_gate and w_up [N, K], then (decode rows) the weight of a
fused layer norm (`norm_eps`) or (prefill) `row_counts`. Over many rows a
task is a GEMM tile, else the linear's matrix-vector tile.
"""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, full
from .linear import Linear, gemm_boxes, gemm_tile_rows

# Two accumulators of 64 x N a warpgroup: N = 128 at most (the prefill program's 255 registers).
GATE_UP_MAX_COLS = 128


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateUpParams(Params):
    norm_eps: float | None = None     # x goes through a layer norm first (decode rows; its weight an input)
    row_counts: bool = False          # a prefill chunk's rows per sequence, the last input
    unroll: int | None = None         # as a linear's (kernels/linear.py)
    staged_weights: bool = False      # both weights' tile rows wait in the weight ring (mpk-stage-weights)
    early_weights: bool = False       # as a linear's (mpk-data-flags)


class GateUp(Linear):
    name = "gate_up"
    params = GateUpParams
    graph_op_irdl = """
  irdl.operation @gate_up {
    %x = irdl.base "!builtin.tensor"
    %wg = irdl.base "!builtin.tensor"
    %wu = irdl.base "!builtin.tensor"
    %rest = irdl.base "!builtin.tensor"
    irdl.operands(x: %x, w_gate: %wg, w_up: %wu, rest: variadic %rest)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }
"""

    def fixed_tile(self, op):
        # GEMM: both weights' columns in each warpgroup (kernels/gemm.py)
        return (128, None) if gemm_tile_rows(op.domain[0]) else super().fixed_tile(op)

    def tile_unit(self, op):
        return (128, 64) if gemm_tile_rows(op.domain[0]) else super().tile_unit(op)

    def max_tile(self, op):
        return (None, GATE_UP_MAX_COLS) if gemm_tile_rows(op.domain[0]) else super().max_tile(op)

    def reads(self, op, out):
        x, w = gemm_boxes(op, out)
        return [x, w, (w[0].copy(), w[1].copy())] + [full(out[0].shape[0], shape) for shape in op.inputs[3:]]

    def flops(self, op, out):
        return 2 * super().flops(op, out)       # two weights

    def check(self, c, op, ins, outs, p):
        counts, norm = p.row_counts, p.norm_eps is not None
        if not v.arity(c, op, self.name, ins, outs, 3 + counts + norm, 1,
                       " (x, w_gate, w_up[, norm weight: norm_eps][, row_counts])"):
            return
        errors = c.errors
        self.product(c, op, ins[0], ins[1], outs[0])
        v.same_type(c, op, "w_gate and w_up", ins[1], ins[2])
        if c.errors != errors:
            return
        if norm:
            v.fused_norm(c, op, ins[3], ins[0], p)
        if counts:
            v.row_counts(c, op, ins[-1], ins[0].shape[0])

    def evaluate(self, operands, attrs):
        x, w_gate, w_up, *rest = operands
        p = self.typed(attrs)
        if p.norm_eps is not None:
            x = ops.rmsnorm(x, rest[0], p.norm_eps)
        return ops.silu_mul(ops.linear(x, w_gate), ops.linear(x, w_up))

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import gate_up
        gate_up.gate_up(e, g, task, views)

    def tensor_maps(self, g, threads):
        from mpk.lowering.kernels import gemm
        return gemm.tensor_maps(g, threads, weights=2)

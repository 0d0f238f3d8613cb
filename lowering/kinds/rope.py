"""rope: rotate-half rotary embedding of every head (D = 2 * len(inv_freq)) of a row."""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, copy, volume


@dataclasses.dataclass(frozen=True, kw_only=True)
class RopeParams(Params):
    inv_freq: tuple[float, ...]     # one head's D/2 frequencies


class Rope(TaskKind):
    name = "rope"
    params = RopeParams
    reference = staticmethod(ops.rope)
    position_operand = 1

    def tile_unit(self, op):
        return (1, 2 * len(op.params["inv_freq"]))

    def reads(self, op, out):
        lo, hi = out
        return [copy(out), (lo[:, :1].copy(), hi[:, :1].copy())]

    def flops(self, op, out):
        return 6 * volume(out)

    def graph_check(self, c, op, types, p):
        x, pos, result = types
        half = v.inv_freq(c, op, p)
        if half is None or not v.float2d(c, op, x, "x"):
            return
        c.check(x.shape[1] % (2 * half) == 0, op,
                f"x width {x.shape[1]} is not a multiple of the head dim {2 * half} (2 * len(inv_freq))")
        v.positions(c, op, pos, x.shape[0])
        v.same_type(c, op, "result and x", result, x)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import rope
        rope.rope(e, g, task, views)

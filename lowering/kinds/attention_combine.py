"""attention_combine: merges the P partial results of whole query heads into the
attention output (after attention_partial)."""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, full, volume
from .attention_partial import partial_width


@dataclasses.dataclass(frozen=True, kw_only=True)
class CombineParams(Params):
    head_dim: int


class AttentionCombine(TaskKind):
    name = "attention_combine"
    params = CombineParams
    reference = staticmethod(ops.attention_combine)
    lowering_checks_tile = False

    def tile_unit(self, op):
        return (1, op.params["head_dim"])

    def fixed_tile(self, op):
        return (1, None)

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        head_dim = op.params["head_dim"]
        width = partial_width(head_dim)
        plo, phi = full(lo.shape[0], op.inputs[0])
        plo[:, 0], phi[:, 0] = lo[:, 0], hi[:, 0]
        plo[:, 2], phi[:, 2] = lo[:, 1] // head_dim * width, -(-hi[:, 1] // head_dim) * width
        return [(plo, phi)]

    def flops(self, op, out):
        return 4 * volume(out) * op.inputs[0][1]

    def check(self, c, op, ins, outs, p):
        if not v.arity(c, op, self.name, ins, outs, 1, 1, " (the partials)"):
            return
        (partials,), (out,) = ins, outs
        head_dim = v.positive(c, op, p, "head_dim")
        if head_dim is None or not v.float2d(c, op, out, "the output"):
            return
        if c.check(out.shape[1] % head_dim == 0, op,
                   f"head_dim {head_dim} must divide the output width {out.shape[1]}"):
            v.partials(c, op, partials, out.shape[0], None, out.shape[1] // head_dim, head_dim)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.attention_combine(e, g, task, views)

"""mpk-fuse-residual: `add(linear(x, w), r)` -> `linear(x, w, r)` on graph IR
(and `add(allreduce(p), r)` -> `allreduce(p, r)` in a tensor-parallel step).

A decoder adds every block's output projection (o_proj, down_proj) to the
residual stream. As two ops the add becomes a task group of its own: one
more event hop on the critical path of every block, for a few kilobytes of
work. `mpk.linear` takes an optional residual that its tasks add while they
write their tile, so the add folds into it. Fuses when the linear has no
residual yet and the add is its only user; the linear keeps its attributes
(an `mpk.tile`, say). The allreduce of a row-parallel product (mpk-shard)
takes the residual the same way: its tasks add it once, after the sum.
"""

from __future__ import annotations

import dataclasses

from mpk.lowering import GraphRewrite, attributes, create, only_use


@dataclasses.dataclass
class MpkFuseResidual(GraphRewrite):
    name = "mpk-fuse-residual"
    summary = "fold an add of a linear's result into the linear's residual operand"

    def patterns(self):
        return [("mpk.add", self.fuse)]

    def fuse(self, add, rewriter):
        add = add.operation
        a, b = add.operands
        for product, residual in ((a, b), (b, a)):
            for name, operands in (("mpk.linear", 2), ("mpk.allreduce", 1)):
                producer = only_use(product, name)
                if producer is None or len(producer.operands) != operands or residual.type != product.type:
                    continue
                fused = create(add, name, [*producer.operands, residual], [product.type], attributes(producer))
                rewriter.replace_op(add, fused)
                rewriter.erase_op(producer)
                return None
        return True

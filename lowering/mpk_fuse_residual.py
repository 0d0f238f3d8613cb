"""mpk-fuse-residual: `add(linear(x, w), r)` -> `linear(x, w, r)` on graph IR.

A decoder adds every block's output projection (o_proj, down_proj) to the
residual stream. As two ops the add becomes a task group of its own: one
more event hop on the critical path of every block, for a few kilobytes of
work. `mpk.linear` takes an optional residual that its tasks add while they
write their tile, so the add folds into it. Fuses when the linear has no
residual yet and the add is its only user; the linear keeps its attributes
(an `mpk.tile`, say).
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk import dialects as mpk
from mpk.lowering import ModulePass, defining_op


@dataclasses.dataclass
class MpkFuseResidual(ModulePass):
    name = "mpk-fuse-residual"
    summary = "fold an add of a linear's result into the linear's residual operand"

    def run(self, module: ir.Operation) -> None:
        top = [op.operation for op in module.regions[0].blocks[0].operations]
        for op in top:
            if op.name == "mpk.kernel":
                self.fail(op, "mpk-fuse-residual rewrites graph IR: run it before 'mpk-partition'")
        for func in top:
            if func.name != "func.func":
                continue
            for op in list(func.regions[0].blocks[0].operations):
                if op.operation.name == "mpk.add":
                    self._fuse(op.operation)

    def _fuse(self, add: ir.Operation) -> None:
        a, b = add.operands
        for product, residual in ((a, b), (b, a)):
            linear = defining_op(product)
            if (linear is None or linear.name != "mpk.linear" or len(linear.operands) != 2
                    or len(list(product.uses)) != 1 or residual.type != product.type):
                continue
            with ir.InsertionPoint(add), add.location:
                fused = mpk.linear(linear.operands[0], linear.operands[1], residual)
            for name in [a if isinstance(a, str) else a.name for a in linear.attributes]:
                fused.owner.attributes[name] = linear.attributes[name]
            add.results[0].replace_all_uses_with(fused)
            add.erase()
            linear.erase()
            return

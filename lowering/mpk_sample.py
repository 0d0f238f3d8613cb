"""mpk-sample: the greedy `mpk.argmax` of a decode step -> `mpk.sample`.

A model imported from PyTorch ends in an argmax. Sampling needs per-sequence
parameters that change from request to request without a recompile, so they
become two io buffers the host writes: `sample_params` [B, 4] f32
(temperature, top_k, top_p, min_p: mpk.sampling.PARAMS) and `sample_seeds`
[B] i32. A row whose temperature is 0 is greedy: its sample task takes the
argmax, the token the argmax gave. The draw of row b depends only on its
seed, on positions[b] (the position of the token fed in that step) and on its
logits, so a sequence samples the same tokens whatever the batch or the
launch boundaries (mpk.sampling has the specification).
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk import dialects as mpk
from mpk.lowering import ModulePass

POSITION_OPERANDS = {"mpk.attention": 3, "mpk.rope": 1, "mpk.kv_append": 2}


@dataclasses.dataclass
class MpkSample(ModulePass):
    name = "mpk-sample"
    summary = "replace greedy argmax by in-kernel sampling (per-sequence temperature, top-k/p, min-p, seed)"

    def run(self, module: ir.Operation) -> None:
        for func in module.regions[0].blocks[0].operations:
            if func.operation.name == "mpk.kernel":
                self.fail(func, "mpk-sample rewrites graph IR: run it before 'mpk-partition'")
            if func.operation.name == "func.func":
                self._rewrite(func.operation)

    def _rewrite(self, func: ir.Operation) -> None:
        ops = [op.operation for op in func.regions[0].blocks[0].operations]
        argmaxes = [op for op in ops if op.name == "mpk.argmax"]
        if not argmaxes:
            return
        rows = {ir.RankedTensorType(op.operands[0].type).shape[0] for op in argmaxes}
        if len(rows) != 1:
            self.fail(argmaxes[0], f"argmaxes over different numbers of rows {sorted(rows)}")
        (batch,) = rows
        positions = self._positions(ops, batch)
        if positions is None:
            self.fail(argmaxes[0], f"no {batch}-row positions in the function: a sample draws from "
                                   "(seed, position), and only a decode step has them")
        params = mpk.add_io_argument(func, "sample_params", mpk.tensor([batch, 4], ir.F32Type.get()))
        seeds = mpk.add_io_argument(func, "sample_seeds", mpk.tensor([batch], ir.IntegerType.get_signless(32)))
        for argmax in argmaxes:
            index = ir.RankedTensorType(argmax.results[0].type).element_type
            with ir.InsertionPoint(argmax), argmax.location:
                token = mpk.sample(argmax.operands[0], positions, params, seeds, index)
            argmax.results[0].replace_all_uses_with(token)
            argmax.erase()
        mpk.sync_function_type(func)

    @staticmethod
    def _positions(ops: list[ir.Operation], batch: int) -> ir.Value | None:
        """The positions the model's attention, rope or kv_append read, if they have `batch` rows."""
        for op in ops:
            if op.name in POSITION_OPERANDS:
                value = op.operands[POSITION_OPERANDS[op.name]]
                if ir.RankedTensorType(value.type).shape == [batch]:
                    return value
        return None

"""sample: one token per row from its logits: the argmax, or a draw (mpk.sampling).

Inputs logits [B, V], positions [B], params [B, 4] (temperature, top_k, top_p,
min_p), seeds [B]: a task reads its row of each.
"""

from __future__ import annotations

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import cols, copy
from .argmax import Argmax


class Sample(Argmax):
    name = "sample"
    reference = staticmethod(ops.sample)
    operands = 4
    position_operand = 1
    inputs_taken = (4, 4)

    def reads(self, op, out):
        lo, hi = out
        rows = (lo[:, 0], hi[:, 0])
        return [cols(np.zeros_like(lo[:, 0]), np.full_like(lo[:, 0], shape[-1]), rows, shape) if len(shape) == 2 else copy(out)
                for shape in op.inputs]

    def graph_check(self, c, op, types, p):
        logits, pos, params, seeds, result = types
        if not v.float2d(c, op, logits, "logits"):
            return
        batch = logits.shape[0]
        v.positions(c, op, pos, batch)
        c.check(params.rank == 2 and v.elt(params) == "f32" and params.shape == [batch, 4], op,
                f"params must be tensor<{batch}x4xf32> (temperature, top_k, top_p, min_p per row), got {params}")
        v.ints(c, op, seeds, batch, "seeds")
        v.ints(c, op, result, batch, "result")

    def token(self, task):
        return self.reference(*task.tiles())

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import sample
        sample.sample(e, g, task, views)

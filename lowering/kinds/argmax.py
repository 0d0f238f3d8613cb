"""argmax: the index of each row's largest logit; a task takes one row.

Further outputs (the io `tokens` and `positions` of the next step) get the
token and the position plus one.
"""

from __future__ import annotations

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import TaskKind, cols


class Argmax(TaskKind):
    name = "argmax"
    reference = staticmethod(ops.argmax)
    operands = 1
    lowering_checks_tile = False
    inputs_taken = (1, 2)        # logits [, a second input, unread]

    def tile_unit(self, op):
        return (1,)

    def fixed_tile(self, op):
        return (1,)

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        return [cols(np.zeros_like(lo[:, 0]), np.full_like(lo[:, 0], op.inputs[0][1]),
                     (lo[:, 0], hi[:, 0]), op.inputs[0])]

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)

    def graph_check(self, c, op, types, p):
        logits, result = types
        if v.float2d(c, op, logits, "logits"):
            v.ints(c, op, result, logits.shape[0], "result")

    def check(self, c, op, ins, outs, p):
        """logits [, ...] -> next tokens, then (optionally) tokens and positions."""
        if not v.arity(c, op, self.name, ins, outs, self.inputs_taken, (1, 1 << 20)):
            return
        errors = c.errors
        self.graph_check(c, op, ins[:self.inputs_taken[0]] + outs[:1], p)
        if c.errors == errors:
            for t in ins[self.inputs_taken[0]:] + outs[1:]:
                v.ints(c, op, t, ins[0].shape[0], "tokens and positions")

    def token(self, task) -> np.ndarray:
        return self.reference(*task.tiles(1))

    def run_task(self, task):
        self.publish(task, self.token(task), task.group.outputs, task.out_box)

    @staticmethod
    def publish(task, token, outputs, box):
        """The rows' token into every output but `positions`, which advances."""
        for name in outputs:
            values = task.write(name, box)
            values[box] = values[box] + 1 if name == "positions" else token

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import argmax
        argmax.argmax(e, g, task, views)

"""allreduce: the sum of x over the ranks of a tensor-parallel step, plus a residual once.

The graph op `mpk.allreduce` (mpk-shard) becomes two groups (mpk-partition):
an `allgather` that stores every rank's x into every rank's `peer` slots
[ranks, B, N], then this kind's tasks, which wait for all ranks' tiles and
sum the slots in rank order (so every rank computes the same bits) with the
residual, into the op's result.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind


@dataclasses.dataclass(frozen=True, kw_only=True)
class RanksParams(Params):
    ranks: int


def check_ranks(c, op, p) -> bool:
    return c.check(p.ranks >= 1, op, f"'ranks' must be at least 1, got {p.ranks}")


class AllReduce(TaskKind):
    name = "allreduce"
    params = RanksParams

    def graph_check(self, c, op, types, p):
        x, *residual, result = types
        if check_ranks(c, op, p) and v.float2d(c, op, x, "x"):
            for t in residual + [result]:
                v.same_type(c, op, "x, residual and result", x, t)

    def check(self, c, op, ins, outs, p):
        """slots [ranks, B, N] (peer memory) [, residual [B, N]] -> [B, N]."""
        if not v.arity(c, op, self.name, ins, outs, (1, 2), roles=" (slots [, residual])"):
            return
        slots, *residual = ins
        if check_ranks(c, op, p) and v.float2d(c, op, outs[0], "result") and c.check(
                list(slots.shape) == [p.ranks, *outs[0].shape], op,
                f"slots must be [{p.ranks}, {outs[0].shape[0]}, {outs[0].shape[1]}] (one per rank), got {slots}"):
            for t in residual:
                v.same_type(c, op, "residual and result", t, outs[0])

    def reads(self, op, out):
        lo, hi = out
        n = lo.shape[0]
        slots = (np.concatenate([np.zeros((n, 1), np.int64), lo], 1),
                 np.concatenate([np.full((n, 1), op.inputs[0][0], np.int64), hi], 1))
        return [slots] + [(lo.copy(), hi.copy()) for _ in op.inputs[1:]]

    def elementwise(self, op):
        return False

    def flops(self, op, out):
        lo, hi = out
        return np.prod(hi - lo, axis=1) * len(op.inputs)

    def evaluate(self, operands, attrs):
        if attrs["ranks"] != 1:
            raise NotImplementedError(f"an allreduce over {attrs['ranks']} ranks runs in run_graph_ranks")
        return ops.allreduce([operands[0]], *operands[1:])

    def run_task(self, task):
        slots, *residual = task.tiles()
        task.write_output(ops.allreduce(list(slots), *residual))

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import collective
        collective.allreduce(e, g, task, views)

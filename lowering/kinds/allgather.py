"""allgather: every rank's x, side by side, on every rank (a vocab-parallel LM head's logits).

The one kind that writes another rank's memory: a task stores its tile of x
into the `peer` buffer of every rank of the tensor-parallel step (its own
included), at the slot of its own rank, and its trigger bumps the event of
every rank (mpk-build-events counts a trigger from each rank). Its output is
either the gathered tensor [B, ranks * N] (the graph op's result) or the
slots [ranks, B, N] of an allreduce (mpk-partition). Its second input is the
io buffer `peers` [ranks + 1] i64: this rank, then the byte distance from
this rank's peer memory to each rank's (the loader writes it). The last
step of a two-shot allreduce gathers each rank's sums of its chunk and adds
the residual [B, ranks * N] (an optional third input) on the way.
"""

from __future__ import annotations

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import TaskKind, full
from .allreduce import RanksParams, check_ranks


class AllGather(TaskKind):
    name = "allgather"
    params = RanksParams

    def trigger_ranks(self, params):
        return "every"

    def graph_check(self, c, op, types, p):
        x, result = types
        if check_ranks(c, op, p) and v.float2d(c, op, x, "x"):
            c.check(list(result.shape) == [x.shape[0], x.shape[1] * p.ranks] and result.element_type == x.element_type,
                    op, f"result must be [{x.shape[0]}, {x.shape[1] * p.ranks}] ({p.ranks} ranks' x side by side), "
                        f"got {result}")

    def check(self, c, op, ins, outs, p):
        """x [B, N], peers [ranks + 1] i64 [, residual] -> the gathered [B, ranks * N] (plus the
        residual) or the slots [ranks, B, N]."""
        if not (v.arity(c, op, self.name, ins, outs, (2, 3), roles=" (x, peers [, residual])")
                and check_ranks(c, op, p) and v.float2d(c, op, ins[0], "x")):
            return
        x, peers, out = ins[0], ins[1], outs[0]
        for t in ins[2:]:
            v.same_type(c, op, "the residual and the gathered result", t, out)
        v.ints(c, op, peers, p.ranks + 1, "peers")
        b, n = x.shape
        c.check(list(out.shape) in ([b, n * p.ranks], [p.ranks, b, n]) and out.element_type == x.element_type, op,
                f"the output must be [{b}, {n * p.ranks}] or [{p.ranks}, {b}, {n}] of {x.element_type}, got {out}")

    def natural_domain(self, ins, outs):
        return list(ins[0].shape), "x"

    def reads(self, op, out):
        n = out[0].shape[0]
        residual = [(np.stack([out[0][:, 0], np.zeros(n, np.int64)], 1),      # its rank's columns of the rows
                     np.stack([out[1][:, 0], np.full(n, shape[1], np.int64)], 1)) for shape in op.inputs[2:]]
        return [(out[0].copy(), out[1].copy()), full(n, op.inputs[1])] + residual

    def writes(self, op, out):
        """Every rank's slot of the tile: [all ranks, rows, cols] of the slots, or whole
        rows of the gathered tensor (its ranks' columns are no box)."""
        lo, hi = out
        n, ranks = lo.shape[0], op.params["ranks"]
        if len(op.output) == 3:
            return (np.concatenate([np.zeros((n, 1), np.int64), lo], 1),
                    np.concatenate([np.full((n, 1), ranks, np.int64), hi], 1))
        return np.stack([lo[:, 0], np.zeros(n, np.int64)], 1), np.stack([hi[:, 0], np.full(n, op.output[1])], 1)

    def output_writes(self, op, out, shapes):
        return [self.writes(op, out)]

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)

    def evaluate(self, operands, attrs):
        if attrs["ranks"] != 1:
            raise NotImplementedError(f"an allgather over {attrs['ranks']} ranks runs in run_graph_ranks")
        return ops.allgather([operands[0]])

    def run_task(self, task):
        tile = task.tiles(1)[0]
        if len(task.group.inputs) == 3:           # + the residual at this rank's columns
            residual = task.read(2)
            rows, cols = task.out_box
            width = task.interp.graph.buffers[task.group.inputs[0]].shape[1]
            start = task.interp.rank * width
            tile = ops.add(tile, residual[rows, cols.start + start:cols.stop + start])
        task.push(tile)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import collective
        collective.allgather(e, g, task, views)

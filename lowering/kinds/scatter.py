"""scatter: the first half of a two-shot allreduce (a reduce-scatter's stores).

Each rank owns 1/N of the columns ("its chunk"); a task stores its tile of x
into the `peer` slots [N, B, N_chunk] of the rank that owns the tile's columns,
at the slot of its own rank, and its trigger bumps only that rank's counter.
An `allreduce` group then sums each rank's own chunk and an `allgather` stores
the sums into every rank's result (mpk-partition, `allreduce` algorithm).
Inputs: x [B, N], the io buffer `peers` (allgather.py); tiles do not straddle
chunks.
"""

from __future__ import annotations

import numpy as np

from mpk.dialects import verify as v

from . import TaskKind, full
from .allreduce import RanksParams, check_ranks


class Scatter(TaskKind):
    name = "scatter"
    params = RanksParams

    def trigger_ranks(self, params):
        return "owner"

    def check(self, c, op, ins, outs, p):
        """x [B, N], peers [ranks + 1] i64 -> slots [ranks, B, N / ranks]."""
        if not (v.arity(c, op, self.name, ins, outs, 2, roles=" (x, peers)") and check_ranks(c, op, p)
                and v.float2d(c, op, ins[0], "x")):
            return
        (b, n), out = ins[0].shape, outs[0]
        v.ints(c, op, ins[1], p.ranks + 1, "peers")
        c.check(n % p.ranks == 0 and list(out.shape) == [p.ranks, b, n // p.ranks]
                and out.element_type == ins[0].element_type, op,
                f"the output must be the slots [{p.ranks}, {b}, {n // p.ranks}] of {ins[0].element_type} "
                f"({n} columns in {p.ranks} chunks), got {out}")

    def natural_domain(self, ins, outs):
        return list(ins[0].shape), "x"

    def chunk(self, op) -> int:
        return op.inputs[0][1] // op.params["ranks"]

    def reads(self, op, out):
        return [(out[0].copy(), out[1].copy()), full(out[0].shape[0], op.inputs[1])]

    def writes(self, op, out):
        """Every rank's slot of the tile, at its columns within the owner's chunk."""
        lo, hi = out
        n, ranks, chunk = lo.shape[0], op.params["ranks"], self.chunk(op)
        base = lo[:, 1] // chunk * chunk
        return (np.stack([np.zeros(n, np.int64), lo[:, 0], lo[:, 1] - base], 1),
                np.stack([np.full(n, ranks, np.int64), hi[:, 0], hi[:, 1] - base], 1))

    def output_writes(self, op, out, shapes):
        return [self.writes(op, out)]

    def trigger_ranks_of(self, op, out):
        return out[0][:, 1] // self.chunk(op)

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)

    def run_task(self, task):
        task.scatter(task.tiles(1)[0])

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import collective
        collective.scatter(e, g, task, views)

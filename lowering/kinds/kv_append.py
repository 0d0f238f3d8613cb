"""kv_append: write `new[r]` at cache row positions[r] of its sequence (in place)."""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, cols, copy, nothing, sequences, zeros


@dataclasses.dataclass(frozen=True, kw_only=True)
class KVAppendParams(Params):
    head_dim: int | None = None     # mpk-partition's hint: its tile unit, the reading attention's heads


class KVAppend(TaskKind):
    name = "kv_append"
    params = KVAppendParams
    reference = staticmethod(ops.kv_append)
    operands = 3
    main_input = 1
    position_operand = 2
    in_place = ((0, 0),)

    def tile_unit(self, op):
        # Whole heads of the attention that reads the cache (partition passes
        # its head_dim as a hint), so each attention task waits on few appends.
        return (1, self.typed(op.params).head_dim or 8)

    def reads(self, op, out):
        lo, hi = out
        return [nothing(lo.shape[0], 3), copy(out), (lo[:, :1].copy(), hi[:, :1].copy())]  # none of the cache

    def writes(self, op, out):
        lo, hi = out
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], op.output[0])   # cache row positions[r]: data
        return cols(lo[:, 1], hi[:, 1], seqs, op.output)

    def flops(self, op, out):
        return zeros(out)

    def graph_check(self, c, op, types, p):
        cache, new, pos, result = types
        if not (c.check(cache.rank == 3, op, f"cache must be 3-D [batch, seq, width], got {cache}")
                and c.check(new.rank == 2, op, f"new must be 2-D [batch, width], got {new}")):
            return
        rows = new.shape[0]
        c.check(new.shape[1] == cache.shape[2] and rows % cache.shape[0] == 0
                and v.elt(new) == v.elt(cache), op,
                f"new must be tensor<Rx{cache.shape[2]}x{v.elt(cache)}>, R a multiple of the cache batch "
                f"{cache.shape[0]}, to append to {cache}, got {new}")
        v.positions(c, op, pos, rows)
        v.same_type(c, op, "result and cache", result, cache)

    def check(self, c, op, ins, outs, p):
        if v.arity(c, op, self.name, ins, outs, 3, 1, " (cache, new, positions)"):
            self.graph_check(c, op, ins + outs, p)
            if p.head_dim is not None:
                v.positive(c, op, p, "head_dim")

    def natural_domain(self, ins, outs):
        return list(ins[1].shape), "new"

    def run_task(self, task):
        cache, new, positions = (task.read(ii) for ii in range(3))
        output = task.group.outputs[0]
        cols_ = task.out_box[1]
        per_seq = ops.rows_per_sequence(len(positions), cache)
        for r in range(task.rows.start, task.rows.stop):
            row = (r // per_seq, int(positions[r]), cols_)
            task.write(output, row)[row] = new[r, cols_]

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import kv_append
        kv_append.kv_append(e, g, task, views)

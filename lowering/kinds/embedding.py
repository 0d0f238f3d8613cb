"""embedding: `h[b] = table[ids[b]]`, a tile of the hidden columns of some rows."""

from __future__ import annotations

from mpk.dialects import verify as v
from mpk.interp import ops

from . import TaskKind, cols, zeros


class Embedding(TaskKind):
    name = "embedding"
    reference = staticmethod(ops.embedding)
    gathers = (1,)

    def reads(self, op, out):
        lo, hi = out
        ids = (lo[:, :1].copy(), hi[:, :1].copy())
        table = cols(lo[:, 1], hi[:, 1], None, op.inputs[1])  # the rows are data
        return [ids, table]

    def traffic(self, op, out):
        ids, (tlo, thi) = self.reads(op, out)
        thi[:, 0] = out[1][:, 0] - out[0][:, 0]                  # one table row per sequence
        return [ids, (tlo, thi)]

    def flops(self, op, out):
        return zeros(out)

    def graph_check(self, c, op, types, p):
        ids, table, result = types
        if not (c.check(ids.rank == 1 and v.elt(ids) in v.INTS, op, f"ids must be a 1-D i32/i64 tensor, got {ids}")
                and c.check(table.rank == 2 and v.elt(table) in v.FLOATS, op,
                            f"table must be a 2-D float tensor [vocab, hidden], got {table}")):
            return
        expected = f"tensor<{ids.shape[0]}x{table.shape[1]}x{v.elt(table)}>"
        c.check(str(result) == expected, op, f"result must be {expected}, got {result}")

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import embedding
        embedding.embedding(e, g, task, views)


"""rope_append: QK-norm (optional), rope and the KV append of one KV head group, fused.

Inputs q [B, Hq*D], k and v [B, Hkv*D], the two caches [B, S, Hkv*D],
positions, then (with the param `eps`) the q and k norm weights [D]; outputs
the roped q and the two caches (in place, row positions[b]). A task takes one
sequence and one KV head: its Hq/Hkv query heads, the k head and the v head.
`mpk-fuse-rope-append` builds the graph op from the rmsnorm, rope and
kv_append ops that feed an attention (three event hops become one); a split
attention may take it in (mpk-partition{rope-in-attention}).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, cols, copy, full, nothing, sequences, volume


def rope_heads(inv_freq, eps, q, k, norms, positions) -> tuple[np.ndarray, np.ndarray]:
    """q and k tiles after the QK-norm (if `norms`, with `eps`) and rope of a rope_append."""
    if norms:
        q, k = (ops.rmsnorm(x, w, eps) for x, w in zip((q, k), norms))
    inv_freq = np.asarray(inv_freq, np.float32)
    return ops.rope(q, positions, inv_freq), ops.rope(k, positions, inv_freq)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RopeAppendParams(Params):
    head_dim: int
    inv_freq: tuple[float, ...]
    eps: float | None = None          # the QK-norms' (their weights the last inputs)
    row_counts: bool = False          # a prefill chunk's rows per sequence, the last input


class RopeAppend(TaskKind):
    name = "rope_append"
    params = RopeAppendParams
    in_place = ((3, 1), (4, 2))
    graph_op_irdl = """
  irdl.operation @rope_append {
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %v = irdl.base "!builtin.tensor"
    %kc = irdl.base "!builtin.tensor"
    %vc = irdl.base "!builtin.tensor"
    %pos = irdl.base "!builtin.tensor"
    %norms = irdl.base "!builtin.tensor"
    irdl.operands(q: %q, k: %k, v: %v, k_cache: %kc, v_cache: %vc, positions: %pos, norms: variadic %norms)
    %hd = irdl.base "#builtin.integer"
    %f = irdl.base "#builtin.dense_array"
    irdl.attributes {"head_dim" = %hd, "inv_freq" = %f}
    %rq = irdl.base "!builtin.tensor"
    %rk = irdl.base "!builtin.tensor"
    %rv = irdl.base "!builtin.tensor"
    irdl.results(q_out: %rq, k_cache_out: %rk, v_cache_out: %rv)
  }
"""

    def _group_width(self, op):
        head_dim = op.params["head_dim"]
        return op.inputs[0][1] // (op.inputs[1][1] // head_dim)

    def tile_unit(self, op):
        return (1, self._group_width(op))

    def fixed_tile(self, op):
        # One KV head group; one row at decode batch, tiles of rows in a prefill.
        return (1 if op.inputs[0][0] <= op.inputs[3][0] else None, self._group_width(op))

    def elementwise(self, op):
        return False

    def _kv_cols(self, op, out) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = out
        width, head_dim = self._group_width(op), op.params["head_dim"]
        return lo[:, 1] // width * head_dim, -(-hi[:, 1] // width) * head_dim

    def reads(self, op, out):
        lo, hi = out
        n, rows = lo.shape[0], (lo[:, 0], hi[:, 0])
        kv = cols(*self._kv_cols(op, out), rows, op.inputs[1])
        boxes = [copy(out), kv, copy(kv), nothing(n, 3), nothing(n, 3), (lo[:, :1].copy(), hi[:, :1].copy())]
        return boxes + [full(n, shape) for shape in op.inputs[6:]]

    def output_writes(self, op, out, shapes):
        lo, hi = out
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], shapes[1][0])
        cache = cols(*self._kv_cols(op, out), seqs, shapes[1])   # rows positions[r]: data
        return [out, cache, copy(cache)]

    def flops(self, op, out):
        return 12 * volume(out)

    def graph_check(self, c, op, types, p):
        self.check(c, op, types[:-3], types[-3:], p)

    def check(self, c, op, ins, outs, p):
        norms, counts = 2 * (p.eps is not None), p.row_counts
        if not v.arity(c, op, self.name, ins, outs, 6 + norms + counts, 3,
                       " (q, k, v, k_cache, v_cache, positions[, q and k norm weights: eps][, row_counts])"):
            return
        if v.rope_inputs(c, op, ins[:6 + norms], p) is None:
            return
        c.check(outs == [ins[0], ins[3], ins[4]], op, "the outputs must be the roped q (q's type) and the two caches")
        if counts:
            v.row_counts(c, op, ins[-1], ins[0].shape[0])

    def evaluate(self, operands, attrs):
        q, k, v_, k_cache, v_cache, positions, *norms = operands
        p = self.typed(attrs)
        q_rot, k_rot = rope_heads(p.inv_freq, p.eps, q, k, norms, positions)
        return q_rot, ops.kv_append(k_cache, k_rot, positions), ops.kv_append(v_cache, v_, positions)

    def run_task(self, task):
        p, g, reads = self.typed(task.params), task.group, task.reads
        x = [task.read(ii) for ii in range(len(g.inputs))]
        q, k, v_, k_cache, _, positions, *norms = x[:len(x) - p.row_counts]
        heads = [*rope_heads(p.inv_freq, p.eps, q[reads[0]], k[reads[1]], norms, positions[task.rows]),
                 v_[reads[2]]]
        task.write_output(heads[0])
        kv_cols = reads[1][1]
        per_seq = ops.rows_per_sequence(len(positions), k_cache)
        for r in range(task.rows.start, task.rows.stop):
            for name, new in zip(g.outputs[1:], heads[1:]):
                row = (r // per_seq, int(positions[r]), kv_cols)
                task.write(name, row)[row] = new[r - task.rows.start]

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import rope_append
        rope_append.rope_append(e, g, task, views)

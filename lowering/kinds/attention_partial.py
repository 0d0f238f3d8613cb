"""attention_partial: split p of P of the cache rows 0..pos[b] of one KV head group.

Output `[B, P, Hq * (D + 4)]` f32: per query head the unnormalized output, the
running max (log2 domain) and the sum of exponentials (dialects/README.md);
attention_combine merges the P splits.

With the param `inv_freq` the group's rope_append is fused in: the inputs are
q, k, v (before QK-norm and rope), the two caches, positions and (with `eps`)
the q and k norm weights, and the caches are outputs too (row positions[b],
written by the split that holds it).
"""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import cols, full, volume
from .attention import Attention, AttentionParams, check_cache_rows, group_width
from .rope_append import rope_heads


def partial_width(head_dim: int) -> int:
    """Floats per query head in an `attention_partial` output: D accumulators, the
    max and the sum, two floats of padding (rows of 16-byte multiples)."""
    return head_dim + 4


@dataclasses.dataclass(frozen=True, kw_only=True)
class PartialParams(AttentionParams):
    splits: int                       # P: the cache rows in P splits
    inv_freq: tuple[float, ...] | None = None   # the rope_append fused in: its frequencies ...
    eps: float | None = None          # ... and its QK-norms' eps


class AttentionPartial(Attention):
    name = "attention_partial"
    params = PartialParams
    merged_outputs = 0        # outputs after the partials and the caches (attention_split: 2)

    def _group_width(self, op):
        """Output columns of one KV head group: its query heads' partial rows."""
        head_dim = op.params["head_dim"]
        return group_width(op) // head_dim * partial_width(head_dim)

    def tile_unit(self, op):
        return (1, 1, self._group_width(op))

    def fixed_tile(self, op):
        return (1, 1, self._group_width(op))

    def _boxes(self, op, out):
        """q's columns of the tile's query heads, the k/v columns of its KV head
        (of k and v, or of a cache: `shape`), the rows of its sequence."""
        lo, hi = out
        head_dim = op.params["head_dim"]
        width = partial_width(head_dim)
        heads = (lo[:, 2] // width, -(-hi[:, 2] // width))
        ratio = (op.inputs[0][1] // head_dim) // (op.inputs[1][-1] // head_dim)
        rows = (lo[:, 0], hi[:, 0])
        q = cols(heads[0] * head_dim, heads[1] * head_dim, rows, op.inputs[0])
        kv_cols = (heads[0] // ratio * head_dim, -(-heads[1] // ratio) * head_dim)
        return q, lambda shape: cols(*kv_cols, rows, shape)

    def reads(self, op, out):
        lo, hi = out
        q, kv = self._boxes(op, out)
        positions = (lo[:, :1].copy(), hi[:, :1].copy())
        if self.typed(op.params).inv_freq is None:
            # All rows of the cache: the split's row range depends on pos[b] (data).
            return [q, kv(op.inputs[1]), kv(op.inputs[2]), positions]
        return [q, kv(op.inputs[1]), kv(op.inputs[2]), kv(op.inputs[3]), kv(op.inputs[4]), positions] + \
            [full(lo.shape[0], shape) for shape in op.inputs[6:]]

    def output_writes(self, op, out, shapes):
        _, kv = self._boxes(op, out)
        return [out] + [kv(shape) for shape in shapes[1:]]     # cache row positions[b]: data

    def kv_caches(self, params):
        return (3, 4) if self.typed(params).inv_freq is not None else (1, 2)

    def traffic(self, op, out):
        boxes = self.reads(op, out)
        splits = op.output[1]
        for c in self.kv_caches(op.params):
            lo, hi = boxes[c]
            hi = hi.copy()
            hi[:, 1] = -(-op.inputs[c][1] // splits)          # one split of a full cache
            boxes[c] = (lo, hi)
        return boxes

    def flops(self, op, out):
        cache = op.inputs[self.kv_caches(op.params)[0]]
        return 4 * volume(out) * cache[1] // op.output[1]

    def check(self, c, op, ins, outs, p):
        rope, merged = p.inv_freq is not None, self.merged_outputs
        roles = " (the partials" + (", the caches" if rope else "") + (", the output, the arrival counters"
                                                                       if merged else "") + ")"
        if rope:
            if not v.arity(c, op, self.name, ins, outs, 6 + 2 * (p.eps is not None), 3 + merged,
                           " (q, k, v, k_cache, v_cache, positions[, q and k norm weights: eps])"):
                return
            (q, _, _, kc, vc, pos), head_dim = ins[:6], v.rope_inputs(c, op, ins, p)
            if head_dim is not None:
                c.check(outs[1:3] == [kc, vc], op, "the outputs after the partials must be the two caches")
        else:
            if not v.arity(c, op, self.name, ins, outs, 4, 1 + merged, " (q, k_cache, v_cache, positions)" + roles):
                return
            q, kc, vc, pos = ins
            head_dim = v.heads(c, op, q, kc, vc, pos, p)
        v.positive(c, op, p, "scale")
        splits = v.positive(c, op, p, "splits")
        if head_dim is None or splits is None:
            return
        c.check(q.shape[0] == kc.shape[0], op, f"q rows ({q.shape[0]}) must be one per sequence ({kc.shape[0]})")
        v.partials(c, op, outs[0], q.shape[0], splits, q.shape[1] // head_dim, head_dim)
        if merged:
            out, arrivals = outs[-2:]
            c.check(out.rank == 2 and out.shape == q.shape and v.elt(out) in v.FLOATS, op,
                    f"the output must be a float tensor<{q.shape[0]}x{q.shape[1]}> (q's shape), got {out}")
            c.check(arrivals.rank == 2 and arrivals.shape == [q.shape[0], kc.shape[2] // head_dim]
                    and v.elt(arrivals) == "i32", op,
                    f"the arrival counters must be tensor<{q.shape[0]}x{kc.shape[2] // head_dim}xi32> "
                    f"(one per sequence and KV head), got {arrivals}")

    def run_task(self, task):
        p, split = self.typed(task.params), int(task.out_lo[1])
        if p.inv_freq is not None:
            q, caches, positions = self._append(task, split)
        else:
            positions = task.read(3)
            check_cache_rows(task, positions)
            q, *caches = task.tiles(3)
        result = ops.attention_partial(q, *caches, positions[task.rows], p.head_dim, p.scale, split, p.splits)
        task.write_output(result.reshape(task.rows.stop - task.rows.start, 1, -1))

    def _append(self, task, split):
        """The fused rope_append: the task of the split holding row positions[b] appends
        that row first; every task reads exactly its split's rows, which must be
        written by then. Returns the roped q tile, the caches' tiles and positions."""
        p, g, reads = self.typed(task.params), task.group, task.reads
        q, k, v_, _, _, positions, *norms = [task.read(ii) for ii in range(len(g.inputs))]
        q_rot, k_rot = rope_heads(p.inv_freq, p.eps, q[reads[0]], k[reads[1]], norms, positions[task.rows])
        kv_cols = reads[3][2]
        caches = []
        for c, new in ((3, k_rot), (4, v_[reads[2]])):
            values = task.values(g.inputs[c])
            for b in range(task.rows.start, task.rows.stop):
                pos = int(positions[b])
                lo, hi = ops.split_rows(pos + 1, split, p.splits)
                if lo <= pos < hi:
                    row = (b, pos, kv_cols)
                    task.write(g.outputs[c - 2], row)[row] = new[b - task.rows.start]
                task.check_written(g.inputs[c], (b, slice(lo, hi), kv_cols),
                                   f"rows {lo}..{hi - 1} of sequence {b}")
            caches.append(values[reads[c]])
        return q_rot, caches, positions

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.attention_partial(e, g, task, views)

    def prefetch(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.prefetch_cache_rows(e, g, task, views)

"""attention_split: an attention_partial whose last split merges.

After writing its partial, a task counts itself in `arrivals[b, kv]`; the one
that completes the count merges the P partials of its KV group into the
attention output (as attention_combine would) and resets the counter. One
event hop and one task group per layer less than partial + combine, and no
task waits for a merge it could do itself.

Outputs: the partials, [the two caches: with `inv_freq`], the attention output
`[B, Hq * D]`, the arrival counters `[B, Hkv]` i32 (space `counters`). Every
split declares the output columns of its group's heads: whichever finishes
last writes them, so a reader waits for all P.
"""

from __future__ import annotations

from mpk.interp import ops

from . import cols
from .attention_partial import AttentionPartial, partial_width


class AttentionSplit(AttentionPartial):
    name = "attention_split"
    merged_outputs = 2

    def output_writes(self, op, out, shapes):
        writes = super().output_writes(op, out, shapes[:-2])
        lo, hi = out
        width, head_dim = partial_width(op.params["head_dim"]), op.params["head_dim"]
        heads = (lo[:, 2] // width, -(-hi[:, 2] // width))
        ratio = (op.inputs[0][1] // head_dim) // (op.inputs[1][-1] // head_dim)   # query heads per KV head
        rows = (lo[:, 0], hi[:, 0])
        merged = cols(heads[0] * head_dim, heads[1] * head_dim, rows, shapes[-2])
        arrivals = cols(heads[0] // ratio, heads[1] // ratio, rows, shapes[-1])
        return writes + [merged, arrivals]

    def run_task(self, task):
        super().run_task(task)
        self._arrive(task)

    def _arrive(self, task) -> None:
        """Count the task in `arrivals`; the last of its KV group merges the group's P
        partial rows, which must all be this step's, into the output, and resets the count."""
        g, p = task.group, self.typed(task.params)
        head_dim, splits = p.head_dim, p.splits
        rows, kv_cols = task.out_box[0], task.out_box[2]
        width = partial_width(head_dim)
        heads = slice(kv_cols.start // width, kv_cols.stop // width)
        kv = heads.start // (heads.stop - heads.start)
        arrivals = task.values(g.outputs[-1])
        arrivals[rows, kv] += 1
        if (arrivals[rows, kv] < splits).all():
            return
        arrivals[rows, kv] = 0
        early = (task.versions(g.outputs[0])[rows, :, kv_cols] != task.step).any(axis=-1)
        if early.any():
            split = int(early.nonzero()[1][0])
            raise task.error(f"merges before split {split} of its KV group wrote its partial row "
                             f"in step {task.step}")
        region = (rows, slice(heads.start * head_dim, heads.stop * head_dim))
        partials = task.values(g.outputs[0])[rows, :, kv_cols]
        task.write(g.outputs[-2], region)[region] = ops.attention_combine(partials, head_dim)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.attention_split(e, g, task, views)

    def prefetch(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.prefetch_cache_rows(e, g, task, views)

"""sample_split: `sample` in P splits of each row's logits, merged by the last split.

One CTA scanning a whole row of 128-152K logits takes 17-21 us on the H200, a
serial stage at the end of every step (bench/NOTES.md round 14). Task (b, p)
scans columns [p*c, min((p+1)*c, V)) of row b (c = `split_columns`) and
writes partials[b, p] = (max, argmax, best Gumbel score, its token): the score
only for a plain temperature draw (no top-k, top-p or min-p), relative to the
split's own max, so that it stays exact near the max. It then counts itself
in `arrivals[b]` (acquire-release); the split that completes the count merges
the P partial rows into the token (greedy: the best (max, argmax); plain: the
best score shifted to the row's max), or, for a row with top-k, top-p or
min-p, draws from the whole row as `sample` does, publishes the token as
`sample` does and resets the count.

Inputs as `sample`'s; outputs: the partials [B, P, 4] f32 (domain; tile one
split), `sample`'s token outputs, arrivals [B] i32 (space `counters`). Every
split declares the row's token outputs: whichever arrives last writes them.
"""

from __future__ import annotations

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import cols
from .sample import Sample

# Fewest logit columns per split (0.25-0.5 KB). Real vocabularies split into SMs / B
# splits long before this bound; a test model's 256 logits still split in two, so the
# GPU checks and sanitizers of the tiny models run the merge too.
MIN_SPLIT_COLUMNS = 128


def split_columns(vocab: int, splits: int) -> int:
    """Logit columns of every split but the last: a multiple of 8, so that every split
    starts on a 16-byte vector of bf16 or f32 logits."""
    return -(-vocab // (8 * splits)) * 8


def uneven_splits(vocab: int, splits: int) -> str | None:
    """Why `splits` splits of `vocab` logits are not a sample_split's, or None."""
    if splits <= vocab and (splits - 1) * split_columns(vocab, splits) < vocab:
        return None
    return (f"{splits} splits of {vocab} logits leave the last without columns "
            f"(splits of {split_columns(vocab, splits)})")


class SampleSplit(Sample):
    name = "sample_split"

    @staticmethod
    def splits(batch: int, vocab: int, num_sms: int, tile_columns: int | None = None) -> int:
        """One split per tile of the logits' producer where the tile (`tile_columns`) is as
        wide as a split (then a split waits for its own tile only), else about one wave of
        tasks; at least `MIN_SPLIT_COLUMNS` columns a split, none without columns."""
        wave = max(1, num_sms // batch)
        if tile_columns is not None and tile_columns >= MIN_SPLIT_COLUMNS:
            tiles = -(-vocab // tile_columns)
            if 1 < tiles <= wave and split_columns(vocab, tiles) == tile_columns:
                return tiles
        wanted = max(1, min(wave, vocab // MIN_SPLIT_COLUMNS))
        return -(-vocab // split_columns(vocab, wanted))

    def tile_unit(self, op):
        return (1, 1, 4)

    def fixed_tile(self, op):
        return (1, 1, 4)

    def _rows(self, out):
        lo, hi = out
        return lo[:, :1].copy(), hi[:, :1].copy()

    def reads(self, op, out):
        lo, hi = out
        (_, vocab), splits = op.inputs[0], op.output[1]
        c = split_columns(vocab, splits)
        rows = (lo[:, 0], hi[:, 0])
        logits = cols(lo[:, 1] * c, np.minimum(hi[:, 1] * c, vocab), rows, op.inputs[0])
        return [logits, self._rows(out), cols(np.zeros_like(lo[:, 0]), np.full_like(lo[:, 0], 4), rows,
                                              op.inputs[2]), self._rows(out)]

    def output_writes(self, op, out, shapes):
        return [out] + [self._rows(out) for _ in shapes[1:]]

    def check(self, c, op, ins, outs, p):
        if not v.arity(c, op, self.name, ins, outs, 4, (3, 5),
                       " (the partials, the token outputs, the arrival counters)"):
            return
        errors = c.errors
        self.graph_check(c, op, ins + outs[1:2], p)
        if c.errors != errors:
            return
        (batch, vocab), partials, arrivals = ins[0].shape, outs[0], outs[-1]
        for t in outs[2:-1]:
            v.ints(c, op, t, batch, "tokens and positions")
        if not c.check(partials.rank == 3 and v.elt(partials) == "f32" and partials.shape[0] == batch
                       and partials.shape[2] == 4, op,
                       f"the partials must be tensor<{batch}xPx4xf32> (P splits of a row), got {partials}"):
            return
        why = uneven_splits(vocab, partials.shape[1])
        c.check(why is None, op, why or "")
        c.check(arrivals.rank == 1 and arrivals.shape == [batch] and v.elt(arrivals) == "i32", op,
                f"the arrival counters must be tensor<{batch}xi32> (one per row), got {arrivals}")

    def run_task(self, task):
        """The split's partial row; the last of the row to arrive checks that every split
        and every logit of the row is this step's and publishes the row's token."""
        g, rows = task.group, task.rows
        logits, positions, params, seeds = task.tiles()
        split, splits = int(task.out_lo[1]), task.values(g.outputs[0]).shape[1]
        first = split * split_columns(task.values(g.inputs[0]).shape[-1], splits)
        # The kernel's layout; the merge below draws from the whole row, so the Gumbel
        # columns hold "no score" (-inf, INT_MAX), as the kernel's do for a non-plain row.
        bits = lambda ints: np.asarray(ints, np.int32).view(np.float32)
        n = len(logits)
        partial = np.stack([logits.max(-1).astype(np.float32), bits(ops.argmax(logits) + first),
                            np.full(n, -np.inf, np.float32), bits(np.full(n, 2**31 - 1))], -1)
        task.write_output(partial.reshape(n, 1, 4))
        arrivals = task.values(g.outputs[-1])
        arrivals[rows] += 1
        if (arrivals[rows] < splits).all():
            return
        arrivals[rows] = 0
        early = task.versions(g.outputs[0])[rows] != task.step
        if early.any():
            raise task.error(f"merges before split {int(early.any(-1).nonzero()[1][0])} of its row wrote "
                             f"its partial in step {task.step}")
        whole = (rows, slice(None))
        if (task.versions(g.inputs[0])[whole] != task.step).any():
            raise task.error(f"merges before every logit of its row is written in step {task.step}")
        token = self.reference(task.values(g.inputs[0])[whole], positions, params, seeds)
        self.publish(task, token, g.outputs[1:-1], (rows,))

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import sample
        sample.sample_split(e, g, task, views)

"""attention_prefill: causal attention of a chunk of query rows of one sequence.

q [R, Hq*D] with R = B * C rows, row r of sequence r // C at position pos[r],
over that sequence's cache rows 0..pos[r] (the chunk's own keys appended
before). A task takes `prefill_rows` consecutive rows of one sequence and one
KV head with its G query heads: the matrix units' rows are (row, head) pairs,
tq * G of them, at most PREFILL_MMA_ROWS.
"""

from __future__ import annotations

import numpy as np

from . import copy, full, sequences, cols, zeros, volume
from .attention import Attention, group_width

# Matrix-unit rows (query row, head) of an attention_prefill task: 8 warps of 16 (the
# prefill program's CTAs have 256 threads: driver.PREFILL_THREADS).
PREFILL_MMA_ROWS = 128


def prefill_rows(op) -> int:
    """Query rows per attention_prefill task: the most that fit PREFILL_MMA_ROWS
    (row, head) pairs, a multiple of 16 / G pairs per warp, dividing the chunk."""
    head_dim = op.params["head_dim"]
    group = (op.inputs[0][1] // head_dim) // (op.inputs[1][2] // head_dim)
    chunk = op.domain[0] // op.inputs[1][0]
    for rows in range(min(chunk, PREFILL_MMA_ROWS // group), 0, -1):
        if chunk % rows == 0 and rows * group % 16 == 0:
            return rows
    raise ValueError(f"a prefill chunk of {chunk} rows with {group} query heads per KV head has no "
                     "tile of whole 16-row matrix blocks: make the chunk a multiple of 16")


class AttentionPrefill(Attention):
    name = "attention_prefill"

    def tile_unit(self, op):
        return (prefill_rows(op), group_width(op))

    def fixed_tile(self, op):
        return self.tile_unit(op)

    def reads(self, op, out):
        lo, hi = out
        ratio = group_width(op) // op.params["head_dim"]
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], op.inputs[1][0])
        cache = cols(lo[:, 1] // ratio, -(-hi[:, 1] // ratio), seqs, op.inputs[1])
        return [copy(out), cache, copy(cache), (lo[:, :1].copy(), hi[:, :1].copy())] + \
            [full(lo.shape[0], s) for s in op.inputs[4:]]

    def traffic(self, op, out):
        boxes = self.reads(op, out)
        rows = op.domain[0] // op.inputs[1][0]            # a chunk reads about its own length
        for c in (1, 2):
            lo, hi = boxes[c]
            hi = hi.copy()
            hi[:, 1] = np.minimum(hi[:, 1], rows)
            boxes[c] = (lo, hi)
        return boxes

    def flops(self, op, out):
        return zeros(out)

    def mma_flops(self, op, out):
        # Rows of a tile see the chunk's rows up to their own (causal): half a chunk on average.
        rows = op.domain[0] // op.inputs[1][0]
        return 2 * volume(out) * rows

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import attention_prefill
        attention_prefill.attention_prefill(e, g, task, views)

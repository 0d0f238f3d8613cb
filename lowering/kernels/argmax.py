"""`argmax`: the index of the largest logit of one row (the first one on ties).

The task of row b writes the token to every integer output (the per-step
`next_tokens`, the `tokens` the next step embeds) except the positions, which
it advances to the next step: an output named `positions` (as `mpk-partition`
builds the group; a dotted prefix is allowed) or else a second input.

Each thread scans 16-byte vectors of the row keeping its best (value, index),
then one block reduction of the pairs.
"""

from __future__ import annotations

from mlir.dialects import arith

from . import require
from .emit import byte_width, widest_vector


def better_pair(e, a, b):
    """(value, index) pair b beats pair a: larger, or equal with a smaller index."""
    (va, ia), (vb, ib) = a, b
    gt = arith.cmpf(arith.CmpFPredicate.OGT, vb, va)
    tie = arith.andi(arith.cmpf(arith.CmpFPredicate.OEQ, vb, va), e.lt(ib, ia))
    take = arith.ori(gt, tie)
    return [e.select(take, vb, va), e.select(take, ib, ia)]


def argmax(e, g, task, buffers):
    require(len(g.inputs) in (1, 2), "argmax reads logits and, optionally, positions")
    logits, positions, outputs = buffers[0], None, []
    for b, view in zip(g.buffers[1:], buffers[1:]):
        if b.role == "positions" or b in g.inputs:
            positions = view
        else:
            outputs.append(view)
    V = logits.shape[1]
    vec = widest_vector(V, element_bytes=byte_width(logits.element))
    row = logits.row(task)

    better = lambda a, b: better_pair(e, a, b)

    def scan(c, best):
        v = e.to_f32(row.load(e.mul(c, vec), n=vec))
        for k, x in enumerate(e.elements(v)):
            best = better(best, [x, e.add(e.mul(c, vec), k)])
        return best

    lowest = [e.f32(float("-inf")), e.int(2**31 - 1)]
    best = e.loop(e.tid, V // vec, e.threads, lowest, scan)
    _, index = e.block_reduce(best, better, lowest)

    publish(e, task, index, outputs, positions)


def publish(e, task, token, outputs, positions) -> None:
    """Thread 0 stores the row's token into every output and advances its position."""
    def store():
        for out in outputs:
            out.store(e.cast_int(token, out.element), task)
        if positions is not None:
            p = positions.load(task)
            positions.store(arith.addi(p, e.int(1, p.type)), task)
    e.if_(e.eq(e.tid, 0), store)

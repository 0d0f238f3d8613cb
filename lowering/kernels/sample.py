"""`sample`: one token per row, greedy or drawn with temperature, top-k, top-p and min-p.

The specification (and the numpy reference both interpreters and the GPU
tests compare against) is mpk.sampling. A task is one row of the logits, the
whole CTA on it:

1. one pass for the max m and the argmax (the token when the temperature is 0:
   nothing else runs then);
2. top-k: the K-th largest logit by radix select: logits map to unsigned keys
   in the same order, and 4 passes of 8 bits build a 256-bin count histogram
   of the keys that match the digits chosen so far; one warp scans it from
   the top (`_select_digit`) for the digit holding the K-th key;
3. Z = sum of w_i = 2^((l_i - m) log2(e) / T) over the keys kept so far;
4. top-p: the same radix select with the histogram weighted by w_i, for the
   largest key whose tokens at or above it carry P * Z;
5. min-p: l_i >= m + T ln(M), a plain comparison;
6. the draw, Gumbel-max: the largest (l_i - m) log2(e) / T - log2(-log2(u_i))
   over the kept tokens (the natural-log form of mpk.sampling scaled by
   log2(e), so the same argmax), u_i from the counter hash of (seed, position, i).

The task of row b writes its token to every integer output (`next_tokens`,
and a decode step's `tokens`) and advances `positions` when that is an output
(the next step's input, as argmax does).

`sample_split` (kinds/sample_split.py) runs step 1 on P splits of a row at
once, and step 6 too for a plain temperature draw, with each split's scores
taken relative to its own max m_p: the split that arrives last shifts each
split's best score by (m_p - m) log2(e) / T to the row's max m, which keeps
the scores that can win exact, and takes the best. A row with top-k, top-p or
min-p is drawn by the last split from the whole row, as above.
"""

from __future__ import annotations

import math
from functools import partial

from mlir import ir
from mlir.dialects import arith

from mpk.lowering.kinds.sample_split import split_columns

from . import require
from .argmax import better_pair, publish
from .emit import byte_width, f32, i32, widest_vector

LOG2E = 1 / math.log(2)
BINS = 256


def sample(e, g, task, buffers):
    require(len(g.inputs) == 4, "sample reads logits, positions, params and seeds")
    logits, positions, params, seeds = buffers[:4]
    outputs, advance = _token_outputs(g.outputs, buffers[4:])
    V = logits.shape[1]
    _require_smem(e)
    vec = widest_vector(V, element_bytes=byte_width(logits.element))
    row = logits.row(task)
    each, better = _fold(e, row, 0, V // vec, vec), partial(better_pair, e)
    top, greedy = e.block_reduce(each(lambda x, i, acc: better(acc, [x, i]), _lowest(e)), better, _lowest(e),
                                 byte_offset=REDUCE_AT)
    setting = Setting(e, params, seeds, positions, task, V)
    token = e.if_(setting.hot, lambda: [_draw(e, setting, row, V, vec, top)], lambda: [greedy], [i32()])[0]
    publish(e, task, token, outputs, advance)


def sample_split(e, g, task, buffers):
    """A sample_split task (kinds/sample_split.py): split p of row b's columns, its partial
    row, its arrival; the last split of the row merges and publishes."""
    require(len(g.inputs) == 4, "sample_split reads logits, positions, params and seeds")
    logits, positions, params, seeds, partials = buffers[:5]
    arrivals = buffers[-1]
    outputs, advance = _token_outputs(g.outputs[1:-1], buffers[5:-1])
    (_, P, _), V = partials.shape, logits.shape[1]
    _require_smem(e)
    vec = widest_vector(V, element_bytes=byte_width(logits.element))
    columns = split_columns(V, P)
    b, p, _ = e.unravel(task, g.grid)
    row = logits.row(b)
    setting = Setting(e, params, seeds, positions, b, V)
    better = partial(better_pair, e)

    # This split's max and argmax, and for a plain temperature draw its best Gumbel score
    # relative to its own max (exact near the max, as the whole row's draw is: merged below).
    first = e.mul(p, columns // vec)
    each = _fold(e, row, first, e.min(e.add(first, columns // vec), V // vec), vec)
    top, index = e.block_reduce(each(lambda x, i, acc: better(acc, [x, i]), _lowest(e)), better, _lowest(e),
                                byte_offset=REDUCE_AT)

    def scores():
        masked = arith.cmpf(arith.CmpFPredicate.OEQ, top, e.f32(float("-inf")))   # a split of -inf logits only
        drawn = each(lambda x, i, acc: better(acc, [e.select(masked, e.f32(float("-inf")),
                                                             setting.score(x, i, top)), i]), _lowest(e))
        return e.block_reduce(drawn, better, _lowest(e), byte_offset=REDUCE_AT)
    score, drawn = e.if_(setting.plain, scores, lambda: _lowest(e), [f32(), i32()])

    def store():
        words = [top, arith.bitcast(f32(), index), score, arith.bitcast(f32(), drawn)]
        partials.store(e.from_elements(words), b, p, 0)
    e.if_(e.eq(e.tid, 0), store)           # the arrival's release publishes it
    last = e.shared(i32(), [1], SLOTS_AT + 12)

    def arrive():
        is_last = e.eq(e.fetch_add_acq_rel(arrivals, 1, b), P - 1)
        e.if_(is_last, lambda: arrivals.store(e.int(0), b))   # ready for the next step
        last.store(arith.extui(i32(), is_last), 0)
    e.if_(e.eq(e.tid, 0), arrive)
    e.barrier()

    def merge():
        def gather(q, acc):
            words = e.elements(partials.load(b, q, 0, n=4))
            return better(acc, [words[0], arith.bitcast(i32(), words[1])])
        top, greedy = e.block_reduce(e.loop(e.tid, P, e.threads, _lowest(e), gather), better, _lowest(e),
                                     byte_offset=REDUCE_AT)

        def merged_draw():
            def gather(q, acc):
                words = e.elements(partials.load(b, q, 0, n=4))
                # Split q's best score, relative to the row's max instead of its own.
                shift = arith.mulf(arith.subf(words[0], top), setting.scale)
                return better(acc, [arith.addf(words[2], shift), arith.bitcast(i32(), words[3])])
            return [e.block_reduce(e.loop(e.tid, P, e.threads, _lowest(e), gather), better, _lowest(e),
                                   byte_offset=REDUCE_AT)[1]]

        def draw():
            return e.if_(setting.plain, merged_draw, lambda: [_draw(e, setting, row, V, vec, top)], [i32()])
        token = e.if_(setting.hot, draw, lambda: [greedy], [i32()])[0]
        publish(e, b, token, outputs, advance)
    e.if_(e.eq(last.load(0), 1), merge)


# Shared memory: the radix select's bins and masses, its broadcast slots, a block reduction.
SLOTS_AT = 8 * BINS
REDUCE_AT = 8 * BINS + 64


def _lowest(e):
    """The (value, index) pair that loses to every other."""
    return [e.f32(float("-inf")), e.int(2**31 - 1)]


def _require_smem(e):
    need = REDUCE_AT + 8 * e.warps
    require(e.smem_bytes >= need, f"sample needs {need} bytes of shared memory")


def _token_outputs(buffers, views):
    """The integer outputs a row's token goes to, and the positions it advances (or None)."""
    outputs, advance = [], None
    for b, view in zip(buffers, views):
        if b.role == "positions":
            advance = view
        else:
            outputs.append(view)
    return outputs, advance


def _fold(e, row, first, end, vec):
    """fold(body, init): body(value, column, carried) over the row's elements of this
    thread in vectors first..end-1 of `vec` columns."""
    def fold(body, init):
        def chunk(c, carried):
            v = e.to_f32(row.load(e.mul(c, vec), n=vec))
            for k, x in enumerate(e.elements(v)):
                carried = body(x, e.add(e.mul(c, vec), k), carried)
            return carried
        return e.loop(e.add(first, e.tid), end, e.threads, init, chunk)
    return fold


class Setting:
    """A row's sampling parameters, seed and position, as the kernel uses them."""

    def __init__(self, e, params, seeds, positions, b, vocab: int):
        self.e = e
        p = params.row(b)
        self.temperature, self.top_k, self.top_p, self.min_p = (p.load(j) for j in range(4))
        self.hot = arith.cmpf(arith.CmpFPredicate.OGT, self.temperature, e.f32(0.0))
        self.k_on = arith.andi(arith.cmpf(arith.CmpFPredicate.OGT, self.top_k, e.f32(0.0)),
                               arith.cmpf(arith.CmpFPredicate.OLT, self.top_k, e.f32(float(vocab))))
        self.p_on = arith.cmpf(arith.CmpFPredicate.OLT, self.top_p, e.f32(1.0))
        self.m_on = arith.cmpf(arith.CmpFPredicate.OGT, self.min_p, e.f32(0.0))
        # A draw from the whole softmax: its Gumbel maximum splits like the argmax does.
        no = lambda c: arith.xori(c, e.constant(ir.IntegerType.get_signless(1), 1))
        self.plain = arith.andi(self.hot, arith.andi(no(self.k_on), arith.andi(no(self.p_on), no(self.m_on))))
        # Of (l - m): the log2 domain (safe to divide when not hot: never used then).
        self.scale = arith.divf(e.f32(LOG2E), e.select(self.hot, self.temperature, e.f32(1.0)))
        seed = e.cast_int(seeds.load(b), i32())
        self.base = _lowbias32(e, arith.addi(_lowbias32(e, seed), e.as_i32(positions.load(b))))

    def score(self, x, i, top):
        """Token i's Gumbel score (l_i - top) log2(e) / T - log2(-log2(u_i))."""
        e = self.e
        h = _lowbias32(e, arith.addi(self.base, i))
        u = arith.mulf(arith.addf(arith.uitofp(f32(), arith.shrui(h, e.int(8))), e.f32(0.5)), e.f32(2.0 ** -24))
        noise = e._intrinsic("llvm.nvvm.lg2.approx.f", arith.negf(e._intrinsic("llvm.nvvm.lg2.approx.f", u)))
        return arith.subf(arith.mulf(arith.subf(x, top), self.scale), noise)


def _draw(e, s: Setting, row, V, vec, top):
    """The token of a hot row (module docstring, steps 2-6), over the whole row; `top`
    is its max. Every thread of the CTA calls it."""
    counts = e.shared(i32(), [BINS])
    masses = e.shared(f32(), [BINS], 4 * BINS)
    slots = e.shared(i32(), [4], SLOTS_AT)            # broadcast: digit, above (i32 or f32 bits)
    each = _fold(e, row, 0, V // vec, vec)
    better = partial(better_pair, e)
    key_of = lambda x: _key(e, x)
    # Top-k: the K-th largest key (0 when off: every key is >= 0).
    k = arith.fptosi(i32(), s.top_k)
    kth = e.if_(s.k_on, lambda: [_radix_select(e, each, key_of, None, k, counts, slots, e.int(0))],
                lambda: [e.int(0)], [i32()])[0]

    def weight(x, key):
        w = e.exp2(arith.mulf(arith.subf(x, top), s.scale))
        return e.select(_uge(key, kth), w, e.f32(0.0))

    total = each(lambda x, i, acc: [arith.addf(acc[0], weight(x, key_of(x)))], [e.f32(0.0)])
    total = e.block_reduce(total, e.sum, [e.f32(0.0)], byte_offset=REDUCE_AT)[0]
    # Top-p: the largest key whose tokens at or above it carry P * Z.
    need = arith.mulf(s.top_p, total)
    pth = e.if_(s.p_on, lambda: [_radix_select(e, each, key_of, weight, need, masses, slots, kth)],
                lambda: [kth], [i32()])[0]
    keep_key = e.select(_uge(pth, kth), pth, kth)
    # Min-p: l >= m + T ln(M) (-inf when off).
    ln_m = arith.mulf(e._intrinsic("llvm.nvvm.lg2.approx.f", e.select(s.m_on, s.min_p, e.f32(1.0))),
                      e.f32(math.log(2)))
    floor = e.select(s.m_on, arith.addf(top, arith.mulf(s.temperature, ln_m)), e.f32(float("-inf")))

    # Gumbel-max over the kept tokens.
    def score(x, i, acc):
        kept = arith.andi(_uge(key_of(x), keep_key), arith.cmpf(arith.CmpFPredicate.OGE, x, floor))
        return better(acc, [e.select(kept, s.score(x, i, top), e.f32(float("-inf"))),
                            e.select(kept, i, e.int(2**31 - 1))])
    drawn = each(score, _lowest(e))
    return e.block_reduce(drawn, better, _lowest(e), byte_offset=REDUCE_AT)[1]


def _key(e, x):
    """An unsigned key in the order of the float x: flip all bits of negatives, the sign of the rest."""
    bits = arith.bitcast(i32(), x)
    negative = e.lt(bits, 0)
    return arith.xori(bits, e.select(negative, e.int(-1), e.int(-2**31)))


def _uge(a, b):
    return arith.cmpi(arith.CmpIPredicate.uge, a, b)


def _lowbias32(e, x):
    """The lowbias32 mixer (mpk.sampling.lowbias32) in wrapping i32 arithmetic."""
    x = arith.xori(x, arith.shrui(x, e.int(16)))
    x = arith.muli(x, e.int(0x7FEB352D))
    x = arith.xori(x, arith.shrui(x, e.int(15)))
    x = arith.muli(x, e.int(0x846CA68B - 2**32))
    return arith.xori(x, arith.shrui(x, e.int(16)))


def _radix_select(e, each, key_of, weight, need, bins, slots, floor):
    """The largest key t such that the keys >= t (and >= `floor`) count `need`
    (or, with `weight(x, key)`, weigh `need`): 4 passes over the row, 8 bits a pass."""
    weighted = weight is not None
    zero = e.f32(0.0) if weighted else e.int(0)
    prefix, mask = e.int(0), 0
    for shift in (24, 16, 8, 0):
        e.strided(e.tid, BINS, e.threads, lambda i: bins.store(zero, i))
        e.barrier()

        def count(x, i, carried, prefix=prefix, mask=mask, shift=shift):
            key = key_of(x)
            match = arith.andi(e.eq(arith.andi(key, e.int(mask)), prefix), _uge(key, floor))
            digit = arith.andi(arith.shrui(key, e.int(shift)), e.int(BINS - 1))
            e.if_(match, lambda: e.atomic_add(bins, weight(x, key) if weighted else e.int(1), digit))
            return carried
        each(count, [])
        e.barrier()
        e.if_(e.eq(e.warp, 0), lambda: _select_digit(e, bins, need, slots, weighted))
        e.barrier()
        digit = slots.load(0)
        above = slots.load(1)
        need = arith.subf(need, arith.bitcast(f32(), above)) if weighted else arith.subi(need, above)
        prefix = arith.ori(prefix, arith.shli(digit, e.int(shift)))
        mask |= (BINS - 1) << shift
        mask = mask - 2**32 if mask >= 2**31 else mask
        e.barrier()     # slots and bins are reused by the next pass
    return prefix


def _select_digit(e, bins, need, slots, weighted):
    """Warp 0: the digit d whose bin holds the `need`-th unit counted from the top
    bin down; writes d and the total of the bins above it to slots[0], slots[1]."""
    per_lane = BINS // 32
    add = arith.addf if weighted else arith.addi
    values = [bins.load(e.sub(BINS - 1, e.add(e.mul(e.lane, per_lane), j))) for j in range(per_lane)]
    own = values[0]
    for v in values[1:]:
        own = add(own, v)
    inclusive = e.inclusive_scan(own)
    before = arith.subf(inclusive, own) if weighted else arith.subi(inclusive, own)
    reaches = (arith.cmpf(arith.CmpFPredicate.OGE, inclusive, need) if weighted
               else arith.cmpi(arith.CmpIPredicate.sge, inclusive, need))
    earlier = (arith.cmpf(arith.CmpFPredicate.OLT, before, need) if weighted
               else arith.cmpi(arith.CmpIPredicate.slt, before, need))
    # The lane whose bins cross `need`; the last lane if rounding left it short.
    mine = arith.ori(arith.andi(reaches, earlier),
                     arith.andi(e.eq(e.lane, 31), arith.xori(reaches, e.constant(ir.IntegerType.get_signless(1), 1))))

    def walk():
        running, digit, above, found = before, e.int(0), before, e.constant(ir.IntegerType.get_signless(1), 0)
        for j, v in enumerate(values):
            nxt = add(running, v)
            hit = (arith.cmpf(arith.CmpFPredicate.OGE, nxt, need) if weighted
                   else arith.cmpi(arith.CmpIPredicate.sge, nxt, need))
            if j == per_lane - 1:
                hit = e.constant(ir.IntegerType.get_signless(1), 1)
            take = arith.andi(hit, arith.xori(found, e.constant(ir.IntegerType.get_signless(1), 1)))
            digit = e.select(take, e.sub(BINS - 1, e.add(e.mul(e.lane, per_lane), j)), digit)
            above = e.select(take, running, above)
            found = arith.ori(found, take)
            running = nxt
        slots.store(digit, 0)
        slots.store(arith.bitcast(i32(), above) if weighted else above, 1)
    e.if_(mine, walk)

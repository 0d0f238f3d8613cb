"""Decode attention of one query row against KV-cache rows 0..pos[b], in three kinds.

`attention`: a task is one batch row and `g` KV heads with their G = Hq/Hkv
query heads (grouped-query: the K and V rows are read once for all G heads),
over all rows 0..pos[b].

`attention_partial` + `attention_combine` (split-KV): a partial task is one
batch row, one KV head and split p of P of the rows 0..pos[b] (rows split at
run time, `mpk.interp.ops.split_rows`, so every split has work at any
length); it writes the unnormalized output, the max and the sum of its rows
per query head, and a combine task merges the P splits of its heads. At
batch 1 this turns the 8 tasks of a Qwen3 layer into 8 * P, filling the SMs.

A task does flash-decoding inside the CTA (`attend`):

* a KV row of D elements is read by D/8 lanes, 16 bytes each, so a warp
  covers 32/(D/8) positions at a time and the CTA `warps` times that; every
  lane keeps an online-softmax state (max m, sum l, its 8 output elements)
  per query head, in the log2 domain (q is pre-scaled by scale * log2 e);
* `UNROLL` positions' K and V loads per lane are issued before their math
  (the group param `unroll` overrides it; 4 measured slower than 2, and so
  did software-pipelining the rounds: bench/NOTES.md rounds 4 and 5);
* positions past the end are clamped (a valid address) and masked to -inf;
* states merge across the position slots of a warp by shuffles, then across
  warps through shared memory, where one lane per 8 outputs finishes.
"""

from __future__ import annotations

import math

from mlir.dialects import arith

from . import kind, require
from .emit import byte_width, f32, widest_vector

UNROLL = 2
NEG = -1.0e30  # finite "minus infinity": exp2(NEG - NEG) stays 1, never NaN


def _heads(g, q, kc):
    D = int(g.param("head_dim"))
    Hq, Hkv = q.shape[1] // D, kc.shape[2] // D
    vec = 16 // byte_width(q.element)
    require(D % vec == 0 and 32 % (D // vec) == 0, f"head_dim {D} is not 8, 16, ..., 256")
    return D, Hq // Hkv, vec


def attend(e, g, q, kc, vc, b, kv, begin, end, finish) -> None:
    """Online softmax of KV head `kv`'s G query heads over cache rows [begin, end)
    of sequence b; then `finish(h, c, top, den, num)` runs in the threads
    tid < G * D/vec, one per (query head h of the group, columns c..c+vec):
    the output is num / den, with running max `top` (log2 domain). An empty
    range gives top = NEG, den = 0, num = 0."""
    D, G, vec = _heads(g, q, kc)
    scale = float(g.param("scale"))
    lanes = D // vec  # lanes reading one KV row
    slots = 32 // lanes  # positions a warp reads at once
    stride = e.warps * slots
    scratch = e.warps * G * (D + 2) * 4
    require(scratch <= e.smem_bytes, f"needs {scratch} bytes of shared memory")

    sub, slot = e.rem(e.lane, lanes), e.div(e.lane, lanes)
    last = e.sub(end, 1)
    unroll = int(g.param("unroll", UNROLL))
    rounds = e.div(e.add(e.sub(end, begin), stride * unroll - 1), stride * unroll)
    first = e.add(begin, e.add(e.mul(e.warp, slots), slot))
    col = e.mul(sub, vec)
    k_row, v_row = kc.row(b), vc.row(b)  # [S, Hkv*D]
    log2e = 1 / math.log(2)

    kv_col = e.add(e.mul(kv, D), col)
    heads = [e.add(e.mul(kv, G), h) for h in range(G)]
    qs = [arith.mulf(e.to_f32(q.load(b, e.add(e.mul(h, D), col), n=vec)),
                     e.f32(scale * log2e, vec)) for h in heads]

    def round_(r, state):
        m, l, acc = state[:G], state[G:2 * G], state[2 * G:]
        ts = [e.add(e.mul(e.add(e.mul(r, unroll), u), stride), first) for u in range(unroll)]
        rows = [e.min(t, last) for t in ts]
        ks = [k_row.load(t, kv_col, n=vec) for t in rows]  # all loads in flight
        vs = [v_row.load(t, kv_col, n=vec) for t in rows]
        for t, kx, vx in zip(ts, ks, vs):
            kf, vf = e.to_f32(kx), e.to_f32(vx)
            scores = e.warp_reduce([e.hsum(arith.mulf(qh, kf)) for qh in qs], e.sum, lanes=lanes)
            live = e.lt(t, end)
            for h, s in enumerate(scores):
                s = e.select(live, s, e.f32(float("-inf")))
                m_new = e.maxf(m[h], s)
                corr, p = e.exp2(arith.subf(m[h], m_new)), e.exp2(arith.subf(s, m_new))
                l[h] = e.fma(l[h], corr, p)
                acc[h] = e.fma(vf, e.splat(p, vec), arith.mulf(acc[h], e.splat(corr, vec)))
                m[h] = m_new
        return m + l + acc

    init = [e.f32(NEG)] * G + [e.f32(0.0)] * G + [e.f32(0.0, vec)] * G
    state = e.loop(0, rounds, 1, init, round_)
    m, l, acc = state[:G], state[G:2 * G], state[2 * G:]

    # Merge the slots of a warp (lanes that read the same columns).
    mask = lanes
    while mask < 32:
        for h in range(G):
            m2, l2 = e.shuffle_xor(m[h], mask), e.shuffle_xor(l[h], mask)
            a2 = e.from_elements([e.shuffle_xor(x, mask) for x in e.elements(acc[h])])
            m_new = e.maxf(m[h], m2)
            c1, c2 = e.exp2(arith.subf(m[h], m_new)), e.exp2(arith.subf(m2, m_new))
            l[h] = arith.addf(arith.mulf(l[h], c1), arith.mulf(l2, c2))
            acc[h] = e.fma(acc[h], e.splat(c1, vec), arith.mulf(a2, e.splat(c2, vec)))
            m[h] = m_new
        mask *= 2

    # Merge the warps: [warps, G] (m, l) and [warps, G, D] partial outputs.
    ms = e.shared(f32(), [e.warps, G])
    ls = e.shared(f32(), [e.warps, G], 4 * e.warps * G)
    accs = e.shared(f32(), [e.warps, G, D], 8 * e.warps * G)

    def publish():  # by the lanes of slot 0 (all slots hold the same now)
        for h in range(G):
            accs.store(acc[h], e.warp, h, col)

        def totals():
            for h in range(G):
                ms.store(m[h], e.warp, h)
                ls.store(l[h], e.warp, h)
        e.if_(e.eq(sub, 0), totals)
    e.if_(e.lt(e.lane, lanes), publish)
    e.barrier()

    def merge():
        h, c = e.div(e.tid, lanes), e.mul(e.rem(e.tid, lanes), vec)
        top = e.f32(NEG)
        for w in range(e.warps):
            top = e.maxf(top, ms.load(w, h))
        den, num = e.f32(0.0), e.f32(0.0, vec)
        for w in range(e.warps):
            a = e.exp2(arith.subf(ms.load(w, h), top))
            den = e.fma(ls.load(w, h), a, den)
            num = e.fma(accs.load(w, h, c, n=vec), e.splat(a, vec), num)
        finish(h, c, top, den, num)
    e.if_(e.lt(e.tid, G * lanes), merge)
    e.barrier()  # the scratch is reused by the next KV head


@kind("attention")
def attention(e, g, task, buffers):
    q, kc, vc, positions, out = buffers
    D, G, vec = _heads(g, q, kc)
    require(g.tile[0] == 1 and g.tile[1] % (G * D) == 0,
            f"a tile must be one row of whole KV groups ({G * D} columns)")
    kv_per_task = g.tile[1] // (G * D)
    b, j = e.unravel(task, g.grid)
    length = e.add(e.as_i32(positions.load(b)), 1)
    for h_kv in range(kv_per_task):
        kv = e.add(e.mul(j, kv_per_task), h_kv)

        def finish(h, c, top, den, num, kv=kv):
            o = arith.divf(num, e.splat(den, vec))
            out.store(e.to(out.element, o), b, e.add(e.mul(e.add(e.mul(kv, G), h), D), c))
        attend(e, g, q, kc, vc, b, kv, 0, length, finish)


@kind("attention_partial")
def attention_partial(e, g, task, buffers):
    q, kc, vc, positions, partials = buffers
    D, G, vec = _heads(g, q, kc)
    width, splits = partials.shape[2] // (q.shape[1] // D), int(g.param("splits"))
    require(tuple(g.tile[:2]) == (1, 1) and g.tile[2] == G * width and partials.shape[1] == splits,
            f"a tile must be one row, one split and one KV group ({G * width} columns)")
    b, p, kv = e.unravel(task, g.grid)
    length = e.add(e.as_i32(positions.load(b)), 1)
    chunk = e.div(e.add(length, splits - 1), splits)          # split_rows in mpk.interp.ops
    begin = e.min(e.mul(p, chunk), length)
    end = e.min(e.add(begin, chunk), length)
    row = partials.row(b, p)

    def finish(h, c, top, den, num):
        base = e.mul(e.add(e.mul(kv, G), h), width)
        row.store(num, e.add(base, c))

        def totals():
            row.store(top, e.add(base, D))
            row.store(den, e.add(base, D + 1))
            for pad in range(D + 2, width):          # every element of the tile is written
                row.store(e.f32(0.0), e.add(base, pad))
        e.if_(e.eq(c, 0), totals)
    attend(e, g, q, kc, vc, b, kv, begin, end, finish)


@kind("attention_combine")
def attention_combine(e, g, task, buffers):
    partials, out = buffers
    D = int(g.param("head_dim"))
    (B, splits, _), width = partials.shape, partials.shape[2] // (out.shape[1] // D)
    vec = widest_vector(D, element_bytes=4)   # 16-byte loads of the fp32 partials

    def combine(b, col):
        # The splits are few (P <= SMs / KV heads): unrolled, every load in flight at once.
        h, c = e.div(col, D), e.rem(col, D)
        rows = [partials.row(b, p) for p in range(splits)]
        base = e.mul(h, width)
        ms = [r.load(e.add(base, D)) for r in rows]
        ls = [r.load(e.add(base, D + 1)) for r in rows]
        accs = [r.load(e.add(base, c), n=vec) for r in rows]
        top = ms[0]
        for m in ms[1:]:
            top = e.maxf(top, m)
        den, num = e.f32(0.0), e.f32(0.0, vec)
        for m, l, acc in zip(ms, ls, accs):
            a = e.exp2(arith.subf(m, top))
            den, num = e.fma(l, a, den), e.fma(acc, e.splat(a, vec), num)
        out.store(e.to(out.element, arith.divf(num, e.splat(den, vec))), b, col)
    e.for_each_vector(task, g.grid, g.tile, out.shape, vec, combine)

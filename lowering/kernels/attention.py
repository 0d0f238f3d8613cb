"""Decode attention of one query row against KV-cache rows 0..pos[b], in four kinds.

`attention`: a task is one batch row and `g` KV heads with their G = Hq/Hkv
query heads (grouped-query: the K and V rows are read once for all G heads),
over all rows 0..pos[b].

`attention_partial` + `attention_combine` (split-KV): a partial task is one
batch row, one KV head and split p of P of the rows 0..pos[b] (rows split at
run time, `mpk.interp.ops.split_rows`, so every split has work at any
length); it writes the unnormalized output, the max and the sum of its rows
per query head, and a combine task merges the P splits of its heads. At
batch 1 this turns the 8 tasks of a Qwen3 layer into 8 * P, filling the SMs.
`attention_split` is the partial task plus the merge, done by whichever
split of a KV group arrives last (an acquire-release count per sequence and
KV head): no combine group, one event hop per layer less. With the rope fused
in, its q, k, v and merged output may be flagged (mpk-data-flags): the rope
polls its heads' words and then loads the position at GPU scope, the merge
stores flagged words (`FlaggedView`).

A task does flash-decoding inside the CTA (`attend`):

* a KV row of D elements is read by D/8 lanes, 16 bytes each, so a warp
  covers 32/(D/8) positions at a time and the CTA `warps` times that; every
  lane keeps an online-softmax state (max m, sum l, its 8 output elements)
  per query head, in the log2 domain (q is pre-scaled by scale * log2 e);
* `UNROLL` positions' K and V loads per lane are issued before their math
  (the group param `unroll` overrides it; 3 and 4 measured slower than 2, and
  so did software-pipelining the rounds and a cp.async ring of rows ahead of
  the math: bench/NOTES.md rounds 4, 5 and 16);
* positions past the end are clamped (a valid address) and masked to -inf;
* states merge across the position slots of a warp by shuffles, then across
  warps through shared memory, where one lane per 8 outputs finishes.

With bf16 caches, D a multiple of 64 and G <= 8, the scores and the
weighted sum can run on the tensor cores instead (`_attend_mma`): a warp
takes 8 cache rows at a time (group param `mma_rows`: 8 or 16); S = q K^T is
`mma.m16n8k16` with the G query heads as A's rows (zero-padded to 16) and
the K rows as B; the fp32 C fragment of S is, as it stands, the B fragment
of P^T, so P = exp2(S - m) is packed to bf16 in registers and O^T += V^T P^T
(`m16n8k8`, or k16 for 16 rows) takes V^T as A, each lane packing element j
of two V rows into one register. One max per head (4 lanes share it); each
lane sums its own rows. The group param `mma` picks the path; by default the
tensor cores from G = 4 query heads per KV head up: their cost does not grow
with G, the CUDA cores' does. Measured on an H100 (bench/NOTES.md round 6):
Llama 3.2 1B (G = 4, D = 64) about -5.4% / -9.2% per step at batch 1 / 8, Qwen3-8B
(G = 4, D = 128) -2.5%; Qwen3-0.6B and 1.7B (G = 2) 0 to +2.4% slower, so
they stay on the CUDA cores. 8 rows a block spill fewer registers than 16
(at 512 threads a thread has 128).
"""

from __future__ import annotations

import math

from mlir import ir
from mlir.dialects import arith, llvm

from . import require
from .emit import FlaggedView, byte_width, f32, i32, ptr, widest_vector
from .rope_append import rope_group

UNROLL = 2
NEG = -1.0e30  # finite "minus infinity": exp2(NEG - NEG) stays 1, never NaN


def _heads(g, q, kc):
    D = int(g.param("head_dim"))
    Hq, Hkv = q.shape[1] // D, kc.shape[2] // D
    vec = 16 // byte_width(q.element)
    require(D % vec == 0 and 32 % (D // vec) == 0, f"head_dim {D} is not 8, 16, ..., 256")
    return D, Hq // Hkv, vec


def _group_of(g, q_heads):
    """D, G and the 16-byte vector width of a view of one KV group's query heads [G * D]."""
    D = int(g.param("head_dim"))
    return D, q_heads.shape[0] // D, 16 // byte_width(q_heads.element)


def attend(e, g, q_heads, kc, vc, b, kv, begin, end, finish) -> None:
    """Online softmax of KV head `kv`'s G query heads (the view `q_heads` [G * D]:
    in q, or in shared memory) over cache rows [begin, end) of sequence b; then
    `finish(h, c, top, den, num)` runs in the threads tid < G * D/vec, one per
    (query head h of the group, columns c..c+vec): the output is num / den,
    with running max `top` (log2 domain). An empty range gives top = NEG,
    den = 0, num = 0. Ends with a CTA barrier, after finish's stores."""
    D, G, vec = _group_of(g, q_heads)
    if _mma_fits(g, q_heads, kc, D, G):
        return _attend_mma(e, g, q_heads, kc, vc, b, kv, begin, end, finish)
    scale = float(g.param("scale"))
    lanes = D // vec  # lanes reading one KV row
    slots = 32 // lanes  # positions a warp reads at once
    stride = e.warps * slots
    scratch = e.warps * G * (D + 2) * 4
    require(scratch <= e.smem_bytes, f"needs {scratch} bytes of shared memory")

    sub, slot = e.rem(e.lane, lanes), e.div(e.lane, lanes)
    last = e.sub(end, 1)
    unroll = int(g.param("unroll", UNROLL))
    per_round = _round_rows(e, g, q_heads, kc, D, G, vec)   # stride * unroll
    rounds = e.div(e.add(e.sub(end, begin), per_round - 1), per_round)
    first = e.add(begin, e.add(e.mul(e.warp, slots), slot))
    col = e.mul(sub, vec)
    k_row, v_row = kc.row(b), vc.row(b)  # [S, Hkv*D]
    log2e = 1 / math.log(2)

    kv_col = e.add(e.mul(kv, D), col)
    qs = [arith.mulf(e.to_f32(q_heads.load(e.add(h * D, col), n=vec)),
                     e.f32(scale * log2e, vec)) for h in range(G)]

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

    def publish(ms, ls, accs):  # by the lanes of slot 0 (all slots hold the same now)
        def lanes_of_slot_0():
            for h in range(G):
                accs.store(acc[h], e.warp, h, col)

            def totals():
                for h in range(G):
                    ms.store(m[h], e.warp, h)
                    ls.store(l[h], e.warp, h)
            e.if_(e.eq(sub, 0), totals)
        e.if_(e.lt(e.lane, lanes), lanes_of_slot_0)
    _merge_warps(e, G, D, vec, publish, finish)


def _merge_warps(e, G, D, vec, publish, finish) -> None:
    """Merge the warps' states: `publish(ms, ls, accs)` writes each warp's running
    max and sum [warps, G] and unnormalized output [warps, G, D] to shared memory;
    then `finish` runs per (query head, `vec` columns) on the merged state."""
    lanes = D // vec
    ms = e.shared(f32(), [e.warps, G])
    ls = e.shared(f32(), [e.warps, G], 4 * e.warps * G)
    accs = e.shared(f32(), [e.warps, G, D], 8 * e.warps * G)
    publish(ms, ls, accs)
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


def _q_offset(e, G, D) -> int:
    """Where a KV group's query heads go in shared memory: after `_merge_warps`' scratch."""
    return -(-e.warps * G * (D + 2) * 4 // 16) * 16


def _in_shared(view) -> bool:
    return view.base.type == ptr(3)


def _mma_fits(g, q_heads, kc, D, G) -> bool:
    """The tensor-core path: by the group param `mma` (1 or 0), else from G = 4 query
    heads per KV head up. Its cost does not depend on G (the heads are padded to 16
    rows) while the CUDA cores' grows with it; measured (bench/NOTES.md round 6),
    the tensor cores won at G = 4 (Llama 3.2 1B, Qwen3-8B) and lost at G = 2."""
    shape_fits = all(str(t.element) == "bf16" for t in (q_heads, kc)) and D % 64 == 0 and G <= 8
    return shape_fits and bool(int(g.param("mma", G >= 4)))


def _attend_mma(e, g, q_heads, kc, vc, b, kv, begin, end, finish) -> None:
    """`attend` on the tensor cores (module docstring): blocks of 16 cache rows per warp.

    Fragments of `mma.m16n8k16` (PTX ISA): lane (quad, t) = (lane / 4, lane % 4)
    holds A[quad | quad+8][2t, 2t+1 | 2t+8, 2t+9], B[2t, 2t+1 | 2t+8, 2t+9][quad]
    and C[quad | quad+8][2t, 2t+1]."""
    D, G, vec = _group_of(g, q_heads)
    scale = float(g.param("scale")) / math.log(2)
    runs = D // 32                       # 16-byte runs of a K row per lane (4 lanes per row)
    quad, t = e.div(e.lane, 4), e.rem(e.lane, 4)
    k_row, v_row = kc.row(b), vc.row(b)  # [S, Hkv*D]
    kv_col = e.mul(kv, D)
    zero = e.int(0)
    last = e.sub(end, 1)
    if not _in_shared(q_heads):
        need = _q_offset(e, G, D) + G * D * byte_width(q_heads.element)
        require(need <= e.smem_bytes, f"needs {need} bytes of shared memory")
        staged = e.shared(q_heads.element, q_heads.shape, _q_offset(e, G, D))
        e.copy(q_heads, staged)
        e.barrier()
        q_heads = staged
    # S = q K^T: q as A (row quad: query head quad; rows 8..15 zero), 8 K rows as B.
    # Any order of d serves a dot product as long as q and K agree (linear's
    # tensor-core trick): lane t takes d in [8 runs t, 8 runs (t + 1)).
    d_k = [e.add(e.mul(t, 8 * runs), 8 * r) for r in range(runs)]
    head = e.mul(e.min(quad, G - 1), D)  # heads >= G compute garbage, never stored

    def scores(q_words, k_words):
        """S[head quad][rows 2t, 2t+1 of the 8 whose K rows lanes quad loaded]."""
        acc = [e.f32(0.0)] * 4
        for qw, kw in zip(q_words, k_words):
            acc = e.mma_bf16(acc, [qw[0], zero, qw[1], zero], kw[:2])
            acc = e.mma_bf16(acc, [qw[2], zero, qw[3], zero], kw[2:])
        return acc[:2]

    # O^T += V^T P^T: V^T as A (16 dims by 16 rows), P^T as B (16 rows by 8 heads),
    # which is S's C fragment as it stands. Lane quad loads 16 bytes of each of its V
    # rows (2t, 2t+1, 2t+8, 2t+9) at dims 64 r + 8 quad: its dims u = 0 .. D/8 - 1.
    # mma i takes dim u = i as A's row quad and u = i + D/16 as row quad + 8.
    d_v = [e.add(kv_col, e.add(64 * r, e.mul(quad, 8))) for r in range(D // 64)]
    mmas = D // 16
    mask16, high16 = e.int(0xFFFF), e.int(-65536)

    def pair(lo_words, hi_words, u):
        """Dim u of two V rows (lists of their runs' words), packed (lo, hi) in one register."""
        lo, hi = lo_words[u // 8][u % 8 // 2], hi_words[u // 8][u % 8 // 2]
        if u % 2 == 0:
            return arith.ori(arith.andi(lo, mask16), arith.shli(hi, e.int(16)))
        return arith.ori(arith.shrui(lo, e.int(16)), arith.andi(hi, high16))

    R = int(g.param("mma_rows", 8))      # cache rows per block: 8 (k8 mma) or 16 (k16)
    require(R in (8, 16), f"mma_rows must be 8 or 16, not {R}")
    stride = _round_rows(e, g, q_heads, kc, D, G, vec)   # R * warps
    iters = e.div(e.add(e.sub(end, begin), stride - 1), stride)
    first = e.add(begin, e.mul(e.warp, R))
    heads_of_c = [e.mul(e.add(e.mul(t, 2), c), 4) for c in range(2)]   # lane holding head 2t + c

    def block(i, state):
        m, l, acc = state[0], state[1], state[2:]
        base = e.add(first, e.mul(i, stride))
        k_words = [[e.words(k_row, e.min(e.add(base, e.add(half, quad)), last), e.add(kv_col, c))
                    for c in d_k] for half in range(0, R, 8)]
        rows = [e.add(base, e.add(e.mul(t, 2), r)) for r in (0, 1, 8, 9)[:R // 4]]
        v_words = [[e.words(v_row, e.min(r, last), c) for c in d_v] for r in rows]
        # q from shared memory in the loop (volatile: not hoisted), not held in
        # registers across it, where with the loads in flight it would spill.
        q_words = [e.words(q_heads, e.add(head, c), volatile=True) for c in d_k]
        s = [x for words in k_words for x in scores(q_words, words)]
        s = [e.select(e.lt(r, end), arith.mulf(x, e.f32(scale)), e.f32(float("-inf")))
             for x, r in zip(s, rows)]
        top = s[0]
        for x in s[1:]:
            top = e.maxf(top, x)
        for mask in (1, 2):                  # over the 4 lanes of a head: R rows
            top = e.maxf(top, e.shuffle_xor(top, mask))
        m_new = e.maxf(m, top)
        corr = e.exp2(arith.subf(m, m_new))
        p = [e.exp2(arith.subf(x, m_new)) for x in s]
        total = p[0]
        for x in p[1:]:
            total = arith.addf(total, x)
        l = e.fma(l, corr, total)
        p_t = [e.pack_bf16(p[j], p[j + 1]) for j in range(0, len(p), 2)]
        corr_c = [e.shuffle_idx(corr, lane) for lane in heads_of_c]     # of C's columns
        out = []
        for i in range(mmas):
            a = [pair(v_words[j], v_words[j + 1], u) for j in range(0, len(rows), 2) for u in (i, i + mmas)]
            c = [arith.mulf(acc[4 * i + k], corr_c[k % 2]) for k in range(4)]
            out += e.mma_bf16(c, a, p_t, k=R)
        return [m_new, l] + out

    state = e.loop(0, iters, 1, [e.f32(NEG), e.f32(0.0)] + [e.f32(0.0)] * (4 * mmas), block)
    m, l, acc = state[0], state[1], state[2:]
    for mask in (1, 2):                      # each lane summed its own rows of the head
        l = arith.addf(l, e.shuffle_xor(l, mask))

    def publish(ms, ls, accs):
        # acc[4 i + k]: dim u = i (k < 2) or i + D/16 (k >= 2) of head 2t + k % 2.
        for c in range(2):
            def column(c=c):
                h = e.add(e.mul(t, 2), c)
                for r in range(D // 64):
                    us = range(8 * r, 8 * r + 8)
                    dims = e.from_elements([acc[4 * (u % mmas) + 2 * (u // mmas) + c] for u in us])
                    accs.store(dims, e.warp, h, e.add(64 * r, e.mul(quad, 8)))
            e.if_(e.lt(e.add(e.mul(t, 2), c), G), column)

        def totals():
            ms.store(m, e.warp, quad)
            ls.store(l, e.warp, quad)
        e.if_(arith.andi(e.eq(t, 0), e.lt(quad, G)), totals)
    _merge_warps(e, G, D, vec, publish, finish)


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
        attend(e, g, q.at(b, e.mul(kv, G * D), shape=[G * D]), kc, vc, b, kv, 0, length, finish)


def attention_partial(e, g, task, buffers):
    rope = g.typed.inv_freq is not None   # QK-norm, rope and the KV append fused in (mpk-partition)
    if rope:
        q, k, v, kc, vc, positions, *rest = buffers
        norms, partials = rest[:-3], rest[-3]
    else:
        q, kc, vc, positions, partials = buffers
    D, G, vec = _heads(g, q, kc)
    width, splits = partials.shape[2] // (q.shape[1] // D), int(g.param("splits"))
    require(tuple(g.tile[:2]) == (1, 1) and g.tile[2] == G * width and partials.shape[1] == splits,
            f"a tile must be one row, one split and one KV group ({G * width} columns)")
    b, p, kv = e.unravel(task, g.grid)
    polled = isinstance(q, FlaggedView)
    require(rope or not polled, "flagged q needs the fused rope (mpk-data-flags)")
    pos = None if polled else e.as_i32(positions.load(b))

    def rows(pos):
        return _split_rows(e, pos, p, splits)
    row = partials.row(b, p)
    q_heads = q.at(b, e.mul(kv, G * D), shape=[G * D])
    if rope:
        # Every split normalizes and rotates its G query heads into shared memory
        # (after attend's scratch); the split holding row positions[b] also appends
        # k and v there, before its own warps read that row. The split's rows are
        # worked out after the rope, which issues its loads before it uses pos.
        offset = _q_offset(e, G, D)
        # Flagged q, k and v (mpk-data-flags): this step's position was written before
        # them but may be older in this SM's L1 (no acquire started the task), so each
        # warp loads it at GPU scope after its polls, and the k warp shares it in the
        # word after the query heads.
        q_bytes = -(-G * D * byte_width(q.element) // 4) * 4
        need = q_bytes + (4 if polled else 0)
        require(offset + need <= e.smem_bytes, f"the fused rope needs {need} more bytes of shared memory")
        q_heads = e.shared(q.element, [G * D], offset)
        shared_pos = e.shared(i32(), [1], offset + q_bytes) if polled else None

        def owner(pos):                                       # begin <= pos < end
            begin, end = rows(pos)
            return arith.andi(e.lt(begin, e.add(pos, 1)), e.lt(pos, end))
        rope_group(e, g, b, kv, (q, k, v, positions, norms, kc, vc),
                   lambda i: q_heads.at(e.mul(i, D), shape=[D]), append=owner,
                   pos=(lambda: e.load_gpu_scope(positions, b)) if polled else pos,
                   publish=(lambda at: shared_pos.store(at, 0)) if polled else None)
        e.barrier()
        if polled:
            pos = shared_pos.load(0)
    begin, end = rows(pos)

    def finish(h, c, top, den, num):
        base = e.mul(e.add(e.mul(kv, G), h), width)
        row.store(num, e.add(base, c))

        def totals():
            row.store(top, e.add(base, D))
            row.store(den, e.add(base, D + 1))
            for pad in range(D + 2, width):          # every element of the tile is written
                row.store(e.f32(0.0), e.add(base, pad))
        e.if_(e.eq(c, 0), totals)
    attend(e, g, q_heads, kc, vc, b, kv, begin, end, finish)


def _split_rows(e, pos, p, splits):
    """Split p's rows [begin, end) of 0..pos (split_rows in mpk.interp.ops)."""
    length = e.add(pos, 1)
    chunk = e.div(e.add(length, splits - 1), splits)
    begin = e.min(e.mul(p, chunk), length)
    return begin, e.min(e.add(begin, chunk), length)


def prefetch_cache_rows(e, g, task, buffers):
    """The prefetch of an attention_partial or attention_split task, run by one
    thread while the task waits for q, k and v (mpk_prefetch_dispatch): the
    cache rows its first round of `attend` reads, into L2, so that they stream
    from memory during the wait and not after it. The Hkv tasks of a split read
    the same rows (a head each, D of a row's Hkv * D elements), so each copies
    1/Hkv of the rows, whole, with one bulk copy per cache: together they copy
    every byte once. Only the first round: the whole split (at batch 8, ctx 1024,
    8 times the rows), copied by the task itself, measured 1.4-5% slower a step
    (bench/NOTES.md round 18)."""
    rope = g.typed.inv_freq is not None
    q, kc, vc, positions = (buffers[0], *buffers[3:6]) if rope else buffers[:4]
    D, G, vec = _heads(g, q, kc)
    b, p, kv = e.unravel(task, g.grid)
    begin, end = _split_rows(e, e.as_i32(positions.load(b)), p, int(g.param("splits")))
    end = e.min(end, e.add(begin, _round_rows(e, g, q, kc, D, G, vec)))
    hkv = kc.shape[2] // D
    share = e.div(e.add(e.sub(end, begin), hkv - 1), hkv)
    lo = e.min(e.add(begin, e.mul(kv, share)), end)
    hi = e.min(e.add(lo, share), end)
    row_bytes = kc.shape[2] * byte_width(kc.element)

    def copy():
        size = e.mul(e.sub(hi, lo), row_bytes)
        for cache in (kc, vc):
            address = llvm.PtrToIntOp(ir.IntegerType.get_signless(64), cache.row(b).address(lo, 0)).result
            llvm.InlineAsmOp(None, [address, size], "cp.async.bulk.prefetch.L2.global [$0], $1;", "l,r",
                             has_side_effects=True)
    e.if_(e.lt(lo, hi), copy)


def _round_rows(e, g, q, kc, D, G, vec) -> int:
    """The cache rows one round of `attend` reads (all warps): its loop's step, and
    what a prefetch function copies ahead of it."""
    if _mma_fits(g, q, kc, D, G):
        return int(g.param("mma_rows", 8)) * e.warps
    return e.warps * (32 // (D // vec)) * int(g.param("unroll", UNROLL))


def attention_split(e, g, task, buffers):
    """An attention_partial whose last split merges (kinds/attention_split.py)."""
    partials, out, arrivals = buffers[-5 if g.typed.inv_freq is not None else -3], buffers[-2], buffers[-1]
    attention_partial(e, g, task, buffers[:-2])
    D = int(g.param("head_dim"))
    (_, splits, _), heads = partials.shape, out.shape[1] // D
    G, width, vec = heads // arrivals.shape[1], partials.shape[2] // heads, widest_vector(D, element_bytes=4)
    b, _, kv = e.unravel(task, g.grid)
    last = e.shared(i32(), [1])   # attend's closing barrier ordered every partial store before the arrival

    def arrive():
        is_last = e.eq(e.fetch_add_acq_rel(arrivals, 1, b, kv), splits - 1)
        e.if_(is_last, lambda: arrivals.store(e.int(0), b, kv))   # ready for the next step
        last.store(arith.extui(i32(), is_last), 0)
    e.if_(e.eq(e.tid, 0), arrive)
    e.barrier()

    def merge():
        first = e.mul(kv, G * D)
        e.strided(e.tid, G * D // vec, e.threads,
                  lambda i: _merge(e, partials, out, D, width, splits, b, e.add(first, e.mul(i, vec)), vec))
    e.if_(e.eq(last.load(0), 1), merge)


def attention_combine(e, g, task, buffers):
    partials, out = buffers
    D = int(g.param("head_dim"))
    (_, splits, _), width = partials.shape, partials.shape[2] // (out.shape[1] // D)
    vec = widest_vector(D, element_bytes=4)   # 16-byte loads of the fp32 partials
    e.for_each_vector(task, g.grid, g.tile, out.shape, vec,
                      lambda b, col: _merge(e, partials, out, D, width, splits, b, col, vec))


def _merge(e, partials, out, D, width, splits, b, col, vec):
    """out[b, col..col+vec] from the P partial rows of its query head (dialects/README.md)."""
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

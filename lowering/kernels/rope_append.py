"""`rope_append`: QK-norm (optional), rope and KV append of one KV head group.

A task takes sequence b and KV head h (grid [B, Hkv]): its Hq/Hkv query
heads are normalized (with the param `eps`) and rotated into the q output,
the k head likewise into k_cache[b, positions[b]], and the v head is copied
into v_cache[b, positions[b]]. One warp per head: a lane holds its vectors
of both halves of the head in registers through the norm's warp reduction
and the rotation, so every element is read once and written once. The
norm's result is rounded to the storage type before the rotation, as the
unfused rmsnorm stores it; the rotation is `rope`'s (kernels/rope.py).
`rope_group` is the task body, shared with an `attention_partial` that has
the rope_append fused in (its q heads go to shared memory instead).
"""

from __future__ import annotations

from mlir.dialects import arith

from . import require
from .emit import FlaggedView, byte_width, widest_vector


def rope_append(e, g, task, buffers):
    q, k, v, k_cache, _, positions, *norms, q_out, _, v_cache = buffers
    counts = norms.pop() if g.typed.row_counts else None   # prompt rows per sequence (prefill)
    ratio, D = q.shape[1] // k.shape[1], int(g.param("head_dim"))
    tr = g.tile[0]
    require(g.tile[1] == ratio * D, f"rope_append tiles are rows of one KV head group, {ratio * D} columns")
    require(q.shape[0] % k_cache.shape[0] == 0, f"{q.shape[0]} rows over {k_cache.shape[0]} sequences")
    per_seq = q.shape[0] // k_cache.shape[0]
    i, h = e.unravel(task, g.grid)
    caches = (buffers[-2], v_cache)
    if tr == 1:
        rope_group(e, g, i, h, (q, k, v, positions, norms, *caches),
                   lambda j: q_out.at(i, e.mul(e.add(e.mul(h, ratio), j), D), shape=[D]),
                   sequence=e.div(i, per_seq))
        return
    # A tile of rows (a prefill chunk): the warps take (row, head) units, the
    # G query heads, the k head and the v head of every row.
    r0 = e.mul(i, tr)
    rows = e.tile_extent(r0, tr, q.shape[0])
    units = ratio + 2
    rotate = _Rotation(e, g, q)
    q_norm, k_norm = norms if norms else (None, None)

    def unit(u):
        r = e.add(r0, e.div(u, units))
        if counts is not None:     # padding rows: nothing to append (never read)
            seq = e.div(r, per_seq)
            e.if_(e.lt(e.sub(r, e.mul(seq, per_seq)), e.as_i32(counts.load(seq))), lambda: row_unit(u, r))
        else:
            row_unit(u, r)

    def row_unit(u, r):
        j = e.rem(u, units)
        pos = e.as_i32(positions.load(r))
        seq = e.div(r, per_seq)
        col = e.mul(h, D)

        def query():
            head = e.mul(e.add(e.mul(h, ratio), j), D)
            rotate(q.at(r, head, shape=[D]), q_out.at(r, head, shape=[D]), q_norm, pos)

        def key():
            rotate(k.at(r, col, shape=[D]), caches[0].at(seq, pos, col, shape=[D]), k_norm, pos)

        def value():
            _copy_head(e, v.at(r, col, shape=[D]), lambda at: caches[1].at(seq, at, col, shape=[D]), pos)
        e.if_(e.lt(j, ratio), query,
              lambda: e.if_(e.eq(j, ratio), key, lambda: value() or []) or [])
    e.strided(e.warp, e.mul(rows, units), e.warps, unit)


def _copy_head(e, src, dst, pos, store=None) -> None:
    """One head [D] copied by one warp, a 16-byte vector a lane, into the view
    `dst(pos)`: the load is pinned with `pos` (one round trip, and the row's
    address after both); `store(pos)`, an i1, gates the store (default: always)."""
    D = src.shape[0]
    n = widest_vector(D, element_bytes=byte_width(src.element))
    require(D // n <= 32, f"head_dim {D} is more than a warp's 16-byte vectors")
    lane = e.min(e.lane, D // n - 1)
    value = src.load(e.mul(lane, n), n=n)
    value, at = e.pinned([value, _position(pos)])
    live = e.lt(e.lane, D // n)
    e.if_(live if store is None else arith.andi(live, store(at)),
          lambda: dst(at).store(value, e.mul(lane, n)))


def _position(pos):
    """`pos` as a value: loaded here if it is a function (rope_group's lazy position)."""
    return pos() if callable(pos) else pos


class _Rotation:
    """QK-norm (with a weight) and rope of one head by one warp: a lane holds its
    vectors of both halves of the head in registers through the norm's warp
    reduction and the rotation."""

    def __init__(self, e, g, q):
        freqs = [float(f) for f in g.param("inv_freq")]
        self.e, self.half, self.D = e, len(freqs), int(g.param("head_dim"))
        require(self.D == 2 * self.half, f"head_dim {self.D} is not 2 * len(inv_freq) = {2 * self.half}")
        self.eps = g.typed.eps
        # Vectors of each half of a head, about one per lane.
        half = self.half
        self.vec = next(n for n in (8, 4, 2, 1) if half % n == 0 and (n == 1 or half // n >= 32)
                        and n * byte_width(q.element) <= 16)
        self.items = half // self.vec
        self.slots = -(-self.items // 32)
        self.table = e.constant_table("inv_freq", freqs)

    def __call__(self, src, dst, weight, pos):
        """src, dst: views of one head [D]; weight: its norm weight or None; pos: the i32 position."""
        self.apply(*self.fetch(src, weight, pos), dst)

    def fetch(self, src, weight, pos):
        """The head's loads (src, the norm weight, the frequencies) issued at once
        and pinned together with `pos` (`Emitter.pinned`): one round trip, not one
        after each use. Returns (the loaded head, pos)."""
        e, vec, half = self.e, self.vec, self.half
        lanes = []  # (j, in range?) of this lane's vectors
        for m in range(self.slots):
            j = e.add(e.lane, 32 * m)
            ragged = (m + 1) * 32 > self.items
            lanes.append((e.mul(e.min(j, self.items - 1) if ragged else j, vec),
                          e.lt(j, self.items) if ragged else None))
        head = [((at,), vec) for j, _ in lanes for at in (j, e.add(j, half))]
        # A flagged head (mpk-data-flags) is polled in one loop, after the other loads.
        polled = isinstance(src, FlaggedView)
        values = [] if polled else src.load_many(head)
        weights = ([(weight.load(j, n=vec), weight.load(e.add(j, half), n=vec)) for j, _ in lanes]
                   if weight is not None else [])
        freqs = [self.table.load(j, n=vec) for j, _ in lanes]
        values = values or src.load_many(head)
        pairs = list(zip(values[0::2], values[1::2]))
        flat = e.pinned([x for pair in pairs + weights for x in pair] + freqs + [_position(pos)])
        n = len(lanes)
        pairs, weights = list(zip(flat[0:2 * n:2], flat[1:2 * n:2])), flat[2 * n:-(n + 1)]
        weights = list(zip(weights[0::2], weights[1::2])) or None
        return (lanes, pairs, weights, flat[-(n + 1):-1], src.element), flat[-1]

    def apply(self, fetched, pos, dst, store=None):
        """QK-norm and rotation of `fetch`'s head into dst; `store`: an i1 that
        gates the stores (default: always)."""
        e, vec, half, D = self.e, self.vec, self.half, self.D
        lanes, pairs, weights, freqs, element = fetched
        pairs = [(e.to_f32(a), e.to_f32(c)) for a, c in pairs]
        pos_f = e.splat(e.to_f32(pos), vec)
        if weights is not None:
            ss = e.f32(0.0)
            for (a, c), (_, valid) in zip(pairs, lanes):
                part = arith.addf(e.hsum(arith.mulf(a, a)), e.hsum(arith.mulf(c, c)))
                ss = arith.addf(ss, part if valid is None else e.select(valid, part, e.f32(0.0)))
            ss = e.warp_reduce([ss], e.sum)[0]
            inv = e.splat(e.rsqrt(arith.addf(arith.mulf(ss, e.f32(1.0 / D)), e.f32(self.eps))), vec)

            def norm(x, w):
                return e.to_f32(e.to(element, arith.mulf(arith.mulf(x, inv), e.to_f32(w))))
            pairs = [(norm(a, wa), norm(c, wc)) for (a, c), (wa, wc) in zip(pairs, weights)]
        for (a, c), (j, valid), freq in zip(pairs, lanes, freqs):
            sin, cos = e.sincos(arith.mulf(pos_f, freq))
            lo = e.to(dst.element, arith.subf(arith.mulf(a, cos), arith.mulf(c, sin)))
            hi = e.to(dst.element, e.fma(a, sin, arith.mulf(c, cos)))

            def put(lo=lo, hi=hi, j=j):
                dst.store(lo, j)
                dst.store(hi, e.add(j, half))
            gate = valid if store is None else store if valid is None else arith.andi(valid, store)
            put() if gate is None else e.if_(gate, put)


def rope_group(e, g, b, h, buffers, q_dst, append=None, sequence=None, pos=None, publish=None) -> None:
    """QK-norm, rope and KV append of KV head h of row b (of cache sequence
    `sequence`, default b): query head i of the group into the view `q_dst(i)`
    [D], k and v into the caches' row positions[b] (where `append(pos)`, an
    i1, holds, if given). `buffers`: q, k, v, positions, the norm weights (a
    list, empty without QK-norm), k_cache, v_cache. `pos`: positions[b], if
    the caller loaded it, or a function that loads it, called by each warp after
    its flagged q, k or v arrived (mpk-data-flags); `publish(pos)`, if given, runs
    in one lane of the k warp.

    Each warp issues all its loads before it first uses the position: a
    consumer of that load ahead of them would make two round trips of one."""
    q, k, v, positions, norms, k_cache, v_cache = buffers
    D = int(g.param("head_dim"))
    ratio = q.shape[1] // k.shape[1]
    rotate = _Rotation(e, g, q)
    sequence = b if sequence is None else sequence
    pos = e.as_i32(positions.load(b)) if pos is None else pos
    q_norm, k_norm = norms if norms else (None, None)
    k_col = e.mul(h, D)

    def query(i):
        rotate(q.at(b, e.mul(e.add(e.mul(h, ratio), i), D), shape=[D]), q_dst(i), q_norm, pos)
    e.strided(e.warp, ratio, e.warps, query)

    def key():   # the cache row's address waits for pos, after the loads
        head, at = rotate.fetch(k.at(b, k_col, shape=[D]), k_norm, pos)
        if publish is not None:
            e.if_(e.eq(e.lane, 0), lambda: publish(at))
        rotate.apply(head, at, k_cache.at(sequence, at, k_col, shape=[D]), None if append is None else append(at))

    def copy_v():
        _copy_head(e, v.at(b, k_col, shape=[D]), lambda at: v_cache.at(sequence, at, k_col, shape=[D]),
                   pos, append)
    for w, body in ((ratio % e.warps, key), ((ratio + 1) % e.warps, copy_v)):
        e.if_(e.eq(e.warp, w), body)

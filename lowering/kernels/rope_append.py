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

from . import kind, require
from .emit import byte_width, widest_vector


@kind("rope_append")
def rope_append(e, g, task, buffers):
    q, k, v, _, _, positions, *norms, q_out, k_cache, v_cache = buffers
    ratio, D = q.shape[1] // k.shape[1], int(g.param("head_dim"))
    require(g.tile == (1, ratio * D), f"rope_append tiles are one KV head group, {(1, ratio * D)}")
    b, h = e.unravel(task, g.grid)
    rope_group(e, g, b, h, (q, k, v, positions, norms, k_cache, v_cache),
               lambda i: q_out.at(b, e.mul(e.add(e.mul(h, ratio), i), D), shape=[D]))


def rope_group(e, g, b, h, buffers, q_dst, append=None) -> None:
    """QK-norm, rope and KV append of KV head h of sequence b: query head i of the
    group into the view `q_dst(i)` [D], k and v into the caches' row positions[b]
    (when the i1 `append` holds, if given). `buffers`: q, k, v, positions, the
    norm weights (a list, empty without QK-norm), k_cache, v_cache."""
    q, k, v, positions, norms, k_cache, v_cache = buffers
    freqs = [float(f) for f in g.param("inv_freq")]
    half, D = len(freqs), int(g.param("head_dim"))
    require(D == 2 * half, f"head_dim {D} is not 2 * len(inv_freq) = {2 * half}")
    ratio = q.shape[1] // k.shape[1]
    eps = float(g.param("eps")) if norms else None
    # Vectors of each half of a head, about one per lane.
    vec = next(n for n in (8, 4, 2, 1) if half % n == 0 and (n == 1 or half // n >= 32)
               and n * byte_width(q.element) <= 16)
    items = half // vec
    slots = -(-items // 32)
    table = e.constant_table("inv_freq", freqs)

    pos = e.as_i32(positions.load(b))
    pos_f = e.splat(e.to_f32(pos), vec)

    def head(src, dst, weight):
        """src, dst: views of one head [D]; weight: its norm weight or None."""
        lanes = []  # (j, in range?) of this lane's vectors
        for m in range(slots):
            j = e.add(e.lane, 32 * m)
            ragged = (m + 1) * 32 > items
            lanes.append((e.mul(e.min(j, items - 1) if ragged else j, vec), e.lt(j, items) if ragged else None))
        pairs = [(e.to_f32(src.load(j, n=vec)), e.to_f32(src.load(e.add(j, half), n=vec))) for j, _ in lanes]
        if weight is not None:
            ss = e.f32(0.0)
            for (a, c), (_, valid) in zip(pairs, lanes):
                part = arith.addf(e.hsum(arith.mulf(a, a)), e.hsum(arith.mulf(c, c)))
                ss = arith.addf(ss, part if valid is None else e.select(valid, part, e.f32(0.0)))
            ss = e.warp_reduce([ss], e.sum)[0]
            inv = e.splat(e.rsqrt(arith.addf(arith.mulf(ss, e.f32(1.0 / D)), e.f32(eps))), vec)

            def norm(x, col):
                y = arith.mulf(arith.mulf(x, inv), e.to_f32(weight.load(col, n=vec)))
                return e.to_f32(e.to(src.element, y))
            pairs = [(norm(a, j), norm(c, e.add(j, half))) for (a, c), (j, _) in zip(pairs, lanes)]
        for (a, c), (j, valid) in zip(pairs, lanes):
            def rotate(a=a, c=c, j=j):
                sin, cos = e.sincos(arith.mulf(pos_f, table.load(j, n=vec)))
                dst.store(e.to(dst.element, arith.subf(arith.mulf(a, cos), arith.mulf(c, sin))), j)
                dst.store(e.to(dst.element, e.fma(a, sin, arith.mulf(c, cos))), e.add(j, half))
            rotate() if valid is None else e.if_(valid, rotate)

    q_norm, k_norm = norms if norms else (None, None)
    k_col = e.mul(h, D)

    def query(i):
        head(q.at(b, e.mul(e.add(e.mul(h, ratio), i), D), shape=[D]), q_dst(i), q_norm)
    e.strided(e.warp, ratio, e.warps, query)

    def key():
        head(k.at(b, k_col, shape=[D]), k_cache.at(b, pos, k_col, shape=[D]), k_norm)

    def copy_v():
        n = widest_vector(D, element_bytes=byte_width(v.element))
        src, dst = v.at(b, k_col, shape=[D]), v_cache.at(b, pos, k_col, shape=[D])
        e.strided(e.lane, D // n, 32, lambda c: dst.store(src.load(e.mul(c, n), n=n), e.mul(c, n)))
    for w, body in ((ratio % e.warps, key), ((ratio + 1) % e.warps, copy_v)):
        cond = e.eq(e.warp, w)
        e.if_(cond if append is None else arith.andi(cond, append), body)

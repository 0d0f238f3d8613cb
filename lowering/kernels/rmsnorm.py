"""`rmsnorm`: y = x / sqrt(mean(x^2) + eps) * w over every group of D = dim(w)
consecutive elements (a decoder's layer norm with D = N, QK-norm with D = head_dim).

A group is normalized by a *team*: one warp when the group is at most
`WARP_CHUNKS` 16-byte vectors per lane and the tile has groups for most warps
(QK-norm over heads: the warps take different groups, no barrier), else the
whole CTA with a block reduction (a layer norm).
Each thread keeps its vectors of the group in registers between the sum of
squares and the scaling, so x is read once.
"""

from __future__ import annotations

from mlir.dialects import arith

from . import require
from .emit import byte_width, widest_vector

WARP_CHUNKS = 4


def rmsnorm(e, g, task, buffers):
    x, w, y = buffers
    (B, N), D = x.shape, w.shape[0]
    (tb, tn) = g.tile
    require(tn % D == 0, f"tiles of {tn} columns split groups of {D}")
    eps = float(g.param("eps"))
    vec = widest_vector(D, element_bytes=byte_width(x.element))
    chunks = D // vec
    # Warps take whole groups when the groups are small and there are enough
    # of them to keep most warps busy; else the CTA shares each group.
    by_warp = chunks <= 32 * WARP_CHUNKS and tb * (tn // D) >= e.warps // 2
    size, rank = (32, e.lane) if by_warp else (e.threads, e.tid)
    per_thread = -(-chunks // size)

    i, j = e.unravel(task, g.grid)
    r0, g0 = e.mul(i, tb), e.mul(j, tn // D)
    rows = e.tile_extent(r0, tb, B)
    groups = e.tile_extent(g0, tn // D, N // D)

    def normalize(k):
        r = e.add(r0, e.div(k, groups))
        xr, yr = x.row(r), y.row(r)
        base = e.mul(e.add(g0, e.rem(k, groups)), D)
        slots = []  # (chunk index, in range?) of this thread's vectors
        for m in range(per_thread):
            c = e.add(rank, m * size)
            ragged = (m + 1) * size > chunks
            slots.append((e.min(c, chunks - 1) if ragged else c,
                          e.lt(c, chunks) if ragged else None))
        vals = [e.to_f32(xr.load(e.add(base, e.mul(c, vec)), n=vec)) for c, _ in slots]
        ss = e.f32(0.0)
        for v, (_, valid) in zip(vals, slots):
            part = e.hsum(arith.mulf(v, v))
            ss = arith.addf(ss, part if valid is None else e.select(valid, part, e.f32(0.0)))
        ss = (e.warp_reduce([ss], e.sum) if by_warp
              else e.block_reduce([ss], e.sum, [e.f32(0.0)]))[0]
        inv = e.splat(e.rsqrt(arith.addf(arith.mulf(ss, e.f32(1.0 / D)), e.f32(eps))), vec)
        for v, (c, valid) in zip(vals, slots):
            def write(v=v, c=c):
                col = e.mul(c, vec)
                out = arith.mulf(arith.mulf(v, inv), e.to_f32(w.load(col, n=vec)))
                yr.store(e.to(y.element, out), e.add(base, col))
            write() if valid is None else e.if_(valid, write)

    if by_warp:
        e.strided(e.warp, e.mul(rows, groups), e.warps, normalize)
    else:
        e.strided(0, e.mul(rows, groups), 1, normalize)

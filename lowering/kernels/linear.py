"""`linear`: y[b, n] = x[b, :] . w[n, :] (+ residual[b, n]) for the rows n of one tile.

Memory-bound matrix-vector product (all B rows of x at once). One warp per
output row: each lane streams 16-byte chunks of the weight row, `UNROLL` of
them issued before any use so several loads are in flight per lane, fp32
accumulation in vectors, one horizontal sum and a shuffle reduction per row.
x is staged once per task in shared memory when it fits, so the weight stream
is the only global traffic in the loop.

Measured on one H100 (bench_linear_* in test/python/test_gpu_kinds.py):
UNROLL 8 beat 4 by 1-2%; two rows per warp at once (to hide one row's
reduction behind the other's loads) was up to 13% slower, so it is gone.
The group param `unroll` overrides UNROLL (tuning).
"""

from __future__ import annotations

from mlir.dialects import arith

from . import kind, require
from .emit import byte_width, widest_vector

UNROLL = 8  # 16-byte weight loads in flight per lane


@kind("linear")
def linear(e, g, task, buffers):
    x, w, *rest = buffers
    y, residual = rest[-1], (rest[0] if len(rest) == 2 else None)
    (B, K), N = x.shape, w.shape[0]
    require(g.tile[0] == B, f"linear tiles take all {B} rows, not {g.tile[0]}")
    unroll = int(g.param("unroll", UNROLL))
    vec = widest_vector(K, element_bytes=byte_width(w.element))
    tn, chunks = g.tile[1], K // vec

    n0 = e.mul(task, tn)  # the grid is [1, N / tn]: task = column tile
    rows = e.tile_extent(n0, tn, N)
    if B * K * byte_width(x.element) <= e.smem_bytes:
        xs = e.shared(x.element, x.shape)
        e.copy(x, xs)
        e.barrier()
    else:
        xs = x
    zero = e.f32(0.0, vec)

    def accumulate(acc, wv, col):
        """acc[b] += w chunk * x[b] chunk, for every batch row b."""
        wf = e.to_f32(wv)
        return [e.fma(wf, e.to_f32(xs.load(b, col, n=vec)), acc[b]) for b in range(B)]

    def row(r):
        n = e.add(n0, r)
        wr = w.row(n)

        def step(c0, acc):
            cols = [e.mul(e.add(e.add(c0, 32 * u), e.lane), vec) for u in range(unroll)]
            loads = [wr.load(c, n=vec) for c in cols]  # all in flight before the math
            for wv, c in zip(loads, cols):
                acc = accumulate(acc, wv, c)
            return acc

        per_step = 32 * unroll
        full = chunks // per_step * per_step
        acc = e.loop(0, full, per_step, [zero] * B, step)
        # The tail, fewer than `unroll` chunks per lane: past the row's end a
        # chunk index is clamped (a valid load) and its weights zeroed.
        for u in range((chunks - full + 31) // 32):
            c = e.add(full + 32 * u, e.lane)
            ragged = chunks - full - 32 * u < 32
            col = e.mul(e.min(c, chunks - 1) if ragged else c, vec)
            wv = wr.load(col, n=vec)
            if ragged:
                wv = e.select(e.lt(c, chunks), wv, e.to(w.element, zero))
            acc = accumulate(acc, wv, col)

        sums = e.warp_reduce([e.hsum(a) for a in acc], e.sum)

        def write():
            for b in range(B):
                s = sums[b]
                if residual is not None:
                    s = arith.addf(s, e.to_f32(residual.load(b, n)))
                y.store(e.to(y.element, s), b, n)
        e.if_(e.eq(e.lane, 0), write)

    e.strided(e.warp, rows, e.warps, row)

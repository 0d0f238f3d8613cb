"""`rope`: rotate-half rotary embedding of every head of D = 2 * len(inv_freq).

For j < D/2 and angle = positions[b] * inv_freq[j]:
    y[j] = x[j] cos - x[j + D/2] sin,   y[j + D/2] = x[j + D/2] cos + x[j] sin.
A thread takes a vector of j's of one head and both of its halves. The
frequencies are a constant table in the gpu.module (any scaling scheme is
just other numbers); the angle is the fp32 product, as in PyTorch.
"""

from __future__ import annotations

from mlir.dialects import arith

from . import require
from .emit import byte_width, widest_vector


def rope(e, g, task, buffers):
    x, positions, y = buffers
    freqs = [float(f) for f in g.param("inv_freq")]
    half = len(freqs)
    D = 2 * half
    (tb, tn), (B, N) = g.tile, x.shape
    require(tn % D == 0, f"tiles of {tn} columns split heads of {D}")
    vec = widest_vector(half, element_bytes=byte_width(x.element))
    table = e.constant_table("inv_freq", freqs)

    def body(r, c):
        # (r, c) walks the [B, N/2] domain of pairs; c is (head, j) flattened.
        head, j = e.div(c, half), e.rem(c, half)
        lo = e.add(e.mul(head, D), j)
        hi = e.add(lo, half)
        angle = arith.mulf(e.splat(e.to_f32(e.as_i32(positions.load(r))), vec),
                           table.load(j, n=vec))
        a, b = e.to_f32(x.load(r, lo, n=vec)), e.to_f32(x.load(r, hi, n=vec))
        sin, cos = e.sincos(angle)
        y.store(e.to(y.element, arith.subf(arith.mulf(a, cos), arith.mulf(b, sin))), r, lo)
        y.store(e.to(y.element, e.fma(a, sin, arith.mulf(b, cos))), r, hi)
    e.for_each_vector(task, g.grid, (tb, tn // 2), (B, N // 2), vec, body)

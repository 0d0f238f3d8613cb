"""`add`: y = a + b over the task's tile, 16-byte vectors, fp32 math."""

from __future__ import annotations

from mlir.dialects import arith

from .emit import byte_width, widest_vector


def add(e, g, task, buffers):
    a, b, y = buffers
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(y.element))

    def body(r, c):
        s = arith.addf(e.to_f32(a.load(r, c, n=vec)), e.to_f32(b.load(r, c, n=vec)))
        y.store(e.to(y.element, s), r, c)
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)

"""`silu_mul`: y = silu(gate) * up = gate * up / (1 + exp(-gate)), fp32 math."""

from __future__ import annotations

from mlir.dialects import arith

from .emit import byte_width, widest_vector


def silu_mul(e, g, task, buffers):
    gate, up, y = buffers
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(y.element))

    def body(r, c):
        s = e.silu(e.to_f32(gate.load(r, c, n=vec)))
        y.store(e.to(y.element, arith.mulf(s, e.to_f32(up.load(r, c, n=vec)))), r, c)
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)

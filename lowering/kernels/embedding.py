"""`embedding`: out[b, cols] = table[ids[b], cols], a gather of 16-byte vectors."""

from __future__ import annotations

from .emit import byte_width, widest_vector


def embedding(e, g, task, buffers):
    ids, table, out = buffers
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(out.element))

    def body(r, c):
        row = e.as_i32(ids.load(r))
        out.store(table.load(row, c, n=vec), r, c)
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)


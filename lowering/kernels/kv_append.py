"""`kv_append`: cache[r // (R / B), positions[r], cols] = new[r, cols] for the task's tile of `new`.

The group's domain is `new`'s shape [R, M]: R rows over the B sequences of
the cache (one per sequence in decode, a chunk each in prefill); the output
buffer is the cache (the same memory as the cache input: the update is in place).
"""

from __future__ import annotations

from . import require
from .emit import byte_width, widest_vector


def kv_append(e, g, task, buffers):
    _, new, positions, cache = buffers
    require(len(cache.shape) == 3 and cache.shape[2] == new.shape[1] and new.shape[0] % cache.shape[0] == 0,
            f"cache {cache.shape} does not hold rows of new {new.shape}")
    per_seq = new.shape[0] // cache.shape[0]
    vec = widest_vector(g.tile[1], new.shape[1], element_bytes=byte_width(new.element))

    def body(r, c):
        pos = e.as_i32(positions.load(r))
        cache.store(new.load(r, c, n=vec), e.div(r, per_seq), pos, c)
    e.for_each_vector(task, g.grid, g.tile, new.shape, vec, body)

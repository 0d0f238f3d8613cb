"""The collectives of a tensor-parallel step: `allgather` stores a tile into every
rank's peer memory, `allreduce` sums the ranks' slots (lowering/kinds/allgather.py,
allreduce.py). A store to another GPU's memory is an ordinary global store to
its peer-mapped address; the runtime's release of the task's trigger on every
rank's counter (MpkTask::flags) publishes it."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith

from .emit import byte_width, widest_vector


def allgather(e, g, task, buffers):
    x, peers, out = buffers
    ranks = g.typed.ranks
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(x.element))
    rank = e.as_i32(peers.load(0))
    # Byte distances from this rank's peer memory to each rank's, loaded once a task.
    distances = [peers.load(1 + k) for k in range(ranks)]
    i8 = ir.IntegerType.get_signless(8)

    def body(r, c):
        value = x.load(r, c, n=vec)
        local = out.address(rank, r, c) if len(out.shape) == 3 else out.address(r, e.add(e.mul(rank, g.domain[1]), c))
        for distance in distances:
            e.store(value, e.gep(local, i8, distance))
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)


def allreduce(e, g, task, buffers):
    slots, *residual, y = buffers
    ranks = slots.shape[0]
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(y.element))

    def body(r, c):
        total = e.to_f32(slots.load(0, r, c, n=vec))
        for k in range(1, ranks):              # rank order: the same bits on every rank
            total = arith.addf(total, e.to_f32(slots.load(k, r, c, n=vec)))
        for res in residual:
            total = arith.addf(total, e.to_f32(res.load(r, c, n=vec)))
        y.store(e.to(y.element, total), r, c)
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)

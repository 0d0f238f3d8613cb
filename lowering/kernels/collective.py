"""The collectives of a tensor-parallel step: `allgather` stores a tile into every
rank's peer memory, `scatter` into the memory of the rank owning its columns,
`allreduce` sums the ranks' slots (lowering/kinds/allgather.py, scatter.py,
allreduce.py). A store to another GPU's memory is an ordinary global store to
its peer-mapped address; the runtime's release of the task's trigger on every
rank's counter (MpkTask::flags) publishes it."""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith

from .emit import View, byte_width, widest_vector


class RankSlots(View):
    """This rank's slot [B, N] of an allreduce's slots [ranks, B, N], as an output view
    whose stores go into every rank's slots: a row-parallel product stores its tile
    there itself, with no allgather task after it."""

    def __init__(self, e, slots: View, peers: View, ranks: int):
        super().__init__(e, slots.base, slots.element, slots.shape[1:])
        self.slots = slots
        self.rank = e.as_i32(peers.load(0))
        self.distances = [peers.load(1 + k) for k in range(ranks)]   # once a task

    def store(self, value: ir.Value, *index) -> None:
        local = self.slots.address(self.rank, *index)
        for distance in self.distances:
            self.e.store(value, self.e.gep(local, ir.IntegerType.get_signless(8), distance))


def allgather(e, g, task, buffers):
    x, peers, *residual, out = buffers
    ranks = g.typed.ranks
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(x.element))
    rank = e.as_i32(peers.load(0))
    # Byte distances from this rank's peer memory to each rank's, loaded once a task.
    distances = [peers.load(1 + k) for k in range(ranks)]
    i8 = ir.IntegerType.get_signless(8)

    def body(r, c):
        value = x.load(r, c, n=vec)
        if len(out.shape) == 3:                        # an allreduce's slots [rank, r, c]
            local = out.address(rank, r, c)
        else:                                          # this rank's columns of the gathered rows
            column = e.add(e.mul(rank, g.domain[1]), c)
            local = out.address(r, column)
            for res in residual:                       # two-shot: the residual, added once
                value = e.to(out.element, arith.addf(e.to_f32(value), e.to_f32(res.load(r, column, n=vec))))
        for distance in distances:
            e.store(value, e.gep(local, i8, distance))
    e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)


def scatter(e, g, task, buffers):
    x, peers, slots = buffers
    chunk = slots.shape[2]
    vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(x.element))
    rank = e.as_i32(peers.load(0))
    i8 = ir.IntegerType.get_signless(8)
    # A tile lies in one chunk (mpk-partition): its owner's distance, loaded once a task.
    owner = e.div(e.mul(e.unravel(task, g.grid)[1], g.tile[1]), chunk)
    distance = e.load(e.gep(peers.base, peers.element, e.add(owner, 1)), peers.element)

    def body(r, c):
        local = slots.address(rank, r, e.sub(c, e.mul(owner, chunk)))
        e.store(x.load(r, c, n=vec), e.gep(local, i8, distance))
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

"""Tiles of task groups: the cost model that picks them, and the boxes they cover.

A group's grid of tasks covers its domain (the first output's shape) with
equal tiles, row-major. `choose_tile` prices every tile a kind allows
(lowering/kinds: its units, fixed and largest tiles, the bytes and flops of a
task) on a `Target` and keeps the fastest; `group_boxes` gives every task's
output tile, write and read boxes. Not a pass: partition, events, schedule,
memory planning and the task interpreter share it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mpk.lowering import kinds
from mpk.lowering.kinds import Boxes, OpInfo, volume


@dataclasses.dataclass(frozen=True)
class Target:
    """The machine the cost model prices tasks on."""
    arch: str
    num_sms: int
    hbm_bytes_per_s: float    # achievable device read bandwidth, shared by all SMs
    flops_per_sm: float       # fp32 FMA throughput of one SM (decode GEMVs use CUDA cores)
    mma_flops_per_sm: float   # bf16 matrix-unit throughput of one SM (prefill GEMM tiles)
    task_overhead_s: float    # wait on an event + dispatch + trigger, per task

    @property
    def sm_bytes_per_s(self) -> float:
        return self.hbm_bytes_per_s / self.num_sms

    def task_seconds(self, nbytes, flops, mma_flops=0):
        """Time of one task when every SM is busy (bandwidth split evenly)."""
        compute = np.asarray(flops) / self.flops_per_sm + np.asarray(mma_flops) / self.mma_flops_per_sm
        return self.task_overhead_s + np.maximum(np.asarray(nbytes) / self.sm_bytes_per_s, compute)


# H100 SXM: 3.35 TB/s peak HBM3, ~3.0 TB/s streamed (bench/NOTES.md); 132 SMs at 1.98 GHz;
# wgmma at about 80% of its 989 TFLOP/s dense bf16 peak.
ARCHS = {"sm_90": dict(hbm_bytes_per_s=3.0e12, flops_per_sm=128 * 2 * 1.98e9,
                       mma_flops_per_sm=0.8 * 989e12 / 132, task_overhead_s=1.5e-6)}


def target(arch: str, num_sms: int) -> Target:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch '{arch}' (known: {', '.join(ARCHS)})")
    return Target(arch, num_sms, **ARCHS[arch])


def tile_boxes(domain, grid, tile) -> Boxes:
    """Output tile of every task of a grid, row-major task order."""
    idx = np.indices(grid).reshape(len(grid), -1).T.astype(np.int64)
    tile = np.asarray(tile, np.int64)
    lo = idx * tile
    return lo, np.minimum(lo + tile, np.asarray(domain, np.int64))


def grid_for(domain, tile) -> tuple[int, ...]:
    return tuple(-(-d // t) for d, t in zip(domain, tile))


def task_cost(op: OpInfo, out: Boxes, target: Target) -> np.ndarray:
    """Predicted seconds of every task: bytes it moves and flops it does."""
    kind = kinds.get(op.kind)
    nbytes = volume(kind.writes(op, out)) * op.output_bytes
    for box, size in zip(kind.traffic(op, out), op.input_bytes):
        nbytes = nbytes + volume(box) * size
    mma = kind.mma_flops(op, out)
    return target.task_seconds(nbytes, kind.flops(op, out) - mma, mma)


def choose_tile(op: OpInfo, target: Target) -> tuple[int, ...]:
    """The tile minimizing the op's time on `target`: waves of tasks times task time.

    More tasks than SMs cost a second wave; fewer leave SMs idle. Among tiles
    within 2% of the best, the one with fewer tasks wins (fewer events and
    queue entries for the same time).
    """
    kind = kinds.get(op.kind)
    fixed, unit = kind.fixed_tile(op), kind.tile_unit(op)
    tile = list(fixed)
    free = [d for d, f in enumerate(fixed) if f is None]
    if not free:
        return tuple(tile)
    (dim,) = free                       # kinds split at most one dimension freely
    extent, step, largest = op.domain[dim], unit[dim], kind.max_tile(op)[dim]
    candidates = sorted({step * math.ceil(extent / (step * t))
                         for t in range(1, min(extent // step, 8 * target.num_sms) + 1)})
    if largest is not None:
        candidates = [c for c in candidates if c <= largest] or [min(largest, step)]
    candidates = [min(c, extent) for c in candidates] or [extent]     # a dim under one unit: whole
    best = None
    for size in candidates:
        tile[dim] = size
        grid = grid_for(op.domain, tile)
        tasks = int(np.prod(grid))
        seconds = task_cost(op, tile_boxes(op.domain, grid, tile), target).max()
        total = math.ceil(tasks / target.num_sms) * seconds
        if best is None or total < best[0] * 0.98 or (total <= best[0] * 1.02 and tasks < best[1]):
            best = (min(total, best[0]) if best else total, tasks, size)
    tile[dim] = best[2]
    return tuple(tile)


def valid_tile(op: OpInfo, tile) -> str | None:
    """Why `tile` is not a tile this kind accepts, or None."""
    kind = kinds.get(op.kind)
    if len(tile) != len(op.domain):
        return f"tile rank {len(tile)} differs from the domain rank {len(op.domain)}"
    for d, (t, extent, unit, fixed, largest) in enumerate(zip(tile, op.domain, kind.tile_unit(op),
                                                              kind.fixed_tile(op), kind.max_tile(op))):
        if t <= 0:
            return f"tile size {t} in dim {d} must be positive"
        if fixed is not None and t != fixed:
            return f"'{op.kind}' tasks need tile size {fixed} in dim {d}, got {t}"
        if largest is not None and t > largest:
            return f"'{op.kind}' tiles take at most {largest} in dim {d}, got {t}"
        if t != extent and t % unit:
            return f"tile size {t} in dim {d} must be a multiple of {unit} or the whole dim {extent}"
    return None


def op_info(graph, group) -> OpInfo:
    """The `OpInfo` of a task group of a `dialects.taskir.TaskGraph`."""
    from mpk.dialects.taskir import element_bytes
    ins = [graph.buffers[b] for b in group.inputs]
    out = graph.buffers[group.outputs[0]]
    return OpInfo(group.kind, [b.shape for b in ins], [element_bytes(b.dtype) for b in ins],
                  out.shape, element_bytes(out.dtype), tuple(graph.domain(group)), group.params)


def group_boxes(graph, group) -> tuple[Boxes, list[Boxes], list[Boxes]]:
    """(output tiles in the domain, write box per output buffer, read box per input)."""
    info = op_info(graph, group)
    kind = kinds.get(group.kind)
    out = tile_boxes(info.domain, group.grid, group.tile)
    writes = kind.output_writes(info, out, [graph.buffers[name].shape for name in group.outputs])
    return out, writes, kind.reads(info, out)

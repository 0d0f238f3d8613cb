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
class KindCost:
    """What one task of a kind costs on a card, measured: `fixed_s` + bytes / `sm_bytes_per_s`
    (the bytes `task_cost` counts; the rate is one SM's while every SM streams), fitted to
    the in-kernel profiler's task times by bench/calibrate.py."""
    fixed_s: float            # per task: wait-to-start dispatch, x staging, norms, barriers, trigger
    sm_bytes_per_s: float     # one SM's streaming rate beyond the fixed part


def decode_path(op: OpInfo) -> str | None:
    """The decode path a task runs, which the measured costs are keyed by: "b1" (one row:
    the CUDA cores' matrix-vector), "b2-8" (the tensor cores' matrix-vector), None for
    more rows (prefill GEMM tiles, batches over 8: not calibrated)."""
    rows = op.domain[0] if op.domain else 1
    return "b1" if rows == 1 else "b2-8" if rows <= 8 else None


@dataclasses.dataclass(frozen=True)
class Target:
    """The machine the cost model prices tasks on.

    A task of a kind and decode path that `kind_costs` lists costs its measured fixed
    time plus its bytes at its measured rate; any other task `task_overhead_s` plus its
    bytes at the SM's even share of `hbm_bytes_per_s` (or its flops, if slower)."""
    arch: str
    num_sms: int
    hbm_bytes_per_s: float    # achievable device read bandwidth, shared by all SMs
    flops_per_sm: float       # fp32 FMA throughput of one SM (decode GEMVs use CUDA cores)
    mma_flops_per_sm: float   # bf16 matrix-unit throughput of one SM (prefill GEMM tiles)
    task_overhead_s: float    # wait on an event + dispatch + trigger, per task
    # Measured per "kind/path" (decode_path), e.g. ("linear/b1", KindCost(...)); a kind
    # measured alike on every path as "kind".
    kind_costs: tuple[tuple[str, KindCost], ...] = ()
    card: str = ""            # the card the numbers are of
    source: str = ""          # where they come from
    # Tensor-parallel collectives: one GPU's NVLink bandwidth each way (H100/H200 SXM: 18
    # NVLink 4 links, 450 GB/s), and what a dependent stage costs beyond its bytes (the
    # H200 hop microbenchmark: 0.77-0.90 us, bench/NOTES.md round 9).
    link_bytes_per_s: float = 450e9
    stage_s: float = 0.85e-6

    @property
    def sm_bytes_per_s(self) -> float:
        return self.hbm_bytes_per_s / self.num_sms

    def kind_cost(self, op: OpInfo) -> KindCost | None:
        """The measured cost of the op's tasks on this card, or None (the generic model)."""
        path = decode_path(op)
        if path is None or not self.kind_costs:
            return None
        costs = dict(self.kind_costs)
        return costs.get(f"{op.kind}/{path}", costs.get(op.kind))

    def task_seconds(self, nbytes, flops, mma_flops=0, cost: KindCost | None = None):
        """Time of one task when every SM is busy (bandwidth split evenly); `cost`: the
        kind's measured cost (`kind_cost`), else the generic overhead and bandwidth."""
        compute = np.asarray(flops) / self.flops_per_sm + np.asarray(mma_flops) / self.mma_flops_per_sm
        overhead, rate = (cost.fixed_s, cost.sm_bytes_per_s) if cost else (self.task_overhead_s,
                                                                            self.sm_bytes_per_s)
        return overhead + np.maximum(np.asarray(nbytes) / rate, compute)


# H100 SXM: 3.35 TB/s peak HBM3, ~3.0 TB/s streamed (bench/NOTES.md); 132 SMs at 1.98 GHz;
# wgmma at about 80% of its 989 TFLOP/s dense bf16 peak; 1.5 us per task, an estimate (NOTES:
# "Task grids against measured times"). Not calibrated per kind: the model of rounds 1-9.
H100_SXM = dict(card="NVIDIA H100 SXM", hbm_bytes_per_s=3.0e12, flops_per_sm=128 * 2 * 1.98e9,
                mma_flops_per_sm=0.8 * 989e12 / 132, task_overhead_s=1.5e-6,
                source="estimates, bench/NOTES.md rounds 1-6")

# H200: the decode kinds' tasks measured on one H200 (bench/NOTES.md round 10): `python -m
# bench.calibrate fit bench/results/history/ab-r10-calibration.json --rate
# attention_split/b1=24e9 --rate attention_split/b2-8=27e9`, over the bundles of Qwen3-0.6B,
# 1.7B, 8B and Llama-3.2-1B at batch 1 and 8, ctx 1024, every group's median task; the split
# attention's rates from the step's growth from ctx 1024 to 4096 (all its splits read the
# same rows at one context, so one context cannot tell its rate from its fixed cost).
# Other kinds and paths (prefill GEMM tiles, batches over 8) keep the H100 model's numbers,
# so their tiles are as before; so does the embedding, whose tasks (0.7-1.6 KB) measure a
# fixed cost (1.3-1.5 us, the generic model's within 10%) but no rate.
H200_KIND_COSTS = (
    ("linear/b1", KindCost(1.41e-6, 29.3e9)),
    ("linear/b2-8", KindCost(2.59e-6, 33.2e9)),
    ("gate_up/b1", KindCost(2.90e-6, 28.5e9)),
    ("gate_up/b2-8", KindCost(4.82e-6, 31.6e9)),
    ("attention_split/b1", KindCost(6.16e-6, 24.0e9)),
    ("attention_split/b2-8", KindCost(7.02e-6, 27.0e9)),
    ("sample", KindCost(0.16e-6, 14.7e9)),
)
H200 = dict(H100_SXM, card="NVIDIA H200", kind_costs=H200_KIND_COSTS,
            source="measured per kind, bench/NOTES.md round 10 (bench/calibrate.py)")

CARDS = {"h100-sxm": H100_SXM, "h200": H200}
# The card an arch's compiles are tuned for: sm_90 -> the H200 of bench/results
# (`target(arch, num_sms, card="h100-sxm")` prices the H100's model).
ARCHS = {"sm_90": H200}


def target(arch: str, num_sms: int, card: str | None = None) -> Target:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch '{arch}' (known: {', '.join(ARCHS)})")
    if card is not None and card not in CARDS:
        raise KeyError(f"unknown card '{card}' (known: {', '.join(CARDS)})")
    return Target(arch, num_sms, **(CARDS[card] if card else ARCHS[arch]))


ALLREDUCE_ALGORITHMS = ("one-shot", "two-shot")


def allreduce_seconds(algorithm: str, nbytes: int, ranks: int, target: Target) -> float:
    """An allreduce of `nbytes` per rank. One-shot: every rank stores its whole tensor into
    every other rank's memory ((N-1) x the bytes out of each GPU), then sums: two dependent
    stages. Two-shot: a reduce-scatter (each rank sums 1/N of the columns) then an
    all-gather, 2 (N-1)/N x the bytes out, three stages."""
    copies = ranks - 1 if algorithm == "one-shot" else 2 * (ranks - 1) / ranks
    stages = 2 if algorithm == "one-shot" else 3
    return stages * target.stage_s + copies * nbytes / target.link_bytes_per_s


def allreduce_algorithm(nbytes: int, ranks: int, target: Target) -> str:
    """The cheaper allreduce at this size: one-shot for decode's few KB (Qwen3-8B at
    batch 8, TP=8: 64 KB), two-shot once the extra stage costs less than the extra copies."""
    return min(ALLREDUCE_ALGORITHMS, key=lambda a: allreduce_seconds(a, nbytes, ranks, target))


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
    return target.task_seconds(nbytes, kind.flops(op, out) - mma, mma, target.kind_cost(op))


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

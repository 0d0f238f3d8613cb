"""`mpk-materialize`: the dense tables the persistent runtime reads.

From scheduled task IR (groups, events, buffers and one `mpk.schedule`):
one descriptor per task (function id, grid index, wait/trigger counter
slots), each worker's queue in CSR form, the counters' trigger counts and
launch values, and the buffer list of every group. Layout: mpk.runtime.tables.

Every event of `size` n owns counter slots [first_slot, first_slot + n),
events in module order. A group's function id is its `fn` attribute when the
lowering set one, else its position among the groups.

The bundle writer calls `materialize`; the pass checks that a module can be
materialized and, with `output=FILE`, writes the tables there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from mlir import ir

from mpk.dialects.taskir import TaskGraph, element_bytes, python_value
from mpk.lowering import ModulePass, analyses, kinds, tiling
from mpk.lowering.kinds.linear import gemm_tile_rows
from mpk.lowering.mpk_stage_weights import PARAM as STAGED, WEIGHTS as STAGED_WEIGHTS
from mpk.runtime import tables as layout

# Largest weight range a task may ask to have pulled into L2 while it waits
# (an embedding "reads" its whole table; a linear tile is a few hundred KB).
PREFETCH_MAX_BYTES = 4 << 20


class MaterializeError(ValueError):
    def __init__(self, op, message: str):
        super().__init__(message)
        self.op = op


@dataclasses.dataclass
class Materialized:
    tables: dict[str, np.ndarray]
    buffers: list[dict]          # plan.json "buffers", in table order
    events: list[dict]           # plan.json "events", with their first counter slot
    groups: list[dict]           # plan.json "groups", with fn ids and first task ids
    num_workers: int


def function_id(group, index: int) -> int:
    if "fn" in group.op.attributes:
        return int(python_value(group.op.attributes["fn"]))
    return index


def group_tensor_maps(g, operands: int) -> list[tuple[int, int, int]]:
    """The group's `tensor_maps` (mpk-lower-tasks): (operand, box rows, box cols) each."""
    if "tensor_maps" not in g.op.attributes:
        return []
    attr = g.op.attributes["tensor_maps"]
    try:
        maps = [tuple(ir.DenseI64ArrayAttr(m)) for m in ir.ArrayAttr(attr)]
    except ValueError:
        maps = None
    if maps is None or any(len(m) != 3 or not 0 <= m[0] < operands for m in maps):
        raise MaterializeError(g.op, f"group '{g.name}' has tensor_maps = {attr}: each entry must be "
                               f"array<i64: operand, box rows, box cols> with an operand below {operands}")
    return maps


def materialize(graph: TaskGraph) -> Materialized:
    """Tables for `graph`; raises MaterializeError naming the offending op."""
    if graph.kernel is None:
        raise MaterializeError(None, "no mpk.kernel header: not a task-level module")
    if graph.schedule is None:
        raise MaterializeError(graph.kernel, "no mpk.schedule: run mpk-schedule first")
    num_sms = int(graph.kernel_attr("num_sms"))
    num_tasks = graph.num_tasks

    # Counter slots.
    events, first_slot, slot = [], {}, 0
    for e in graph.events.values():
        if e.flagged:       # mpk-data-flags: its waiters poll the data itself
            continue
        first_slot[e.name] = slot
        events.append({"name": e.name, "size": e.size, "triggers": e.triggers,
                       "primed": e.primed, "first_slot": slot, "ranks": e.ranks})
        slot += e.size
    event_triggers = np.zeros(slot, np.int32)
    event_initial = np.zeros(slot, np.uint32)
    for e in events:
        span = slice(e["first_slot"], e["first_slot"] + e["size"])
        event_triggers[span] = e["triggers"]
        event_initial[span] = e["triggers"] if e["primed"] else 0

    # Buffers, and each group's (inputs..., outputs...) list.
    buffer_ids = {name: i for i, name in enumerate(graph.buffers)}
    read_as = reads(graph)
    buffers = []
    for b in graph.buffers.values():
        if b.space == "workspace" and b.offset is None:
            raise MaterializeError(b.op, f"workspace buffer '{b.name}' has no offset: run mpk-plan-memory first")
        buffers.append({"name": b.name, "space": b.space, "dtype": b.dtype, "shape": list(b.shape),
                        "nbytes": b.stored_bytes, "offset": b.offset, "flagged": b.flagged, "weight_name": b.weight_name,
                        "per_step": b.per_step, "read_as": read_as.get(b.name, "whole"),
                        **({"shard": b.shard} if b.shard else {})})

    tensor_maps = []             # (buffer id, box rows, box cols): descriptor len(buffers) + i
    task_table = np.zeros((num_tasks, len(layout.TASK_FIELDS)), np.int32)
    prefetch = np.zeros((num_tasks, len(layout.PREFETCH_FIELDS)), np.int32)
    group_buffers, group_buffer_offsets, groups = [], [0], []
    for index, g in enumerate(graph.groups):
        rows = slice(g.first_task, g.first_task + g.num_tasks)
        fn = function_id(g, index)
        names = g.inputs + g.outputs
        for name in names:
            if name not in buffer_ids:
                raise MaterializeError(g.op, f"group '{g.name}' uses unknown buffer '{name}'")
        task_table[rows, layout.task_field("fn")] = fn
        task_table[rows, layout.task_field("task")] = np.arange(g.num_tasks)
        task_table[rows, layout.task_field("group")] = index
        task_table[rows, layout.task_field("buffers")] = len(group_buffers)
        flags = np.zeros(g.num_tasks, np.int32)
        for field, ref in (("wait", g.wait), ("trigger", g.trigger)):
            slots = np.full(g.num_tasks, layout.NO_EVENT, np.int64)
            if ref is not None and ref.event not in graph.events:
                raise MaterializeError(g.op, f"group '{g.name}' {field}s on unknown event '{ref.event}'")
            if ref is not None and not graph.events[ref.event].flagged:   # mpk-data-flags: no slot
                event = graph.events[ref.event]
                indices = ref.indices(g.grid_indices())
                bad = np.flatnonzero((indices < 0) | (indices >= event.size))
                if bad.size:
                    raise MaterializeError(g.op, f"task {bad[0]} of group '{g.name}' {field}s on "
                                           f"'{ref.event}'[{indices[bad[0]]}], outside its {event.size} counters")
                slots = first_slot[ref.event] + indices
                if event.ranks > 1 and field == "wait":     # other ranks' tasks trigger it
                    flags |= layout.FLAGS["wait_on_ranks"]
                elif event.ranks > 1:
                    flags |= rank_trigger_flags(graph, g)
                if field == "wait":
                    task_table[rows, layout.task_field("wait_triggers")] = event.triggers
            task_table[rows, layout.task_field(f"{field}_slot")] = slots
        if any(graph.buffers[n].flagged for n in g.inputs):    # mpk-data-flags: it polls, it may give up
            flags |= layout.FLAGS["polls"]
        prefetch[rows] = prefetch_ranges(graph, g, len(group_buffers))
        if "prefetch" in g.op.attributes:     # mpk-lower-tasks built it a prefetch function
            flags |= layout.FLAGS["prefetch"]
        task_table[rows, layout.task_field("flags")] = flags | np.where(prefetch[rows, 3] > 0, layout.FLAGS["staged"], 0)
        group_buffers += [buffer_ids[n] for n in names]
        for position, rows, cols in group_tensor_maps(g, len(names)):
            group_buffers.append(len(buffers) + len(tensor_maps))
            tensor_maps.append((buffer_ids[names[position]], rows, cols))
        listed = len(group_buffers) - group_buffer_offsets[-1]
        if listed > layout.GROUP_BUFFERS_MAX:
            raise MaterializeError(g.op, f"group '{g.name}' lists {listed} buffers and tensor maps, "
                                   f"the runtime passes at most {layout.GROUP_BUFFERS_MAX}")
        group_buffer_offsets.append(len(group_buffers))
        groups.append({"name": g.name, "kind": g.kind, "fn": fn, "grid": list(g.grid), "tile": list(g.tile),
                       "first_task": g.first_task, "num_tasks": g.num_tasks,
                       "inputs": g.inputs, "outputs": g.outputs,
                       "wait": g.wait.event if g.wait else None,
                       "trigger": g.trigger.event if g.trigger else None})

    # Queues: one worker per SM; SMs without a queue get an empty one.
    queues = graph.schedule
    if len(queues) > num_sms:
        raise MaterializeError(graph.schedule_op, f"{len(queues)} queues for {num_sms} SMs")
    flat = np.concatenate(queues) if queues else np.zeros(0, np.int64)
    seen = np.bincount(flat[(flat >= 0) & (flat < num_tasks)], minlength=num_tasks) if flat.size else np.zeros(num_tasks)
    if flat.size != num_tasks or np.any(seen != 1):
        missing = np.flatnonzero(seen == 0)
        detail = f"task {missing[0]} is in no queue" if missing.size else "some task is queued twice or is out of range"
        raise MaterializeError(graph.schedule_op, f"the schedule must list each of the {num_tasks} tasks once: {detail}")
    lengths = [len(q) for q in queues] + [0] * (num_sms - len(queues))
    queue_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)

    return Materialized(
        tables={"tasks": task_table, "queue_offsets": queue_offsets, "queue_tasks": flat.astype(np.int32),
                "event_triggers": event_triggers, "event_initial": event_initial,
                "group_buffers": np.asarray(group_buffers, np.int32),
                "group_buffer_offsets": np.asarray(group_buffer_offsets, np.int32),
                "prefetch": prefetch,
                "tensor_maps": np.asarray(tensor_maps, np.int32).reshape(-1, len(layout.TENSOR_MAP_FIELDS))},
        buffers=buffers, events=events, groups=groups, num_workers=num_sms)


def reads(graph: TaskGraph) -> dict[str, str]:
    """How a step reads each buffer that tasks read, by their kinds (lowering/kinds): as
    a KV cache (rows 0..pos of each sequence), gathered (one row per sequence), or whole
    (any reader that reads it otherwise makes it whole)."""
    modes: dict[str, set[str]] = {}
    for g in graph.groups:
        kind = kinds.registry().get(g.kind)
        caches, gathers = (kind.kv_caches(g.params), kind.gathers) if kind is not None else ((), ())
        for i, name in enumerate(g.inputs):
            modes.setdefault(name, set()).add("kv_cache" if i in caches else "gathered" if i in gathers else "whole")
    return {name: next(iter(m)) if len(m) == 1 else "whole" for name, m in modes.items()}


def prefetch_ranges(graph: TaskGraph, g, first_buffer: int) -> np.ndarray:
    """Per task of g: (buffer_ptrs index, byte offset, bytes, row bytes, second
    buffer, its offset) of the largest weight box it reads that is one
    contiguous, 16-byte aligned range of at most PREFETCH_MAX_BYTES (whole rows
    of a row-major weight); -1: none. Row bytes is 0 (pull the range into L2
    while waiting) except for a group that mpk-stage-weights marked: the
    runtime copies its rows into the weight ring, and those must be the rows
    of the tile's weights (w; gate_up's gate, then up as the second range)."""
    out = np.zeros((g.num_tasks, len(layout.PREFETCH_FIELDS)), np.int64)
    out[:, 0] = out[:, 4] = -1
    if g.kind not in kinds.registry():    # a hand-written stub kind: nothing known about its reads
        return out.astype(np.int32)
    info = tiling.op_info(graph, g)
    if g.kind == "linear" and gemm_tile_rows(info.domain[0]) is not None:
        return out.astype(np.int32)       # a GEMM tile's copies stream its weights in themselves
    reads = kinds.get(g.kind).reads(info, tiling.tile_boxes(info.domain, g.grid, g.tile))
    ranges = {}                           # input index -> (offset, size, row bytes) per task
    for i, ((lo, hi), name) in enumerate(zip(reads, g.inputs)):
        b = graph.buffers[name]
        if b.space != "weight":
            continue
        shape = np.asarray(b.shape, np.int64)
        row_bytes = int(np.prod(shape[1:])) * element_bytes(b.dtype)
        whole_rows = (lo[:, 1:] == 0).all(axis=1) & (hi[:, 1:] == shape[1:]).all(axis=1)
        offset, size = lo[:, 0] * row_bytes, (hi[:, 0] - lo[:, 0]) * row_bytes
        fits = whole_rows & (offset % 16 == 0) & (size % 16 == 0) & (size > 0) & \
            (size <= PREFETCH_MAX_BYTES) & (offset + size < 2**31)
        ranges[i] = (np.where(fits, offset, -1), size, row_bytes)
        better = fits & (size > out[:, 2])
        out[better, :4] = np.column_stack([np.full(g.num_tasks, first_buffer + i), offset, size,
                                           np.full(g.num_tasks, row_bytes)])[better]
    if not g.params.get(STAGED):
        out[:, 3] = 0
        return out.astype(np.int32)
    staged = [ranges.get(i) for i in range(1, 1 + STAGED_WEIGHTS.get(g.kind, 0))]
    if not staged or any(r is None or (r[0] < 0).any() or not np.array_equal(r[1], staged[0][1])
                         for r in staged):
        raise MaterializeError(g.op, f"group '{g.name}' is marked {STAGED} but some task's "
                               "weight rows are not one aligned range of each of its weights")
    offset, size, row_bytes = staged[0]
    out[:, :4] = np.column_stack([np.full(g.num_tasks, first_buffer + 1), offset, size,
                                  np.full(g.num_tasks, row_bytes)])
    if len(staged) == 2:
        out[:, 4], out[:, 5] = first_buffer + 2, staged[1][0]
    return out.astype(np.int32)


@dataclasses.dataclass
class MpkMaterialize(ModulePass):
    name = "mpk-materialize"
    summary = "build the runtime's task, queue and event tables from scheduled task IR"
    preserves_analyses = True

    output: str = ""   # write tables.npz here (nothing is written when empty)

    def run(self, module) -> None:
        try:
            result = materialize(analyses.task_graph(module))
        except MaterializeError as e:
            self.fail(e.op if e.op is not None else module, str(e))
        if self.output:
            layout.save(self.output, result.tables)


def rank_trigger_flags(graph, g) -> np.ndarray:
    """MpkTask::flags of a group whose tasks bump other ranks' counters (kinds'
    `trigger_ranks`): every rank's, or one rank's, that rank in the bits above FLAG_BITS."""
    from mpk.lowering import kinds
    from mpk.lowering.tiling import group_boxes, op_info
    kind = kinds.get(g.kind)
    if kind.trigger_ranks(g.params) == "every":
        return np.full(g.num_tasks, layout.FLAGS["trigger_every_rank"], np.int32)
    owners = kind.trigger_ranks_of(op_info(graph, g), group_boxes(graph, g)[0])
    return (layout.FLAGS["trigger_one_rank"] | (owners << layout.RANK_SHIFT)).astype(np.int32)

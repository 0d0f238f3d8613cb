"""The dense tables the persistent kernel reads (layout of tables.npz).

Written by mpk-materialize on the compiling machine, read by the loader;
the C side of the layout is runtime/mpk_runtime.h. All arrays are int32
unless noted.

    tasks                 [num_tasks, 8]  one MpkTask per global task id (TASK_FIELDS)
    queue_offsets         [num_workers+1] CSR: worker w runs queue_tasks[off[w]:off[w+1]]
    queue_tasks           [num_tasks]     global task ids in execution order
    event_triggers        [num_slots]     triggers per step of each counter
    event_initial         uint32 [num_slots]  value at launch: triggers if primed, else 0
    group_buffers         [n]             buffer ids (plan.json "buffers" order) of every
                                          group's (inputs..., outputs...), concatenated;
                                          MpkTask.buffers indexes into it
    group_buffer_offsets  [num_groups+1]  CSR over group_buffers
    prefetch              [num_tasks, 6]  the weights a task streams (PREFETCH_FIELDS;
                                          buffer -1: none): with row_bytes 0 a worker may
                                          pull them into L2 while the task waits on its
                                          event; otherwise the task reads them from the
                                          weight ring the worker fills ahead
                                          (mpk-stage-weights), a second weight's rows
                                          (second_buffer >= 0) after the first's. Optional:
                                          a bundle without it prefetches nothing.
    tensor_maps           [n, 3]          TMA descriptors the loader encodes (TENSOR_MAP_FIELDS):
                                          the buffer id (plan.json "buffers" order) and the box
                                          (rows, columns, 128-byte swizzle). Descriptor i is
                                          group_buffers entry num_buffers + i. Optional.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TASK_FIELDS = ("fn", "task", "group", "buffers", "wait_slot", "wait_triggers", "trigger_slot", "flags")
# MpkTask::flags (mpk_runtime.h): its weights come in the worker's weight ring; its trigger
# bumps the counter on every rank of a tensor-parallel step, or on one rank (given in the
# bits from RANK_SHIFT up); its wait is on a counter that other ranks (other GPUs) bump; its
# group has a prefetch function (mpk_prefetch_dispatch, run while the task waits).
FLAGS = {"staged": 1, "trigger_every_rank": 2, "wait_on_ranks": 4, "trigger_one_rank": 8, "prefetch": 16, "polls": 32}
RANK_SHIFT = 8
TABLES = ("tasks", "queue_offsets", "queue_tasks", "event_triggers", "event_initial",
          "group_buffers", "group_buffer_offsets", "prefetch", "tensor_maps")
NO_EVENT = -1
# One contiguous byte range of one of the task's buffers: buffer_ptrs[buffer] + offset, bytes;
# row_bytes > 0: copied row by row into the weight ring, at a pitch of row_bytes + STAGE_ROW_PAD,
# followed by as many rows of the second weight (buffer_ptrs[second_buffer] + second_offset) if any.
PREFETCH_FIELDS = ("buffer", "offset", "bytes", "row_bytes", "second_buffer", "second_offset")
STAGE_ROW_PAD = 16   # MPK_STAGE_ROW_PAD
RING_MAX_DEPTH = 16  # MPK_RING_MAX_DEPTH: staged tasks a worker has in flight at most
POLL_STUCK_BYTES = 128  # MPK_POLL_STUCK_BYTES: a worker's shared memory before the tasks' scratch
POLL_LIMIT = 1 << 24    # a flagged poll (mpk-data-flags) gives up after this many stale loads
GROUP_BUFFERS_MAX = 16  # MPK_GROUP_BUFFERS_MAX: a group's buffers and tensor maps, at most
TASK_WEIGHTS_BYTES = 24  # sizeof(TaskWeights) in mpk_runtime.cu: a queue position's resolved weights
TENSOR_MAP_FIELDS = ("buffer", "box_rows", "box_cols")
OPTIONAL = {"prefetch": lambda tables: np.tile(np.array([-1, 0, 0, 0, -1, 0], np.int32),
                                               (tables["tasks"].shape[0], 1)),
            "tensor_maps": lambda tables: np.zeros((0, len(TENSOR_MAP_FIELDS)), np.int32)}


def task_field(name: str) -> int:
    return TASK_FIELDS.index(name)


def save(path: Path, tables: dict[str, np.ndarray]) -> None:
    missing = set(TABLES) - set(tables)
    if missing:
        raise ValueError(f"tables lack {sorted(missing)}")
    np.savez_compressed(path, **{name: tables[name] for name in TABLES})  # ~8x smaller: repetitive ints


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        missing = set(TABLES) - set(npz.files) - set(OPTIONAL)
        if missing:
            raise ValueError(f"{path}: tables lack {sorted(missing)}")
        tables = {name: npz[name] for name in TABLES if name in npz.files}
    for name, default in OPTIONAL.items():
        tables.setdefault(name, default(tables))
    if tables["prefetch"].shape[1:] != (len(PREFETCH_FIELDS),):
        raise ValueError(f"{path}: its prefetch table has {tables['prefetch'].shape[1:]} columns, this runtime "
                         f"reads {len(PREFETCH_FIELDS)} ({', '.join(PREFETCH_FIELDS)}): an older bundle, "
                         "compile it again")
    return tables

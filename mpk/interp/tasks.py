"""Execute task-level mpk IR on the CPU, tile by tile, checking every dependency.

`run_tasks` runs `steps` decode steps the way the persistent kernel does:
counters are never reset, a task of step s may start once its counter
reaches `triggers * (s + 1)`, and among the tasks allowed to start one is
picked at random (seeded), so every run takes a different valid order; with
`queues=True` the workers walk the `mpk.schedule` queues instead (one random
ready worker at a time), and a stuck worker set is reported as a deadlock.

Buffers live where the memory plan put them: workspace buffers are views of
one workspace at their byte offsets, so two buffers that share memory really
overwrite each other. Every slot of every buffer records the step that last
wrote it, so a task that reads a tile nobody has written yet in this step is
an error naming the reader and the task that should have written it; and
every workspace slot counts the reads still due, so a task that overwrites a
tile before all its readers ran is an error too. Tiles compute with the graph
op semantics of `mpk.interp.ops`, on slices.
"""

from __future__ import annotations

from typing import Mapping, MutableMapping

import numpy as np

from mpk.dialects.taskir import TaskGraph, element_bytes
from mpk.runtime.weights import slice_of
from mpk.lowering import kinds
from mpk.lowering.tiling import group_boxes, op_info

UNWRITTEN = -2      # slot version before any write; -1: written before the launch (host, prefill)


class TaskInterpreterError(RuntimeError):
    """A dependency the events do not enforce, or a deadlock."""


def _numpy_dtype(dtype: str):
    return np.int64 if dtype.startswith("i") else np.float32


class _Memory:
    """Values, versions and pending read counts of every buffer."""

    def __init__(self, graph: TaskGraph, steps: int):
        self.graph = graph
        planned = [b for b in graph.buffers.values() if b.space == "workspace" and b.offset is not None]
        size = max([b.offset + b.nbytes for b in planned], default=0)
        self.workspace = (np.zeros(size, np.float32), np.full(size, UNWRITTEN, np.int64),
                          np.zeros(size, np.int64))
        self.own = {}
        for b in graph.buffers.values():
            if b.space == "workspace" and b.offset is not None:
                continue
            shape = ((steps,) if b.per_step else ()) + tuple(b.shape)
            self.own[b.name] = (np.zeros(shape, _numpy_dtype(b.dtype)),
                                np.full(shape + (1,), UNWRITTEN, np.int64), np.zeros(shape + (1,), np.int64))

    def views(self, name: str, step: int):
        """(values, versions[..., slot], pending[..., slot]) of buffer `name` as seen in `step`."""
        b = self.graph.buffers[name]
        if name in self.own:
            arrays = self.own[name]
            return tuple(a[step] for a in arrays) if b.per_step else arrays
        size, end = element_bytes(b.dtype), b.offset + b.nbytes
        values, versions, pending = self.workspace
        return (values[b.offset:end:size].reshape(b.shape),
                versions[b.offset:end].reshape(tuple(b.shape) + (size,)),
                pending[b.offset:end].reshape(tuple(b.shape) + (size,)))


def _box(lo, hi) -> tuple[slice, ...]:
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


class _Interpreter:
    def __init__(self, graph: TaskGraph, weights, state, inputs, steps, rank: int = 0, ranks: int = 1):
        self.graph, self.steps = graph, steps
        self.rank, self.ranks = rank, [None] * ranks     # the interpreters of all ranks: `prepare`
        self.groups = graph.groups
        self.first = np.array([g.first_task for g in self.groups] + [graph.num_tasks])
        self.boxes = [group_boxes(graph, g) for g in self.groups]
        self.memory = _Memory(graph, steps)
        self.weights = weights
        self.state = state
        self._bind(weights, state, inputs)
        self._read_rules()

    # ---------------------------------------------------------------- setup

    def _bind(self, weights, state, inputs) -> None:
        for b in self.graph.buffers.values():
            if b.space == "weight":
                if b.weight_name not in weights:
                    raise KeyError(f"no weight named {b.weight_name!r}")
                values = np.asarray(weights[b.weight_name], np.float32)
                if b.shard:                              # this rank's slice (mpk-shard)
                    check_ranks(b, len(self.ranks))
                    values = slice_of(b.shard, values, self.rank)
                self.memory.own[b.name] = (values,) + self.memory.own[b.name][1:]
            elif b.space == "state":
                if b.weight_name not in state:
                    raise KeyError(f"no state named {b.weight_name!r}")
                values = np.asarray(state[b.weight_name], np.float32).copy()
                state[b.weight_name] = values           # updated in place, like the device cache
                versions = np.full(values.shape + (1,), UNWRITTEN, np.int64)
                self.memory.own[b.name] = (values, versions, self.memory.own[b.name][2])
            elif b.space == "io" and not b.per_step and b.name in inputs:
                values, versions, pending = self.memory.views(b.name, 0)
                values[...] = np.asarray(inputs[b.name]).reshape(b.shape)
                versions[...] = -1
        positions = inputs.get("positions")
        if positions is not None:                    # a sequence's cache rows below its first position:
            positions = np.asarray(positions).reshape(-1)    # written by earlier launches
            for b in self.graph.buffers.values():
                if b.space == "state":
                    versions = self.memory.own[b.name][1]
                    per_seq = max(len(positions) // versions.shape[0], 1)
                    for seq in range(versions.shape[0]):
                        versions[seq, :int(positions[seq * per_seq:(seq + 1) * per_seq].min())] = -1

    def _read_rules(self) -> None:
        """Per (group, input): the version a read must see, and the static read counts."""
        writers = {}
        for gi, g in enumerate(self.groups):
            for b in g.outputs:
                writers.setdefault(b, []).append(gi)
        self.rule = {}            # (gi, input) -> (writer group or None, lag: 0 this step, 1 previous step)
        self.reads_due = {}       # buffer -> static number of reads of every element per step
        for gi, g in enumerate(self.groups):
            for ii, b in enumerate(g.inputs):
                buf = self.graph.buffers[b]
                if buf.space in ("weight", "state"):
                    continue
                before = [w for w in writers.get(b, []) if w < gi]
                after = [w for w in writers.get(b, []) if w > gi]
                self.rule[gi, ii] = (before[-1], 0) if before else (after[-1], 1) if after else (None, None)
                counts = self.reads_due.setdefault(b, np.zeros(buf.shape, np.int64))
                lo, hi = self.boxes[gi][2][ii]
                for t in range(lo.shape[0]):
                    counts[_box(lo[t], hi[t])] += 1
        for b, counts in self.reads_due.items():      # host-written inputs are due for step 0's reads
            buf = self.graph.buffers[b]
            if buf.space == "io" and not buf.per_step:
                _, versions, pending = self.memory.views(b, 0)
                if (versions == -1).all():
                    pending[...] = counts[..., None]

    # ------------------------------------------------------------- checking

    def _task_name(self, gi: int, t: int, step: int) -> str:
        g = self.groups[gi]
        return f"'{g.name}'{[int(i) for i in np.unravel_index(t, g.grid)]} (step {step})"

    def _writer_of(self, gi: int, ii: int, index) -> str:
        writer, _ = self.rule.get((gi, ii), (None, None))
        if writer is None:
            return "no task writes it"
        g = self.groups[writer]
        lo, hi = self.boxes[writer][1][g.outputs.index(self.groups[gi].inputs[ii])]
        hit = np.all((lo <= index) & (index < hi), axis=1)
        t = int(np.nonzero(hit)[0][0]) if hit.any() else 0
        return f"its producer is '{g.name}'{[int(i) for i in np.unravel_index(t, g.grid)]}"

    def _read(self, gi, t, step, ii, region):
        """Check then consume a read of `region` of input ii; returns the values view."""
        g = self.groups[gi]
        name = g.inputs[ii]
        values, versions, pending = self.memory.views(name, step)
        if (gi, ii) not in self.rule:
            return values
        writer, lag = self.rule[gi, ii]
        want = step - lag if writer is not None else -1
        seen = versions[region]
        bad = np.argwhere((seen != want).any(axis=-1)) if lag is not None else np.argwhere(
            (seen == UNWRITTEN).any(axis=-1))
        if bad.size:
            index = np.array([s.start for s in region]) + bad[0]
            raise TaskInterpreterError(
                f"task {self._task_name(gi, t, step)} reads '@{name}'{index.tolist()} before it is written "
                f"in step {want}: {self._writer_of(gi, ii, index)}, and no event orders them")
        pending[region] -= 1
        return values

    def _write(self, gi, t, step, name, region):
        values, versions, pending = self.memory.views(name, step)
        if self.graph.buffers[name].space != "state":
            due = np.argwhere((pending[region] > 0).any(axis=-1))
            if due.size:
                index = (np.array([s.start for s in region]) + due[0]).tolist()
                raise TaskInterpreterError(
                    f"task {self._task_name(gi, t, step)} overwrites '@{name}'{index} while "
                    f"{self._pending_reader(name, step, index)} still has to read what was there")
            counts = self.reads_due.get(name)
            pending[region] = counts[region][..., None] if counts is not None else 0
        versions[region] = step
        return values

    def _pending_reader(self, name, step, index) -> str:
        for gi, g in enumerate(self.groups):
            for ii, b in enumerate(g.inputs):
                lo, hi = self.boxes[gi][2][ii]
                for t in range(lo.shape[0]):
                    if b == name and np.all((lo[t] <= index) & (index < hi[t])) and self.done[gi][t] < step:
                        return f"task {self._task_name(gi, t, self.done[gi][t])}"
        return "another task (its memory is shared)"

    # ------------------------------------------------------------- execution

    def run_task(self, gi: int, t: int, step: int) -> None:
        kind = kinds.get(self.groups[gi].kind)
        kind.run_task(Task(self, gi, t, step))

    def prepare(self, ranks: list["_Interpreter"]) -> None:
        """Counters at their launch values, and who waits on and triggers what; `ranks`:
        the interpreters of every rank of a tensor-parallel step (this one among them)."""
        graph = self.graph
        self.ranks = ranks
        self.counters = {n: np.full(e.size, e.triggers if e.primed else 0, np.int64) for n, e in graph.events.items()}
        self.waiters = {}                     # (event, index) -> tasks waiting on that counter
        self.wait_index = np.full(graph.num_tasks, -1, np.int64)
        self.wait_event = [None] * graph.num_tasks
        self.trigger_of = [None] * len(self.groups)
        for gi, g in enumerate(self.groups):
            idx = g.grid_indices()
            if g.wait is not None:
                w = g.wait.indices(idx)
                self.wait_index[self.first[gi]:self.first[gi + 1]] = w
                for t, i in enumerate(w):
                    self.wait_event[self.first[gi] + t] = g.wait.event
                    self.waiters.setdefault((g.wait.event, int(i)), []).append(self.first[gi] + t)
            if g.trigger is not None:
                self.trigger_of[gi] = (g.trigger.event, g.trigger.indices(idx), self._trigger_ranks(gi))
        self.done = [np.full(g.num_tasks, -1, np.int64) for g in self.groups]   # last step run

    def ready(self, task: int, step: int) -> bool:
        event = self.wait_event[task]
        return event is None or \
            self.counters[event][self.wait_index[task]] >= self.graph.events[event].triggers * (step + 1)

    def execute(self, task: int, step: int) -> list[tuple["_Interpreter", int, int]]:
        """Run a task; the (rank, task, step) runs its trigger made ready."""
        gi = int(np.searchsorted(self.first, task, side="right") - 1)
        self.run_task(gi, task - self.first[gi], step)
        self.done[gi][task - self.first[gi]] = step
        self.on_task()
        if self.trigger_of[gi] is None:
            return []
        event, indices, targets = self.trigger_of[gi]
        i = int(indices[task - self.first[gi]])
        ready = []
        for rank in targets(task - self.first[gi]):
            rank.counters[event][i] += 1
            n, triggers = rank.counters[event][i], self.graph.events[event].triggers
            if n % triggers == 0:
                s = n // triggers - 1      # counter values count from step 0 (primed ones start one step ahead)
                ready += [(rank, w, s) for w in rank.waiters.get((event, i), []) if s < self.steps]
        return ready

    def _trigger_ranks(self, gi: int):
        """The interpreters whose counters task t of group gi bumps (kinds: `trigger_ranks`)."""
        kind = kinds.get(self.groups[gi].kind)
        mode = kind.trigger_ranks(self.groups[gi].params)
        if mode == "every":
            return lambda t: self.ranks
        if mode == "owner":
            owners = kind.trigger_ranks_of(op_info(self.graph, self.groups[gi]), self.boxes[gi][0])
            return lambda t: [self.ranks[int(owners[t])]]
        return lambda t: [self]

    def stuck(self) -> list[str]:
        return [self._task_name(gi, int(np.nonzero(d < self.steps - 1)[0][0]), 0)
                for gi, d in enumerate(self.done) if (d < self.steps - 1).any()]


def _run_in_random_order(ranks: list[_Interpreter], rng) -> None:
    """Every rank's task runs, one at a time, each picked at random among those ready."""
    pending = [(r, task, s) for r in ranks for s in range(r.steps) for task in range(r.graph.num_tasks)
               if r.wait_event[task] is None]
    pending += [(r, task, 0) for r in ranks for task in range(r.graph.num_tasks)
                if r.wait_event[task] and r.ready(task, 0)]
    runs = 0
    while pending:
        k = int(rng.integers(len(pending)))
        pending[k], pending[-1] = pending[-1], pending[k]
        rank, task, step = pending.pop()
        pending += rank.execute(task, step)
        runs += 1
    due = sum(r.graph.num_tasks * r.steps for r in ranks)
    if runs != due:
        rank = next(r for r in ranks if r.stuck())
        where = f" on rank {ranks.index(rank)}" if len(ranks) > 1 else ""
        raise TaskInterpreterError(f"{due - runs} task runs never became ready, e.g. {rank.stuck()[0]}{where}: "
                                   "their events are never triggered")


def _run_on_queues(ranks: list[_Interpreter], rng) -> None:
    """Every rank's workers walk their `mpk.schedule` queues, one random ready worker at a time."""
    workers = [(r, q) for r in ranks for q in r.graph.schedule]
    heads = [0] * len(workers)
    total = [len(q) * r.steps for r, q in workers]

    def head(w):
        rank, queue = workers[w]
        return rank, int(queue[heads[w] % len(queue)]), heads[w] // len(queue)
    while True:
        live = [w for w in range(len(workers)) if heads[w] < total[w]]
        if not live:
            return
        can = [w for w in live if head(w)[0].ready(*head(w)[1:])]
        if not can:
            rank, task, step = head(live[0])
            gi = int(np.searchsorted(rank.first, task, side="right") - 1)
            where = f" of rank {ranks.index(rank)}" if len(ranks) > 1 else ""
            raise TaskInterpreterError(
                f"deadlock: no worker can start; worker {live[0] % len(rank.graph.schedule)}{where} waits for "
                f"{rank._task_name(gi, task - rank.first[gi], step)}")
        w = can[int(rng.integers(len(can)))]
        rank, task, step = head(w)
        rank.execute(task, step)
        heads[w] += 1


class Task:
    """One task run, as a kind's `run_task` sees it (lowering/kinds/__init__.py): its
    tiles, checked reads and writes, and errors that name it."""

    def __init__(self, interp: _Interpreter, gi: int, t: int, step: int):
        self.interp, self.gi, self.t, self.step = interp, gi, t, step
        self.group = interp.groups[gi]
        self.params = self.group.params
        boxes = interp.boxes[gi]
        self.out_lo, self.out_hi = boxes[0][0][t], boxes[0][1][t]
        self.out_box = _box(self.out_lo, self.out_hi)
        self.reads = [_box(lo[t], hi[t]) for lo, hi in boxes[2]]     # the read box of every input
        self.rows = slice(int(self.out_lo[0]), int(self.out_hi[0]))

    @property
    def name(self) -> str:
        return self.interp._task_name(self.gi, self.t, self.step)

    def error(self, message: str) -> TaskInterpreterError:
        return TaskInterpreterError(f"task {self.name} {message}")

    def read(self, ii: int) -> np.ndarray:
        """All values of input `ii`, after checking that its read box holds this step's."""
        return self.interp._read(self.gi, self.t, self.step, ii, self.reads[ii])

    def tiles(self, count: int | None = None) -> list[np.ndarray]:
        """The read box of each of the first `count` (default: all) inputs."""
        return [self.read(ii)[self.reads[ii]] for ii in range(count or len(self.group.inputs))]

    def values(self, name: str) -> np.ndarray:
        """A buffer's values as this step sees them, unchecked."""
        return self.interp.memory.views(name, self.step)[0]

    def versions(self, name: str) -> np.ndarray:
        """The step that last wrote each slot of a buffer (UNWRITTEN: none)."""
        return self.interp.memory.views(name, self.step)[1]

    def write(self, name: str, region) -> np.ndarray:
        """A buffer's values, after checking and recording a write of `region` of it."""
        return self.interp._write(self.gi, self.t, self.step, name, region)

    def write_output(self, result: np.ndarray, output: int = 0) -> None:
        self.write(self.group.outputs[output], self.out_box)[self.out_box] = result

    def push(self, tile: np.ndarray) -> None:
        """Store this task's tile into the output of every rank of a tensor-parallel step,
        at this rank's slot (`allgather`): [rank, rows, cols] of slots, or this rank's
        columns of the gathered [rows, ranks * cols]."""
        rank, ranks = self.interp.rank, self.interp.ranks
        name = self.group.outputs[0]
        rows, cols = self.out_box
        if len(self.interp.graph.buffers[name].shape) == 3:
            region = (slice(rank, rank + 1), rows, cols)
        else:
            width = self.interp.graph.buffers[self.group.inputs[0]].shape[1]
            region = (rows, slice(cols.start + rank * width, cols.stop + rank * width))
        for peer in ranks:
            peer._write(self.gi, self.t, self.step, name, region)[region] = tile.reshape(
                peer.memory.views(name, self.step)[0][region].shape)

    def scatter(self, tile: np.ndarray) -> None:
        """Store this task's tile into the slots [ranks, rows, chunk] of the rank that owns
        its columns, at this rank's slot (`scatter`: a two-shot allreduce)."""
        name = self.group.outputs[0]
        chunk = self.interp.graph.buffers[name].shape[2]
        rows, cols = self.out_box
        owner = cols.start // chunk
        region = (slice(self.interp.rank, self.interp.rank + 1), rows,
                  slice(cols.start - owner * chunk, cols.stop - owner * chunk))
        peer = self.interp.ranks[owner]
        peer._write(self.gi, self.t, self.step, name, region)[region] = tile[None]

    def check_written(self, name: str, region, what: str) -> None:
        """Error unless every slot of `region` of input buffer `name` was written."""
        if (self.versions(name)[region] == UNWRITTEN).any():
            raise self.error(f"reads '@{name}' {what} before they are written, and no event orders them")



def run_tasks(module, weights: Mapping[str, np.ndarray], state: MutableMapping[str, np.ndarray],
              inputs: Mapping[str, np.ndarray], steps: int = 1, seed: int = 0,
              queues: bool = False, on_task=None) -> dict[str, np.ndarray]:
    """Run `steps` decode steps of a task module; returns every `io` buffer.

    `inputs` gives the io buffers the host writes (`tokens`, `positions`);
    `state` (KV caches by name) is updated in place. Per-step io buffers
    (`next_tokens`, `logits`) come back with a leading [steps] dimension.
    `on_task()` is called after each task run (progress).
    """
    return run_tasks_ranks(module, weights, [state], inputs, steps, seed, queues, on_task)[0]


def run_tasks_ranks(module, weights: Mapping[str, np.ndarray], states: list[MutableMapping[str, np.ndarray]],
                    inputs: Mapping[str, np.ndarray], steps: int = 1, seed: int = 0,
                    queues: bool = False, on_task=None) -> list[dict[str, np.ndarray]]:
    """Run the ranks of a tensor-parallel step (mpk-shard), one per state, together:
    every rank's tasks interleave in one random order (or every rank's workers walk
    their queues), an `allgather` task stores into every rank's memory and bumps every
    rank's counter. Each rank binds its slice of the full `weights`; `states` are the
    ranks' own (`rank_state`). Returns each rank's io buffers (and the peer buffers the
    host reads, the gathered logits)."""
    graph = TaskGraph.from_module(module)
    if not graph.events:
        raise TaskInterpreterError("the module has no events: run 'mpk-build-events' first")
    if queues and graph.schedule is None:
        raise TaskInterpreterError("the module has no 'mpk.schedule': run 'mpk-schedule' first")
    ranks = []
    for rank, state in enumerate(states):
        local = dict(inputs)
        if "peers" in graph.buffers:                 # this rank; the interpreter needs no distances
            local["peers"] = np.array([rank] + [0] * len(states), np.int64)
        interp = _Interpreter(graph, weights, state, local, steps, rank, len(states))
        interp.on_task = on_task or (lambda: None)
        ranks.append(interp)
    for interp in ranks:
        interp.prepare(ranks)
    rng = np.random.default_rng(seed)
    (_run_on_queues if queues else _run_in_random_order)(ranks, rng)
    return [{b.name: interp.memory.own[b.name][0].copy() for b in graph.buffers.values()
             if b.space == "io" or (b.space == "peer" and b.per_step)} for interp in ranks]


def rank_state(module, state: Mapping[str, np.ndarray], rank: int, ranks: int) -> dict:
    """Rank `rank`'s own copy of the states of a task module (its slice of each KV cache)."""
    graph = TaskGraph.from_module(module)
    local = {}
    for b in graph.buffers.values():
        if b.space == "state" and b.weight_name in state:
            full = np.asarray(state[b.weight_name])
            if b.shard:
                check_ranks(b, ranks)
            local[b.weight_name] = (slice_of(b.shard, full, rank) if b.shard else full).copy()
    return local


def check_ranks(buffer, ranks: int) -> None:
    if len(buffer.shard) - 2 != ranks:
        raise TaskInterpreterError(f"'@{buffer.name}' is sharded over {len(buffer.shard) - 2} ranks, not {ranks}")

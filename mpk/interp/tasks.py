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
from mpk.lowering import kinds
from mpk.lowering.tiling import group_boxes

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
    def __init__(self, graph: TaskGraph, weights, state, inputs, steps, seed):
        self.graph, self.steps = graph, steps
        self.rng = np.random.default_rng(seed)
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
                self.memory.own[b.name] = (np.asarray(weights[b.weight_name], np.float32),) + \
                    self.memory.own[b.name][1:]
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

    def run(self, queues: list[np.ndarray] | None) -> None:
        graph = self.graph
        counters = {n: np.full(e.size, e.triggers if e.primed else 0, np.int64) for n, e in graph.events.items()}
        waiters = {}                          # (event, index) -> tasks waiting on that counter
        wait_index = np.full(graph.num_tasks, -1, np.int64)
        wait_event = [None] * graph.num_tasks
        trigger_of = [None] * len(self.groups)
        for gi, g in enumerate(self.groups):
            idx = g.grid_indices()
            if g.wait is not None:
                w = g.wait.indices(idx)
                wait_index[self.first[gi]:self.first[gi + 1]] = w
                for t, i in enumerate(w):
                    wait_event[self.first[gi] + t] = g.wait.event
                    waiters.setdefault((g.wait.event, int(i)), []).append(self.first[gi] + t)
            if g.trigger is not None:
                trigger_of[gi] = (g.trigger.event, g.trigger.indices(idx))
        self.done = [np.full(g.num_tasks, -1, np.int64) for g in self.groups]   # last step run

        def ready(task: int, step: int) -> bool:
            event = wait_event[task]
            return event is None or counters[event][wait_index[task]] >= graph.events[event].triggers * (step + 1)

        def execute(task: int, step: int) -> list[tuple[int, int]]:
            gi = int(np.searchsorted(self.first, task, side="right") - 1)
            self.run_task(gi, task - self.first[gi], step)
            self.done[gi][task - self.first[gi]] = step
            self.on_task()
            if trigger_of[gi] is None:
                return []
            event, indices = trigger_of[gi]
            i = int(indices[task - self.first[gi]])
            counters[event][i] += 1
            n, triggers = counters[event][i], graph.events[event].triggers
            if n % triggers:
                return []
            s = n // triggers - 1      # counter values count from step 0 (primed ones start one step ahead)
            return [(w, s) for w in waiters.get((event, i), []) if s < self.steps]

        if queues is None:
            pending = [(task, s) for s in range(self.steps) for task in range(graph.num_tasks)
                       if wait_event[task] is None]
            pending += [(task, 0) for task in range(graph.num_tasks) if wait_event[task] and ready(task, 0)]
            runs = 0
            while pending:
                k = int(self.rng.integers(len(pending)))
                pending[k], pending[-1] = pending[-1], pending[k]
                pending += execute(*pending.pop())
                runs += 1
            if runs != graph.num_tasks * self.steps:
                stuck = [self._task_name(gi, int(np.nonzero(d < self.steps - 1)[0][0]), 0)
                         for gi, d in enumerate(self.done) if (d < self.steps - 1).any()]
                raise TaskInterpreterError(f"{graph.num_tasks * self.steps - runs} task runs never became "
                                           f"ready, e.g. {stuck[0]}: their events are never triggered")
            return
        heads = [0] * len(queues)
        total = [len(q) * self.steps for q in queues]
        while True:
            live = [w for w in range(len(queues)) if heads[w] < total[w]]
            if not live:
                return
            can = [w for w in live if ready(int(queues[w][heads[w] % len(queues[w])]), heads[w] // len(queues[w]))]
            if not can:
                w = live[0]
                task, step = int(queues[w][heads[w] % len(queues[w])]), heads[w] // len(queues[w])
                gi = int(np.searchsorted(self.first, task, side="right") - 1)
                raise TaskInterpreterError(
                    f"deadlock: no worker can start; worker {w} waits for "
                    f"{self._task_name(gi, task - self.first[gi], step)}")
            w = can[int(self.rng.integers(len(can)))]
            execute(int(queues[w][heads[w] % len(queues[w])]), heads[w] // len(queues[w]))
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
    graph = TaskGraph.from_module(module)
    if not graph.events:
        raise TaskInterpreterError("the module has no events: run 'mpk-build-events' first")
    if queues and graph.schedule is None:
        raise TaskInterpreterError("the module has no 'mpk.schedule': run 'mpk-schedule' first")
    interp = _Interpreter(graph, weights, state, inputs, steps, seed)
    interp.on_task = on_task or (lambda: None)
    interp.run(graph.schedule if queues else None)
    return {b.name: interp.memory.own[b.name][0].copy() for b in graph.buffers.values() if b.space == "io"}

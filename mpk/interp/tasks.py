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
from mpk.interp import ops
from mpk.lowering.task_kinds import ROW_COUNTS, group_boxes, linear_roles, partial_width

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


def _rope_heads(params, q, k, norms, positions) -> tuple[np.ndarray, np.ndarray]:
    """q and k tiles after the QK-norm (if `norms`) and rope of a rope_append."""
    if norms:
        q, k = (ops.rmsnorm(x, w, params["eps"]) for x, w in zip((q, k), norms))
    inv_freq = np.asarray(params["inv_freq"], np.float32)
    return ops.rope(q, positions, inv_freq), ops.rope(k, positions, inv_freq)


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
        g = self.groups[gi]
        out_lo, out_hi = self.boxes[gi][0][0][t], self.boxes[gi][0][1][t]
        reads = [_box(lo[t], hi[t]) for lo, hi in self.boxes[gi][2]]
        rows = slice(int(out_lo[0]), int(out_hi[0]))
        kind = "attention_partial" if g.kind == "attention_split" else g.kind   # + the merge, below
        if kind == "attention_partial" and "inv_freq" in g.params:
            self._rope_attention_partial(gi, t, step, reads, rows, int(out_lo[1]), _box(out_lo, out_hi))
            return self._arrive(gi, t, step, _box(out_lo, out_hi)) if g.kind == "attention_split" else None
        reads_cache_rows = kind in ("attention", "attention_partial", "attention_prefill")
        if reads_cache_rows:                         # exact rows: 0..pos[r] of the tile's KV heads
            positions = self._read(gi, t, step, 3, reads[3])
            for c in (1, 2):
                region = reads[c]
                _, versions, _ = self.memory.views(g.inputs[c], step)
                per_seq = ops.rows_per_sequence(len(positions), versions)
                for r in range(rows.start, rows.stop):
                    p, b = int(positions[r]), r // per_seq
                    seen = versions[(b, slice(0, p + 1)) + region[2:]]
                    if (seen == UNWRITTEN).any() or (seen[p] != step).any():
                        raise TaskInterpreterError(
                            f"task {self._task_name(gi, t, step)} reads '@{g.inputs[c]}' row {p} of sequence "
                            f"{b} before this step's kv_append wrote it, and no event orders them")
        x = [self._read(gi, t, step, ii, reads[ii]) if not (reads_cache_rows and ii == 3) else None
             for ii in range(len(g.inputs))]
        p = g.params
        out_box = _box(out_lo, out_hi)
        if kind == "kv_append":
            cache, new, positions = x
            per_seq = ops.rows_per_sequence(len(positions), cache)
            for r in range(rows.start, rows.stop):
                row = (r // per_seq, int(positions[r]), out_box[1])
                self._write(gi, t, step, g.outputs[0], row)
                self.memory.own[g.outputs[0]][0][row] = new[r, out_box[1]]
            return
        if kind == "rope_append":                   # q, k, v, k_cache, v_cache, positions, [norm weights]
            q, k, v, k_cache, _, positions, *norms = x[:len(x) - (ROW_COUNTS in p)]
            heads = [*_rope_heads(p, q[reads[0]], k[reads[1]], norms, positions[rows]), v[reads[2]]]
            values = self._write(gi, t, step, g.outputs[0], out_box)
            values[out_box] = heads[0]
            cols = reads[1][1]
            per_seq = ops.rows_per_sequence(len(positions), k_cache)
            for r in range(rows.start, rows.stop):
                for name, new in zip(g.outputs[1:], heads[1:]):
                    row = (r // per_seq, int(positions[r]), cols)
                    self._write(gi, t, step, name, row)[row] = new[r - rows.start]
            return
        if kind in ("argmax", "sample"):
            args = [x[i][reads[i]] for i in range(len(x))]
            result = ops.argmax(args[0]) if kind == "argmax" else ops.sample(*args)
            for name in g.outputs:
                values = self._write(gi, t, step, name, out_box)
                values[out_box] = values[out_box] + 1 if name == "positions" else result
            return
        if kind == "embedding":
            result = ops.embedding(x[0][reads[0]], x[1][reads[1]])
        elif kind == "rmsnorm":
            result = ops.rmsnorm(x[0][reads[0]], x[1], p["eps"])
        elif kind == "linear":                       # x, w, [residual], [norm weight], [up]
            role = {r: v[box] for r, v, box in zip(linear_roles(p, len(x)), x, reads)}
            xs = role["x"]
            if "norm" in role:
                xs = ops.rmsnorm(xs, role["norm"], p["norm_eps"])
            if "up" in role:
                xs = ops.silu_mul(xs, role["up"])
            result = ops.linear(xs, role["w"], role.get("residual"))
        elif kind == "gate_up":                      # x, w_gate, w_up, [norm weight]
            xs = x[0][reads[0]]
            if "norm_eps" in p:
                xs = ops.rmsnorm(xs, x[3][reads[3]], p["norm_eps"])
            result = ops.silu_mul(ops.linear(xs, x[1][reads[1]]), ops.linear(xs, x[2][reads[2]]))
        elif kind == "rope":
            result = ops.rope(x[0][reads[0]], x[1][reads[1]], np.asarray(p["inv_freq"], np.float32))
        elif kind in ("attention", "attention_prefill"):
            positions = self.memory.views(g.inputs[3], step)[0]
            result = ops.attention(x[0][reads[0]], x[1][reads[1]], x[2][reads[2]], positions[rows],
                                   p["head_dim"], p["scale"])
        elif kind == "attention_partial":
            positions = self.memory.views(g.inputs[3], step)[0]
            split = int(out_lo[1])
            result = ops.attention_partial(x[0][reads[0]], x[1][reads[1]], x[2][reads[2]], positions[rows],
                                           p["head_dim"], p["scale"], split, p["splits"])
            result = result.reshape(out_hi[0] - out_lo[0], 1, -1)
        elif kind == "attention_combine":
            result = ops.attention_combine(x[0][reads[0]], p["head_dim"])
        elif kind in ("silu_mul", "add"):
            result = getattr(ops, kind)(x[0][reads[0]], x[1][reads[1]])
        elif kind == "allreduce":
            result = ops.allreduce(x[0][reads[0]])
        else:
            raise TaskInterpreterError(f"no interpreter for task kind '{kind}'")
        values = self._write(gi, t, step, g.outputs[0], out_box)
        values[out_box] = result
        if g.kind == "attention_split":
            self._arrive(gi, t, step, out_box)

    def _arrive(self, gi, t, step, out_box) -> None:
        """An attention_split task counts itself in `arrivals`; the last of its KV group
        merges the group's P partial rows, which must all be this step's, into the
        output (task_kinds.AttentionSplit), and resets the count."""
        g, p = self.groups[gi], self.groups[gi].params
        head_dim, splits = p["head_dim"], p["splits"]
        rows, cols = out_box[0], out_box[2]
        width = partial_width(head_dim)
        heads = slice(cols.start // width, cols.stop // width)
        kv = heads.start // (heads.stop - heads.start)
        arrivals = self.memory.views(g.outputs[-1], step)[0]
        arrivals[rows, kv] += 1
        if (arrivals[rows, kv] < splits).all():
            return
        arrivals[rows, kv] = 0
        values, versions, _ = self.memory.views(g.outputs[0], step)
        early = np.argwhere((versions[rows, :, cols] != step).any(axis=-1))
        if early.size:
            raise TaskInterpreterError(
                f"task {self._task_name(gi, t, step)} merges before split {int(early[0][1])} of its KV group "
                f"wrote its partial row in step {step}")
        region = (rows, slice(heads.start * head_dim, heads.stop * head_dim))
        self._write(gi, t, step, g.outputs[-2], region)[region] = ops.attention_combine(values[rows, :, cols],
                                                                                         head_dim)

    def _rope_attention_partial(self, gi, t, step, reads, rows, split, out_box) -> None:
        """An attention_partial with its rope_append fused in (task_kinds.AttentionPartial):
        the task of the split holding row positions[b] appends that row first; every
        task reads exactly its split's rows, which must be written by then."""
        g, p = self.groups[gi], self.groups[gi].params
        q, k, v, _, _, positions, *norms = [self._read(gi, t, step, ii, reads[ii]) for ii in range(len(g.inputs))]
        q_rot, k_rot = _rope_heads(p, q[reads[0]], k[reads[1]], norms, positions[rows])
        cols = reads[3][2]
        caches = []
        for c, new in ((3, k_rot), (4, v[reads[2]])):
            values, versions, _ = self.memory.views(g.inputs[c], step)
            for b in range(rows.start, rows.stop):
                pos = int(positions[b])
                lo, hi = ops.split_rows(pos + 1, split, p["splits"])
                if lo <= pos < hi:
                    row = (b, pos, cols)
                    self._write(gi, t, step, g.outputs[c - 2], row)[row] = new[b - rows.start]
                if (versions[b, lo:hi, cols] == UNWRITTEN).any():
                    raise TaskInterpreterError(
                        f"task {self._task_name(gi, t, step)} reads '@{g.inputs[c]}' rows {lo}..{hi - 1} of "
                        f"sequence {b} before they are written, and no event orders them")
            caches.append(values[reads[c]])
        result = ops.attention_partial(q_rot, *caches, positions[rows], p["head_dim"], p["scale"],
                                       split, p["splits"])
        values = self._write(gi, t, step, g.outputs[0], out_box)
        values[out_box] = result.reshape(rows.stop - rows.start, 1, -1)

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

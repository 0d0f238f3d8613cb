"""mpk-build-events: tile-granular dependencies, fused into one event per task.

1. Dependencies. For every buffer a group reads, its producer is the last
   group before it that writes the buffer. Task c depends on task p exactly
   when the box c reads overlaps the box p writes (lowering/kinds), so matching
   partitions give per-tile dependencies and only a consumer that reads a
   whole input (a linear's x, a row norm) depends on every producer task.
   This is finer than MPK's gcd rule, which collapses to a barrier as soon as
   one side reads a whole input.
   Dependencies of one group on another are kept sparse (`Deps`): a task
   that depends on every producer task is one flag, the others list their
   producer tasks, found by a sorted-interval join (`overlaps`), so the pass
   is near-linear in tasks for tile-to-tile and all-to-all dependencies.
2. Transitive reduction: a dependency of task c on task p is dropped when c
   also depends on a task of another group that waits (transitively) for p;
   a linear's residual input is the usual case. Without it the residual
   producer would join the event of the linear's x and could close a cycle.
   At group granularity where every task of that group waits for all of P,
   else task by task.
3. Fusion. Each task waits on at most one counter and triggers at most one,
   so a counter is a connected component of the bipartite graph "consumer
   task -- producer task": tasks with the same predecessors share it, and its
   trigger count is exact. Counters are packed into `mpk.event` grids, one
   per set of groups they link, and each group's task -> counter function is
   fitted by an affine map. Where no affine map or no uniform trigger count
   fits, that event falls back to one counter (a barrier over those groups).
4. Steps. Groups that nothing waits on trigger the `primed` event `step`,
   which groups that wait on nothing wait on: step s+1 starts after step s,
   so no workspace tile is overwritten while still read. Writes after reads
   in one step (argmax updating `tokens` and `positions`) must be ordered by
   the event graph; the pass checks it.

Reports `tasks`, dependencies and counters before/after fusion on stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

import numpy as np
from mlir import ir

from mpk import dialects as mpk
from mpk.dialects.taskir import TaskGraph
from mpk.lowering import ModulePass, analyses, kinds
from mpk.lowering.tiling import group_boxes

STEP_EVENT = "step"


# Below this many cells a composition of dependencies is a dense matrix product (fast
# while small); above it stays sparse (linear in the pairs, for large groups).
DENSE_CELLS = 1 << 22


@dataclasses.dataclass
class Deps:
    """Which producer tasks each consumer task depends on, between two groups (a boolean
    [consumers, producers] matrix, sparse): a `full` row depends on every producer
    task; the other rows on the producers of their (`c`, `p`) pairs, sorted and unique."""
    shape: tuple[int, int]
    full: np.ndarray                 # bool [consumers]
    c: np.ndarray                    # int64 [pairs], no full row among them
    p: np.ndarray

    @classmethod
    def of_pairs(cls, shape, c, p, full=None) -> "Deps":
        nc, np_ = shape
        full = np.zeros(nc, bool) if full is None else full.copy()
        keys = _unique(np.asarray(c, np.int64) * np_ + np.asarray(p, np.int64))
        c, p = keys // np_, keys % np_
        full |= np.bincount(c, minlength=nc) == np_       # a row of every producer is a full row
        keep = ~full[c]
        return cls(shape, full, c[keep], p[keep])

    @classmethod
    def of_dense(cls, m: np.ndarray) -> "Deps":
        full = m.all(axis=1)
        c, p = np.nonzero(m & ~full[:, None])
        return cls(m.shape, full, c.astype(np.int64), p.astype(np.int64))

    def dense(self) -> np.ndarray:
        m = np.zeros(self.shape, bool)
        m[self.full] = True
        m[self.c, self.p] = True
        return m

    @classmethod
    def every(cls, shape) -> "Deps":
        return cls(shape, np.ones(shape[0], bool), np.zeros(0, np.int64), np.zeros(0, np.int64))

    @classmethod
    def identity(cls, n: int) -> "Deps":
        return cls.of_pairs((n, n), np.arange(n), np.arange(n))

    def rows(self) -> np.ndarray:
        """bool [consumers]: depends on some producer task."""
        return self.full | (np.bincount(self.c, minlength=self.shape[0]) > 0)

    def cols(self) -> np.ndarray:
        """bool [producers]: some consumer task depends on it."""
        return np.full(self.shape[1], self.full.any()) | (np.bincount(self.p, minlength=self.shape[1]) > 0)

    def count(self) -> int:
        return int(self.full.sum()) * self.shape[1] + self.c.size

    def any(self) -> bool:
        return bool(self.full.any() or self.c.size)

    def coverage(self) -> tuple[bool, bool, bool]:
        """(every consumer task depends on every producer task, every one on some, every producer is depended on)."""
        return bool(self.full.all()), bool(self.rows().all()), bool(self.cols().all())

    def union(self, other: "Deps") -> "Deps":
        full = self.full | other.full
        c, p = np.concatenate([self.c, other.c]), np.concatenate([self.p, other.p])
        keep = ~full[c]
        return Deps.of_pairs(self.shape, c[keep], p[keep], full)

    def drop_rows(self, rows: np.ndarray) -> None:
        """Forget every dependency of the consumer tasks `rows` (bool mask)."""
        self.full &= ~rows
        keep = ~rows[self.c]
        self.c, self.p = self.c[keep], self.p[keep]

    def subtract(self, other: "Deps") -> None:
        """Forget the dependencies `other` holds."""
        self.drop_rows(other.full)
        np_ = self.shape[1]
        spelled = self.full & other.rows()      # full rows losing some: list their producers
        if spelled.any():
            rows = np.nonzero(spelled)[0]
            self.full &= ~spelled
            keys = _unique(np.concatenate([self.c * np_ + self.p, (rows[:, None] * np_ + np.arange(np_)).ravel()]))
            self.c, self.p = keys // np_, keys % np_
        keep = ~np.isin(self.c * np_ + self.p, other.c * np_ + other.p, assume_unique=True)
        self.c, self.p = self.c[keep], self.p[keep]

    def then(self, other: "Deps") -> "Deps":
        """The composition: consumer x of `self` reaches producer z of `other` through some
        task y (self: x -> y, other: y -> z)."""
        (nx, ny), nz = self.shape, other.shape[1]
        if max(nx * ny, ny * nz, nx * nz) <= DENSE_CELLS:      # a BLAS product (exact: counts < 2^24)
            return Deps.of_dense(self.dense().astype(np.float32) @ other.dense().astype(np.float32) > 0)
        full = np.zeros(nx, bool)
        if other.full.any():                      # through a y that depends on every z
            full |= self.full
            full[self.c[other.full[self.p]]] = True
        every_y = self.full & ~full               # x depends on every y: the union of their rows
        if every_y.any():
            reached = _unique(other.p)
            if reached.size == nz:
                full |= every_y
                every_y[:] = False
        sparse = ~full[self.c]
        xs, ys = self.c[sparse], self.p[sparse]
        starts = np.searchsorted(other.c, ys)
        counts = np.searchsorted(other.c, ys, "right") - starts
        cx, cz = [np.repeat(xs, counts)], [other.p[_ranges(starts, counts)]]
        if every_y.any():
            rows = np.nonzero(every_y)[0]
            cx.append(np.repeat(rows, reached.size))
            cz.append(np.tile(reached, rows.size))
        return Deps.of_pairs((nx, nz), np.concatenate(cx), np.concatenate(cz), full)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(consumer, producer) pairs joining what the dependencies join: full rows are
        linked through producer 0 and the first full row, not all pairs."""
        rows = np.nonzero(self.full)[0]
        if rows.size == 0:
            return self.c, self.p
        return (np.concatenate([self.c, rows, np.full(self.shape[1], rows[0])]),
                np.concatenate([self.p, np.zeros(rows.size, np.int64), np.arange(self.shape[1])]))


def _unique(a: np.ndarray) -> np.ndarray:
    """np.unique of int64 by sorting (numpy's hashing path is many times slower)."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if a.size else a


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The concatenated ranges [start, start + count) (int64)."""
    starts, counts = np.asarray(starts, np.int64), np.asarray(counts, np.int64)
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()), dtype=np.int64)


# `overlaps` compares every pair of boxes up to this many pairs (faster while small),
# and else checks candidates in slices of JOIN_CHUNK (memory: a few int64 arrays of it).
DENSE_JOIN_CELLS = 1 << 18
JOIN_CHUNK = 1 << 22


def overlaps(reads, writes) -> Deps:
    """Which written boxes each read box meets (consumer tasks x producer tasks).

    Every pair when every interval meets every interval in each dimension; else the
    candidates of each read box are the written boxes meeting it in the dimension that
    gives the fewest (a contiguous run of the boxes sorted by interval, when their
    intervals there are ordered, as tiles are), checked in every dimension.
    """
    (rlo, rhi), (wlo, whi) = reads, writes
    shape = (rlo.shape[0], wlo.shape[0])
    dims = range(rlo.shape[1])
    if all(wlo[:, d].max() < rhi[:, d].min() and rlo[:, d].max() < whi[:, d].min() for d in dims):
        return Deps.every(shape)
    if shape[0] * shape[1] <= DENSE_JOIN_CELLS:
        hit = np.ones(shape, bool)
        for d in dims:
            hit &= (rlo[:, None, d] < whi[None, :, d]) & (wlo[None, :, d] < rhi[:, None, d])
        return Deps.of_dense(hit)
    best = None
    for d in dims:
        order = np.lexsort((whi[:, d], wlo[:, d]))
        lo, hi = wlo[order, d], whi[order, d]
        stop = np.searchsorted(lo, rhi[:, d])                         # boxes starting before the read ends
        ordered = bool((np.diff(hi) >= 0).all())
        start = np.searchsorted(hi, rlo[:, d], "right") if ordered else np.zeros_like(stop)
        counts = np.maximum(stop - start, 0)
        if best is None or counts.sum() < best[0].sum():
            best = (counts, start, order)
    counts, start, order = best
    found_c, found_p = [], []
    ends = np.cumsum(counts)
    first = 0
    while first < shape[0]:              # consumers in slices of about JOIN_CHUNK candidates
        last = max(int(np.searchsorted(ends, ends[first] - counts[first] + JOIN_CHUNK, "right")), first + 1)
        c = np.repeat(np.arange(first, last), counts[first:last])
        p = order[_ranges(start[first:last], counts[first:last])]
        hit = np.ones(c.size, bool)
        for d in dims:
            hit &= (rlo[c, d] < whi[p, d]) & (wlo[p, d] < rhi[c, d])
        found_c.append(c[hit])
        found_p.append(p[hit])
        first = last
    return Deps.of_pairs(shape, np.concatenate(found_c), np.concatenate(found_p))


def connected_components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Component label (its smallest node) of each of n nodes, edges u[i]--v[i].

    Min-label hooking with pointer jumping: a few vectorized sweeps for the
    shallow graphs here (scipy would do it, but is not a dependency).
    """
    label = np.arange(n)
    while True:
        low = np.minimum(label[u], label[v])
        new = label.copy()
        np.minimum.at(new, label[u], low)
        np.minimum.at(new, label[v], low)
        while True:
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def fit_affine_map(values: np.ndarray, grid: tuple[int, ...]) -> str | None:
    """An affine map over the grid dims equal to `values` (row-major) at every task.

    Tries `c + sum_d s_d * ((d floordiv a_d) mod m_d)`, then the same form of
    the row-major linear task index.
    """
    dims = ", ".join(f"d{i}" for i in range(len(grid)))
    v = values.reshape(grid)
    for coords in (list(range(len(grid))), None):
        if coords is None:   # one dimension: the linear index
            strides = np.cumprod((grid[1:] + (1,))[::-1])[::-1]
            linear = " + ".join(f"d{i} * {s}" if s != 1 else f"d{i}" for i, s in enumerate(strides))
            axes = [(f"({linear})", values)]
        else:
            axes = []
            for d in coords:
                line = v[tuple(slice(None) if i == d else 0 for i in range(len(grid)))]
                axes.append((f"d{d}", line))
        const = int(values[0])
        exprs, ok = [str(const)] if const else [], True
        for name, line in axes:
            term = _fit_line(line - const)
            if term is None:
                ok = False
                break
            if term:
                exprs.append(term.replace("D", name))
        if not ok:
            continue
        expr = " + ".join(exprs) or "0"
        text = f"affine_map<({dims}) -> ({expr})>"
        if np.array_equal(_eval_map(text, grid), values):
            return text
    return None


def _fit_line(u: np.ndarray) -> str | None:
    """`s * ((D floordiv a) mod m)` equal to u (with u[0] == 0), '' for zero, None if no fit."""
    nonzero = np.nonzero(u)[0]
    if nonzero.size == 0:
        return ""
    a = int(nonzero[0])
    s = int(u[a])
    q = np.arange(u.size) // a
    period = np.nonzero((u[::a][1:] == 0))[0]
    m = int(period[0]) + 1 if period.size else None
    pred = s * (q % m if m else q)
    if not np.array_equal(pred, u):
        return None
    e = "D" if a == 1 else f"(D floordiv {a})"
    if m:
        e = f"({e} mod {m})"
    return e if s == 1 else f"{e} * {s}"


def ancestry(num_groups: int, by_consumer) -> tuple[list[set], list[set]]:
    """Group-level happens-before from task-level coverage, in program order.

    every[g]: groups all of whose tasks precede every task of g.
    some[g]: groups all of whose tasks precede some task of g.
    `by_consumer[g]` lists (producer group, `Deps.coverage` of the edge).
    """
    every = [set() for _ in range(num_groups)]
    some = [set() for _ in range(num_groups)]
    for c in range(num_groups):
        for p, (all_pairs, rows, cols) in by_consumer.get(c, ()):
            if all_pairs:
                every[c] |= {p} | every[p] | some[p]
            elif rows:
                every[c] |= every[p]
            if cols:
                some[c] |= {p} | some[p]
        some[c] |= every[c]
    return every, some


def event_ancestry(graph: TaskGraph) -> tuple[list[set], list[set]]:
    """`ancestry` of the groups of a task module with events (primed events left out).

    A group whose tasks trigger one rank's counter each (kinds' trigger_ranks "owner": a
    two-shot allreduce's scatter) precedes its waiters only through the one task of it
    that this rank owns: a waiter comes after what comes before every task of it, but
    not after all of its tasks (the others run for other ranks)."""
    index = {g.name: i for i, g in enumerate(graph.groups)}
    counters = lambda g, ref: np.unique(ref.indices(g.grid_indices()))
    owned = {i for i, g in enumerate(graph.groups) if kinds.get(g.kind).trigger_ranks(g.params) == "owner"}
    triggerers = defaultdict(list)
    for g in graph.groups:
        if g.trigger is not None and not graph.events[g.trigger.event].primed:
            triggerers[g.trigger.event].append((index[g.name], counters(g, g.trigger)))
    by_consumer = defaultdict(list)
    for c, g in enumerate(graph.groups):
        if g.wait is None:
            continue
        waits = counters(g, g.wait)
        for p, trig in triggerers.get(g.wait.event, []):
            rows = bool(np.isin(waits, trig).all())
            by_consumer[c].append((p, (False, rows, False) if p in owned else
                                   (trig.size == 1 and np.array_equal(waits, trig), rows,
                                    bool(np.isin(trig, waits).all()))))
    return ancestry(len(graph.groups), by_consumer)


def _eval_map(text: str, grid) -> np.ndarray:
    from mpk.dialects.taskir import compile_affine_expr
    amap = ir.AffineMapAttr(ir.Attribute.parse(text)).value
    idx = np.indices(grid).reshape(len(grid), -1).astype(np.int64)
    return compile_affine_expr(amap.results[0])(idx)


@dataclasses.dataclass
class MpkBuildEvents(ModulePass):
    name = "mpk-build-events"
    summary = "tile-granular task dependencies fused into one wait and one trigger event per task"
    report: bool = True

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if graph.events:
            self.fail(module, "the module already has events ('mpk-build-events' runs once)")
        if not graph.groups:
            self.fail(module, "no 'mpk.tasks' groups: run 'mpk-partition' first")
        self.graph, self.groups = graph, graph.groups
        self.first = np.array([g.first_task for g in graph.groups] + [graph.num_tasks], np.int64)
        edges, write_after_read, unfused = self._dependencies()
        self._reduce(edges)
        pairs = [(ci, pi, *deps.edges()) for (ci, pi), deps in edges.items()]
        consumer = np.concatenate([c_local + self.first[ci] for ci, pi, c_local, _ in pairs] or [[]])
        producer = np.concatenate([p_local + self.first[pi] for ci, pi, _, p_local in pairs] or [[]])
        wait, trigger = self._counters(consumer.astype(np.int64), producer.astype(np.int64))
        events = self._pack(wait, trigger)
        self._check_cycles(events)
        self._emit(module, events)
        self.module = module
        self._check_write_after_read(write_after_read)
        if self.report:
            counters = sum(e["size"] for e in events)
            print(f"mpk-build-events: {graph.num_tasks} tasks in {len(self.groups)} groups, "
                  f"{sum(deps.count() for deps in edges.values())} task dependencies; {unfused} events before fusion "
                  f"(one per task and input), {counters} after ({len(events)} event ops, "
                  f"{sum(e['size'] == 1 for e in events)} of one counter)", file=sys.stderr)

    # ------------------------------------------------------------ dependencies

    def _dependencies(self):
        boxes = [group_boxes(self.graph, g) for g in self.groups]
        writers = defaultdict(list)
        for gi, g in enumerate(self.groups):
            for oi, b in enumerate(g.outputs):
                writers[b].append((gi, oi))
        edges, write_after_read, unfused = {}, [], 0
        for ci, c in enumerate(self.groups):
            for ii, b in enumerate(c.inputs):
                if self.graph.buffers[b].space == "weight":
                    continue
                write_after_read += [(ci, w, b) for w, _ in writers[b] if w > ci]
                before = [(w, o) for w, o in writers[b] if w < ci]
                if not before:
                    continue
                w, o = before[-1]
                hit = overlaps(boxes[ci][2][ii], boxes[w][1][o])
                unfused += int(hit.rows().sum())
                edges[ci, w] = edges[ci, w].union(hit) if (ci, w) in edges else hit
        return edges, write_after_read, unfused

    def _reduce(self, edges) -> None:
        """Drop dependencies implied through another input (see the module doc): at
        group granularity where every task of Q waits for all of P, else task by
        task (a prefill's row tiles: down_proj's rows i wait for silu_mul's rows i,
        which wait, through the norm, for o_proj's rows i, its residual)."""
        by_consumer = defaultdict(list)
        for (ci, pi), deps in edges.items():
            by_consumer[ci].append((pi, deps.coverage()))
        every, _ = ancestry(len(self.groups), by_consumer)
        self.producers = defaultdict(list)
        for ci, pi in edges:
            self.producers[ci].append(pi)
        reach: dict[int, dict[int, Deps | None]] = {}
        for ci, preds in by_consumer.items():
            for pi, _ in preds:
                for qi, _ in preds:
                    if qi == pi:
                        continue
                    if pi in every[qi]:
                        edges[ci, pi].drop_rows(edges[ci, qi].rows())
                    elif qi > pi:
                        ancestors = self._reaching(edges, pi, qi, reach.setdefault(pi, {}))
                        if ancestors is not None:
                            edges[ci, pi].subtract(edges[ci, qi].then(ancestors))

    def _reaching(self, edges, pi: int, qi: int, known: dict[int, Deps | None]) -> Deps | None:
        """[tasks of qi, tasks of pi]: which tasks of pi each task of qi waits for,
        transitively (None: none). `known` caches the groups computed from pi."""
        if not known:
            known[pi] = Deps.identity(self.groups[pi].num_tasks)
        for g in range(max(known) + 1, qi + 1):
            row = None
            for h in self.producers[g]:
                if known.get(h) is not None:
                    step = edges[g, h].then(known[h])
                    row = step if row is None else row.union(step)
            known[g] = row if row is not None and row.any() else None
        return known.get(qi)

    def _counters(self, consumer, producer):
        """Counter of every task as waiter and as triggerer (-1: none)."""
        n = self.graph.num_tasks
        label = connected_components(2 * n, consumer + n, producer)
        wait, trigger = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        wait[consumer] = label[consumer + n]
        trigger[producer] = label[producer]
        return wait, trigger

    # --------------------------------------------------------------- packing

    def _pack(self, wait, trigger) -> list[dict]:
        """Group counters into `mpk.event` ops with affine maps (barrier where none fits)."""
        # Counters one group touches (as waiter or as triggerer) go in one event op.
        u, v = [], []
        for side in (wait, trigger):
            for gi in range(len(self.groups)):
                cs = np.unique(side[self.first[gi]:self.first[gi + 1]])
                cs = cs[cs >= 0]
                u.append(np.full(max(cs.size - 1, 0), cs[0] if cs.size else 0))
                v.append(cs[1:])
        n = self.graph.num_tasks * 2
        op_of = connected_components(n, np.concatenate(u).astype(np.int64), np.concatenate(v).astype(np.int64))
        ops = defaultdict(lambda: {"waiters": [], "triggerers": []})
        for side, key in ((wait, "waiters"), (trigger, "triggerers")):
            for gi in range(len(self.groups)):
                cs = side[self.first[gi]:self.first[gi + 1]]
                if (cs >= 0).any():
                    ops[int(op_of[cs[cs >= 0][0]])][key].append(gi)
        # Every counter comes from an edge, so every event op has waiters and triggerers.
        return [self._event(members, wait, trigger)
                for _, members in sorted(ops.items(), key=lambda kv: min(kv[1]["waiters"]))]

    def _event(self, members, wait, trigger) -> dict:
        waiters, triggerers = members["waiters"], members["triggerers"]
        local = {}
        for side, groups in ((wait, waiters), (trigger, triggerers)):
            for gi in groups:
                cs = side[self.first[gi]:self.first[gi + 1]].copy()
                cs[cs < 0] = cs[cs >= 0][0]      # tasks without an edge join the group's first counter
                local[side is wait, gi] = cs
        # Number the counters by their first waiter.
        order = np.concatenate([local[True, gi] for gi in waiters])
        _, first_seen = np.unique(order, return_index=True)
        ids = np.unique(order)[np.argsort(first_seen)]
        by_value = np.argsort(ids)

        def renumber(cs):
            pos = np.minimum(np.searchsorted(ids[by_value], cs), ids.size - 1)
            return np.where(ids[by_value][pos] == cs, by_value[pos], -1)
        counts = np.zeros(len(ids), np.int64)
        maps, fitted = {}, True
        for (is_wait, gi), cs in local.items():
            idx = renumber(cs)
            if (idx < 0).any():
                fitted = False
                break
            if not is_wait:
                np.add.at(counts, idx, 1)
            text = fit_affine_map(idx, tuple(self.groups[gi].grid))
            fitted &= text is not None
            maps[is_wait, gi] = text
        name = "ready." + self.groups[waiters[0]].name
        ranks, per_task = self._ranks(triggerers)
        if fitted and counts.min() == counts.max() and counts.min() > 0:
            return dict(name=name, size=len(ids), triggers=int(counts[0]) * per_task, maps=maps,
                        waiters=waiters, triggerers=triggerers, ranks=ranks)
        return dict(name=name, size=1, triggers=sum(self.groups[gi].num_tasks for gi in triggerers) * per_task,
                    maps={(w, gi): self._zero(gi) for (w, gi) in local}, waiters=waiters, triggerers=triggerers,
                    ranks=ranks)

    def _ranks(self, triggerers) -> tuple[int, int]:
        """The ranks of a tensor-parallel step whose tasks trigger an event (its producers
        store into other ranks' memory: kinds' `trigger_ranks`), else 1; and how many
        triggers each producer task of this rank's program stands for: every rank's copy
        of it when each bumps every rank's counter ("every"), else one (a task bumps one
        rank's: on each rank, its producers of all ranks)."""
        modes = {kinds.get(self.groups[gi].kind).trigger_ranks(self.groups[gi].params) for gi in triggerers}
        if len(modes) > 1:
            gi = next(gi for gi in triggerers if kinds.get(self.groups[gi].kind).trigger_ranks(self.groups[gi].params))
            self.fail(self.groups[gi].op, f"'{self.groups[gi].name}' stores into other ranks' memory, but its "
                                          "event is also triggered by a group of this rank alone")
        (mode,) = modes
        if mode is None:
            return 1, 1
        ranks = self.groups[triggerers[0]].params["ranks"]
        return ranks, ranks if mode == "every" else 1

    def _zero(self, gi: int) -> str:
        """The map sending every task of group gi to counter 0."""
        return "affine_map<(%s) -> (0)>" % ", ".join(f"d{i}" for i in range(len(self.groups[gi].grid)))

    # ---------------------------------------------------------------- checks

    def _check_cycles(self, events) -> None:
        """Fusion must not make a group wait for a later one."""
        preds = defaultdict(set)
        for e in events:
            for c in e["waiters"]:
                preds[c] |= set(e["triggerers"])
        for c, ps in preds.items():
            if any(p >= c for p in ps):
                p = max(ps)
                self.fail(self.groups[c].op, f"fused events make '{self.groups[c].name}' wait for "
                                             f"'{self.groups[p].name}', which does not precede it (a cycle)")

    def _check_write_after_read(self, write_after_read) -> None:
        """A write after a read of the same step (argmax -> positions) must be ordered by events."""
        full, _ = event_ancestry(TaskGraph.from_module(self.module))
        for r, w, b in write_after_read:
            if r not in full[w]:
                self.fail(self.groups[w].op, f"'{self.groups[w].name}' writes '@{b}' after "
                                             f"'{self.groups[r].name}' reads it in the same step, but the "
                                             "events do not order every read before the write")

    # ----------------------------------------------------------------- emit

    def _emit(self, module: ir.Operation, events) -> None:
        first_tasks = self.groups[0].op
        waited = {gi for e in events for gi in e["waiters"]}
        triggered = {gi for e in events for gi in e["triggerers"]}
        sources = [gi for gi in range(len(self.groups)) if gi not in waited]
        sinks = [gi for gi in range(len(self.groups)) if gi not in triggered]
        step = dict(name=STEP_EVENT, size=1, triggers=sum(self.groups[gi].num_tasks for gi in sinks),
                    maps={**{(True, gi): self._zero(gi) for gi in sources},
                          **{(False, gi): self._zero(gi) for gi in sinks}},
                    waiters=sources, triggerers=sinks, primed=True)
        with ir.InsertionPoint(first_tasks), module.location:
            for e in [step] + events:
                mpk.event(e["name"], e["size"], e["triggers"], primed=e.get("primed", False),
                          ranks=e.get("ranks", 1))
        for e in [step] + events:
            for (is_wait, gi), text in e["maps"].items():
                amap = ir.AffineMapAttr(ir.Attribute.parse(text)).value
                self.groups[gi].op.attributes["wait" if is_wait else "trigger"] = mpk.event_ref(e["name"], amap)

"""What the in-kernel profiler saw: a Perfetto / Chrome trace and a table per task kind.

The persistent kernel (profile=True) records a globaltimer start and end for
every task of every step: `Session.profile_ns()` -> uint64 [steps, tasks, 2].
With the bundle's plan (group of each task) and tables (queue of each
worker) that is enough to draw the launch as the workers saw it:

    records = session.profile_ns()
    write_trace("decode.trace.json", session.plan, session.bundle.tables, records)
    print(format_summary(summarize(session.plan, session.bundle.tables, records)))

The trace is the JSON trace-event format (ui.perfetto.dev, chrome://tracing):
one track per worker CTA (one per SM), one complete event per task run,
named `group[index]` with its kind, group, task index and step as args, and
a `steps` track with one slice per decode step. `event_hops` measures what
a dependent stage costs in the kernel: the time from an event's last trigger
to the start of a task that waited for it; `stages` splits a step into its
dependent stages (hop, tasks, tail: their periods add up to the step). Pure
numpy and json.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from pathlib import Path

import numpy as np

from mpk.runtime import tables as layout

NS_PER_US = 1e3
# A decoder layer's index in a group name (dialects.taskir.LAYER_NAME, which this
# module cannot import: the GPU machine has no MLIR).
LAYER = re.compile(r"(^|\.)layers\.\d+\.")


class TraceError(ValueError):
    """Records that do not fit the plan."""


@dataclasses.dataclass(frozen=True)
class Tasks:
    """Per global task id: its group, index in the group, and the worker whose queue holds it."""
    group: np.ndarray
    index: np.ndarray
    worker: np.ndarray
    num_workers: int

    @classmethod
    def of(cls, plan: dict, tables: dict) -> "Tasks":
        groups = plan["groups"]
        num_tasks = sum(g["num_tasks"] for g in groups)
        firsts = np.array([g["first_task"] for g in groups])
        ids = np.arange(num_tasks)
        group = np.searchsorted(firsts, ids, side="right") - 1
        offsets, queued = np.asarray(tables["queue_offsets"]), np.asarray(tables["queue_tasks"])
        worker = np.full(num_tasks, -1)
        worker[queued] = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        if (worker < 0).any():
            raise TraceError(f"task {int(np.argmax(worker < 0))} is in no worker's queue")
        return cls(group, ids - firsts[group], worker, len(offsets) - 1)


def _check(records: np.ndarray, tasks: Tasks) -> np.ndarray:
    records = np.asarray(records, np.int64)
    if records.ndim != 3 or records.shape[1:] != (len(tasks.group), 2):
        raise TraceError(f"profile records of shape {list(records.shape)}; the plan has "
                         f"{len(tasks.group)} tasks, so [steps, {len(tasks.group)}, 2] was expected")
    if (records[..., 1] < records[..., 0]).any():
        raise TraceError("a task ends before it starts: the records are not a finished launch")
    return records


def trace_events(plan: dict, tables: dict, records: np.ndarray) -> list[dict]:
    """Trace events (ts/dur in µs from the launch's first task start)."""
    tasks = Tasks.of(plan, tables)
    records = _check(records, tasks)
    groups = plan["groups"]
    origin = records[..., 0].min()
    steps_tid = tasks.num_workers            # the steps track, drawn above the workers
    events = [{"ph": "M", "name": "process_name", "pid": 0, "args": {"name": plan["kernel"]["name"]}},
              {"ph": "M", "name": "thread_name", "pid": 0, "tid": steps_tid, "args": {"name": "steps"}},
              {"ph": "M", "name": "thread_sort_index", "pid": 0, "tid": steps_tid, "args": {"sort_index": -1}}]
    events += [{"ph": "M", "name": "thread_name", "pid": 0, "tid": w, "args": {"name": f"worker {w}"}}
               for w in range(tasks.num_workers)]
    us = lambda ns: round(float(ns - origin) / NS_PER_US, 3)
    for step, runs in enumerate(records):
        events.append({"ph": "X", "name": f"step {step}", "cat": "step", "pid": 0, "tid": steps_tid,
                       "ts": us(runs[:, 0].min()), "dur": round((runs[:, 1].max() - runs[:, 0].min()) / NS_PER_US, 3),
                       "args": {"step": step}})
        for task in np.argsort(runs[:, 0], kind="stable"):
            g = groups[tasks.group[task]]
            events.append({"ph": "X", "name": f"{g['name']}[{tasks.index[task]}]", "cat": g["kind"],
                           "pid": 0, "tid": int(tasks.worker[task]), "ts": us(runs[task, 0]),
                           "dur": round((runs[task, 1] - runs[task, 0]) / NS_PER_US, 3),
                           "args": {"kind": g["kind"], "group": g["name"], "task": int(tasks.index[task]),
                                    "global_task": int(task), "step": step}})
    return events


def write_trace(path: str | Path, plan: dict, tables: dict, records: np.ndarray, **metadata) -> Path:
    """Write the trace-event JSON (gzipped if `path` ends in .gz, which Perfetto opens too);
    `metadata` (device, bundle, ...) goes into otherData."""
    path = Path(path)
    document = {"traceEvents": trace_events(plan, tables, records), "displayTimeUnit": "ns",
                "otherData": {"generator": "mpk", **{k: str(v) for k, v in metadata.items()}}}
    with (gzip.open(path, "wt", compresslevel=5) if path.suffix == ".gz" else open(path, "w")) as f:
        json.dump(document, f, separators=(",", ":"))
    return path


@dataclasses.dataclass(frozen=True)
class KindTime:
    kind: str
    count: int          # tasks per step
    total_us: float     # summed over its tasks, mean over steps
    share: float        # of the workers' time per step: total / (workers x launch time / steps)

    @property
    def mean_us(self) -> float:
        return self.total_us / self.count


@dataclasses.dataclass(frozen=True)
class Summary:
    steps: int
    launch_us: float                 # first task start to last task end
    step_us: np.ndarray              # span of every step alone (steps overlap: workers run ahead)
    num_workers: int
    kinds: list[KindTime]            # busiest first
    groups: list[tuple[str, int, float]]   # (group, tasks, µs per step), busiest first

    @property
    def busy(self) -> float:
        return sum(k.share for k in self.kinds)


def summarize(plan: dict, tables: dict, records: np.ndarray) -> Summary:
    tasks = Tasks.of(plan, tables)
    records = _check(records, tasks)
    busy = (records[..., 1] - records[..., 0]).mean(axis=0) / NS_PER_US      # µs per task, mean over steps
    step_us = (records[..., 1].max(axis=1) - records[..., 0].min(axis=1)) / NS_PER_US
    launch_us = float(records[..., 1].max() - records[..., 0].min()) / NS_PER_US
    sm_time = tasks.num_workers * max(launch_us / len(records), 1e-9)
    groups = plan["groups"]
    per_group = np.bincount(tasks.group, weights=busy, minlength=len(groups))
    kinds: dict[str, list] = {}
    for g, us in zip(groups, per_group):
        entry = kinds.setdefault(g["kind"], [0, 0.0])
        entry[0] += g["num_tasks"]
        entry[1] += float(us)
    rows = [KindTime(kind, count, total, total / sm_time) for kind, (count, total) in kinds.items()]
    ranked = sorted(zip(groups, per_group), key=lambda gu: -gu[1])
    return Summary(len(records), launch_us, step_us, tasks.num_workers, sorted(rows, key=lambda k: -k.total_us),
                   [(g["name"], g["num_tasks"], float(us)) for g, us in ranked])


def previous_end(tables: dict, records: np.ndarray) -> np.ndarray:
    """[steps, tasks] ns: the end of the task each task's worker ran just before it
    (the last of its queue in the previous step for the first; -1 for a worker's
    first task of the launch, whose CTA start is not recorded)."""
    records = np.asarray(records, np.int64)
    offsets, queued = np.asarray(tables["queue_offsets"]), np.asarray(tables["queue_tasks"])
    steps = records.shape[0]
    # A worker runs its queue once a step.
    previous = np.full(records.shape[:2], -1, np.int64)
    for w in range(len(offsets) - 1):
        queue = queued[offsets[w]:offsets[w + 1]]
        if queue.size:
            ends = records[:, queue, 1].reshape(-1)        # step-major, as the worker ran them
            previous[:, queue] = np.concatenate([[-1], ends[:-1]]).reshape(steps, queue.size)
    return previous


def event_hops(plan: dict, tables: dict, records: np.ndarray) -> np.ndarray:
    """ns from the end of the last task that triggers a task's wait counter to the
    task's start, for every (step, task) that was waiting: it has a wait counter,
    and its worker's previous task ended before that counter's last trigger did.
    The last trigger of a counter comes from the same step, or for a primed
    counter (its launch value covers the step before: the `step` event) from the
    previous one. A hop is what one dependent stage costs beyond its work: the
    release of the counter, its propagation, the waiter's poll and dispatch
    (the profiler's end is taken before the release, its start after the wait)."""
    tasks = Tasks.of(plan, tables)
    records = _check(records, tasks)
    task_table = np.asarray(tables["tasks"])
    wait = task_table[:, layout.task_field("wait_slot")]
    trigger = task_table[:, layout.task_field("trigger_slot")]
    primed = np.asarray(tables["event_initial"]) > 0
    steps = records.shape[0]
    # [steps, counters]: end of the counter's last trigger in that step (-1: none) ...
    last = np.full((steps, len(primed)), -1, np.int64)
    triggering = np.flatnonzero(trigger >= 0)
    np.maximum.at(last.T, trigger[triggering], records[:, triggering, 1].T)
    # ... which a primed counter's waiters wait for one step later.
    last[:, primed] = np.concatenate([np.full((1, int(primed.sum())), -1), last[:-1, primed]])
    waiting = np.flatnonzero(wait >= 0)
    ready = last[:, wait[waiting]]                                 # [steps, waiting tasks]
    before = previous_end(tables, records)[:, waiting]
    waited = (ready >= 0) & (before >= 0) & (before < ready)
    return (records[:, waiting, 0] - ready)[waited]


@dataclasses.dataclass(frozen=True)
class StageTime:
    """A dependent stage: the groups that wait on one event, after the groups that
    trigger it. Times in µs from the stage's `ready` (its producers' last end), the
    mean over the steps and over the decoder layers that have the stage (its name
    holds `layers.*.` for the layer index)."""
    name: str
    count: int            # instances per step (the layers that have it)
    tasks: int            # per instance
    period_us: float      # ready -> the stage's last end: what it adds to the step
    first_start_us: float     # ready -> its first task's start: the hop
    median_start_us: float    # ready -> its median task's start
    task_us: float        # median task
    slowest_us: float     # slowest task
    tail_us: float        # median end -> last end
    weight_bytes: float = 0.0     # per task: the weights it streams (0: the stage reads none)

    @property
    def task_bytes_per_us(self) -> float:
        """A median task's weight stream: bytes over its whole time (its wait for
        inputs included, so a lower bound of the rate while it streams)."""
        return self.weight_bytes / self.task_us if self.task_us > 0 else 0.0


def stages(plan: dict, records: np.ndarray) -> list[StageTime]:
    """Per dependent stage, in the plan's order, where its period goes: waiting
    for its tasks to start after the last producer ended, its median task, and
    its slowest. A stage that waits on a primed event (a step's first, after
    the previous step's last) is timed from the second step on. Where the event
    has several slots (a task waits for its own slice of the producers), a task
    may start before the stage's ready: the hop then reads short."""
    records = np.asarray(records, np.int64)
    records = records - records[..., 0].min()     # globaltimer ns are ~1.8e18: float64 would round them
    primed = {e["name"]: bool(e["primed"]) for e in plan.get("events", [])}
    weights = {b["name"]: b["nbytes"] for b in plan.get("buffers", []) if b["space"] == "weight"}

    def streamed(g):      # an embedding gathers a few rows of its table; the rest read their weights whole
        return 0 if g["kind"] == "embedding" else sum(weights.get(name, 0) for name in g.get("inputs", ()))

    def tasks(g):
        return slice(g["first_task"], g["first_task"] + g["num_tasks"])

    producers: dict[str, list] = {}
    for g in plan["groups"]:
        if g.get("trigger"):
            producers.setdefault(g["trigger"], []).append(g)
    waiters: dict[str, list] = {}
    for g in plan["groups"]:
        if g.get("wait") and g["wait"] in producers:
            waiters.setdefault(g["wait"], []).append(g)
    rows: dict[str, list] = {}
    for event, groups in waiters.items():
        ready = np.max([records[:, tasks(g), 1].max(axis=1) for g in producers[event]], axis=0)
        start = np.concatenate([records[:, tasks(g), 0] for g in groups], axis=1)
        end = np.concatenate([records[:, tasks(g), 1] for g in groups], axis=1)
        if primed.get(event, False):     # a flagged event (mpk-data-flags) is in no table: never primed
            ready, start, end = ready[:-1], start[1:], end[1:]
        if not len(ready):
            continue
        run = end - start
        per_step = np.stack([end.max(1) - ready, start.min(1) - ready, np.median(start, 1) - ready,
                             np.median(run, 1), run.max(1), end.max(1) - np.median(end, 1)]) / NS_PER_US
        names = [LAYER.sub(r"\1layers.*.", g["name"]) for g in groups]
        name = ", ".join(names[:1] + [n.rsplit(".", 1)[-1] for n in names[1:]])   # q_proj, k_proj, v_proj
        per_task = sum(streamed(g) for g in groups) / start.shape[1]
        rows.setdefault(name, []).append((start.shape[1], [*per_step.mean(axis=1), per_task]))
    return [StageTime(name, len(seen), seen[0][0], *np.mean([t for _, t in seen], axis=0).tolist())
            for name, seen in rows.items()]


def format_stages(rows: list[StageTime], width: int = 50) -> str:
    """The stages as a table, and the step they add up to ("" for none). KB/task and
    GB/s: a task's weights, and a median task's weights over its time (its wait for
    its inputs included)."""
    if not rows:
        return ""
    title = "dependent stage (µs from its producers' last end)"
    lines = [f"  {title:<{width}} {'x':>3} {'tasks':>5} "
             f"{'period':>7} {'hop':>6} {'start':>6} {'task':>6} {'slowest':>7} {'tail':>6} {'KB/task':>8} {'GB/s':>6}"]
    lines += [f"  {r.name[:width]:<{width}} {r.count:>3} {r.tasks:>5} {r.period_us:>7.2f} {r.first_start_us:>6.2f} "
              f"{r.median_start_us:>6.2f} {r.task_us:>6.2f} {r.slowest_us:>7.2f} {r.tail_us:>6.2f} "
              + (f"{r.weight_bytes / 1024:>8.1f} {r.task_bytes_per_us / 1e3:>6.1f}" if r.weight_bytes else
                 f"{'-':>8} {'-':>6}") for r in rows]
    total = sum(r.count * r.period_us for r in rows)
    lines.append(f"  the periods add up to {total:.1f} µs a step")
    return "\n".join(lines)


def format_summary(s: Summary, top_groups: int = 8) -> str:
    lines = [f"profile: {s.steps} steps in {s.launch_us:.1f} µs, {s.launch_us / s.steps:.1f} µs per step (one step "
             f"alone spans {s.step_us.min():.1f} to {s.step_us.max():.1f}); {s.num_workers} workers busy {s.busy:.0%}",
             f"  {'kind':<18} {'tasks':>6} {'µs/step':>10} {'share':>7} {'µs/task':>9}"]
    lines += [f"  {k.kind:<18} {k.count:>6} {k.total_us:>10.1f} {k.share:>7.1%} {k.mean_us:>9.2f}" for k in s.kinds]
    lines.append(f"  {'(waiting)':<18} {'':>6} {'':>10} {max(0.0, 1 - s.busy):>7.1%}")
    lines.append("  busiest groups (µs per step, summed over their tasks):")
    lines += [f"    {name[:52]:<52} {count:>5} tasks {us:>9.1f}" for name, count, us in s.groups[:top_groups]]
    return "\n".join(lines)

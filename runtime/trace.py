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
to the start of a task that waited for it. Pure numpy and json.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np

from mpk.runtime import tables as layout

NS_PER_US = 1e3


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


def format_summary(s: Summary, top_groups: int = 8) -> str:
    lines = [f"profile: {s.steps} steps in {s.launch_us:.1f} µs, {s.launch_us / s.steps:.1f} µs per step (one step "
             f"alone spans {s.step_us.min():.1f} to {s.step_us.max():.1f}); {s.num_workers} workers busy {s.busy:.0%}",
             f"  {'kind':<18} {'tasks':>6} {'µs/step':>10} {'share':>7} {'µs/task':>9}"]
    lines += [f"  {k.kind:<18} {k.count:>6} {k.total_us:>10.1f} {k.share:>7.1%} {k.mean_us:>9.2f}" for k in s.kinds]
    lines.append(f"  {'(waiting)':<18} {'':>6} {'':>10} {max(0.0, 1 - s.busy):>7.1%}")
    lines.append("  busiest groups (µs per step, summed over their tasks):")
    lines += [f"    {name[:52]:<52} {count:>5} tasks {us:>9.1f}" for name, count, us in s.groups[:top_groups]]
    return "\n".join(lines)

"""mpk-schedule: per-SM task queues from one global topological order.

List scheduling on the cost model of `tiling`: a simulated clock runs
`num_sms` workers; whenever one is free it takes, among the tasks whose
event is complete, the one with the longest remaining path to the end of the
step (upward rank). The order in which tasks start is a topological order
of the event graph, and every queue is a subsequence of it, so the
persistent kernel cannot deadlock while all workers are resident. The
predicted step time is the simulated makespan; the critical path is the
longest chain of task times through the events. Both go on the
`mpk.schedule` op (nanoseconds) and to stderr.
"""

from __future__ import annotations

import dataclasses
import heapq
import sys

import numpy as np
from mlir import ir

from mpk import dialects as mpk
from mpk.dialects.taskir import TaskGraph
from mpk.lowering import ModulePass, analyses, tiling


def task_graph_arrays(graph: TaskGraph, target: tiling.Target):
    """Per task: duration (s), waited counter and triggered counter (global ids, -1: none).

    Primed events are left out: they order steps, not tasks of one step.
    """
    base, offset = {}, 0
    for name, e in graph.events.items():
        base[name] = offset
        offset += e.size
    n = graph.num_tasks
    duration = np.zeros(n)
    wait, trigger = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    for g in graph.groups:
        tasks = slice(g.first_task, g.first_task + g.num_tasks)
        info = tiling.op_info(graph, g)
        duration[tasks] = tiling.task_cost(info, tiling.tile_boxes(info.domain, g.grid, g.tile), target)
        for ref, out in ((g.wait, wait), (g.trigger, trigger)):
            if ref is not None and not graph.events[ref.event].primed:
                out[tasks] = base[ref.event] + ref.indices(g.grid_indices())
    return duration, wait, trigger, offset


def upward_rank(graph, duration, wait, trigger, num_counters) -> np.ndarray:
    """Longest path (s) from the start of each task to the end of the step."""
    rank = np.zeros_like(duration)
    counter_rank = np.zeros(num_counters + 1)         # index -1: no counter
    for g in reversed(graph.groups):                  # waiters come after their producers
        tasks = slice(g.first_task, g.first_task + g.num_tasks)
        after = np.where(trigger[tasks] >= 0, counter_rank[trigger[tasks]], 0.0)
        rank[tasks] = duration[tasks] + after
        waits = wait[tasks]
        np.maximum.at(counter_rank, waits[waits >= 0], rank[tasks][waits >= 0])
    return rank


def list_schedule(duration, wait, trigger, rank, num_counters, num_sms):
    """(queues, makespan): greedy list scheduling by rank on num_sms workers."""
    n = duration.size
    producers = np.bincount(trigger[trigger >= 0], minlength=num_counters)
    remaining = producers.copy()
    order = np.argsort(wait, kind="stable")
    starts = np.searchsorted(wait[order], np.arange(num_counters + 1))
    ready = [(-rank[t], int(t)) for t in np.nonzero(wait < 0)[0]]
    heapq.heapify(ready)
    running, free = [], list(range(num_sms))
    queues = [[] for _ in range(num_sms)]
    now, done = 0.0, 0
    while done < n:
        while free and ready:
            _, t = heapq.heappop(ready)
            sm = heapq.heappop(free)
            queues[sm].append(t)
            heapq.heappush(running, (now + duration[t], t, sm))
        if not running:
            raise RuntimeError(f"{n - done} tasks never become ready: their events are never complete")
        now, t, sm = heapq.heappop(running)
        heapq.heappush(free, sm)
        done += 1
        c = trigger[t]
        if c >= 0:
            remaining[c] -= 1
            if remaining[c] == 0:
                for w in order[starts[c]:starts[c + 1]]:
                    heapq.heappush(ready, (-rank[w], int(w)))
    return queues, now


@dataclasses.dataclass
class MpkSchedule(ModulePass):
    name = "mpk-schedule"
    summary = "per-SM task queues (subsequences of one topological order) balanced by the cost model"
    report: bool = True

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if not graph.events:
            self.fail(module, "no events: run 'mpk-build-events' before 'mpk-schedule'")
        if graph.schedule_op is not None:
            self.fail(graph.schedule_op, "the module is already scheduled")
        num_sms, arch = graph.kernel_attr("num_sms"), graph.kernel_attr("arch")
        try:
            target = tiling.target(arch, num_sms)
        except KeyError as e:
            self.fail(graph.kernel, str(e.args[0]))
        duration, wait, trigger, counters = task_graph_arrays(graph, target)
        rank = upward_rank(graph, duration, wait, trigger, counters)
        try:
            queues, makespan = list_schedule(duration, wait, trigger, rank, counters, num_sms)
        except RuntimeError as e:
            self.fail(graph.kernel, str(e))
        critical = float(rank.max()) if rank.size else 0.0
        with ir.InsertionPoint(module.regions[0].blocks[0]), graph.kernel.location:
            mpk.schedule([q for q in queues if q] or [[]],
                         critical_path_ns=int(round(critical * 1e9)), step_ns=int(round(makespan * 1e9)))
        if self.report:
            lengths = np.array([len(q) for q in queues])
            busy = duration.sum() / (num_sms * makespan) if makespan else 0.0
            print(f"mpk-schedule: {graph.num_tasks} tasks on {num_sms} SMs, queue length "
                  f"{lengths.min()}..{lengths.max()} (mean {lengths.mean():.1f}); critical path "
                  f"{critical * 1e6:.1f} us, predicted step {makespan * 1e6:.1f} us "
                  f"({busy:.0%} of SM time busy)", file=sys.stderr)

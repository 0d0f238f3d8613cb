"""mpk-stats: a summary of a task module on stderr, and optionally its graph in DOT.

Prints tasks and groups, events (ops, counters, primed, flagged), the dependent
stages per step and per layer (`TaskGraph.dependent_stages`), queue lengths,
critical path and predicted step time (from `mpk.schedule`), the peak
workspace and the weight ring (from `mpk.kernel`, `mpk-stage-weights`), for
whatever stage the module is at. With
`dot=FILE` (`-` for stderr) it writes the group-level task graph: one node
per `mpk.tasks` group, one edge per producer/consumer pair of an event,
labelled with the event's counters x triggers (dashed: primed, dotted:
flagged by mpk-data-flags).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

import numpy as np
from mlir import ir

from mpk.dialects.taskir import TaskGraph
from mpk.lowering import ModulePass, analyses
from mpk.lowering.mpk_stage_weights import PARAM as STAGED


def to_dot(graph: TaskGraph) -> str:
    lines = ["digraph tasks {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    index = {g.name: i for i, g in enumerate(graph.groups)}
    for i, g in enumerate(graph.groups):
        lines.append(f'  g{i} [label="{g.name}\\n{g.kind} grid {list(g.grid)}"];')
    triggerers = defaultdict(list)
    for g in graph.groups:
        if g.trigger is not None:
            triggerers[g.trigger.event].append(index[g.name])
    for g in graph.groups:
        if g.wait is None:
            continue
        e = graph.events[g.wait.event]
        style = ", style=dashed" if e.primed else ", style=dotted" if e.flagged else ""
        for p in triggerers[g.wait.event]:
            lines.append(f'  g{p} -> g{index[g.name]} [label="{e.name} {e.size}x{e.triggers}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class MpkStats(ModulePass):
    name = "mpk-stats"
    summary = "print tasks, events, queue lengths, critical path and workspace size; optionally DOT"
    preserves_analyses = True
    dot: str = ""

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if graph.kernel is None:
            self.fail(module, "no 'mpk.kernel': mpk-stats reads task-level IR (run 'mpk-partition' first)")
        out = sys.stderr
        print(f"mpk-stats: {graph.num_tasks} tasks in {len(graph.groups)} groups", file=out)
        kinds = defaultdict(int)
        for g in graph.groups:
            kinds[g.kind] += g.num_tasks
        print("mpk-stats: tasks by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())), file=out)
        if graph.events:
            counters = sum(e.size for e in graph.events.values())
            barriers = sum(e.size == 1 and not e.primed for e in graph.events.values())
            print(f"mpk-stats: {len(graph.events)} events, {counters} counters, {barriers} of one counter, "
                  f"{sum(e.primed for e in graph.events.values())} primed", file=out)
            flagged = [e for e in graph.events.values() if e.flagged]
            if flagged:
                print(f"mpk-stats: {len(flagged)} of {len(graph.events)} events flagged (mpk-data-flags: "
                      f"no counter), {sum(b.flagged for b in graph.buffers.values())} flagged buffers", file=out)
            stages = graph.dependent_stages()
            per_layer = f", {stages.per_layer:.1f} per layer over {stages.layers} layers" if stages.layers else ""
            print(f"mpk-stats: {stages.per_step} dependent stages per step{per_layer}", file=out)
        if graph.schedule is not None:
            lengths = np.array([q.size for q in graph.schedule])
            attrs = graph.schedule_op.attributes
            ns = lambda key: ir.IntegerAttr(attrs[key]).value / 1e3 if key in attrs else float("nan")
            print(f"mpk-stats: {lengths.size} queues, length {lengths.min()}..{lengths.max()} "
                  f"(mean {lengths.mean():.1f}); critical path {ns('critical_path_ns'):.1f} us, "
                  f"predicted step {ns('step_ns'):.1f} us", file=out)
        workspace = graph.kernel_attr("workspace_bytes")
        if workspace is not None:
            print(f"mpk-stats: workspace {workspace} bytes", file=out)
        ring = graph.kernel_attr("ring_bytes", 0)
        if ring:
            staged = [g for g in graph.groups if g.params.get(STAGED)]
            print(f"mpk-stats: weight ring {ring} bytes, {graph.kernel_attr('ring_depth', 0)} tasks in flight at "
                  f"most; {len(staged)} groups staged ({sum(g.num_tasks for g in staged)} tasks)", file=out)
        if self.dot:
            text = to_dot(graph)
            if self.dot == "-":
                out.write(text)
            else:
                try:
                    with open(self.dot, "w") as f:
                        f.write(text)
                except OSError as e:
                    self.fail(module, f"cannot write '{self.dot}': {e.strerror}")

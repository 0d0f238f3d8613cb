"""mpk-plan-memory: every intermediate in one workspace, offsets reused by liveness.

Weights, KV caches (`state`) and `io` buffers live outside the workspace.
Two workspace buffers may share bytes only if one is dead before the other
is born *in every valid order*: every task touching the first happens
before every task writing the second, according to the event graph (not the
program order, which the persistent kernel does not follow). Happens-before
is the group-level `event_ancestry` of `mpk-build-events`. Steps cannot
overlap (the `step` event), so liveness is per step.

Buffers are placed first-fit in the order of their producers, at offsets
aligned to `alignment` bytes; the peak goes on the kernel as
`workspace_bytes` and to stderr.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

from mlir import ir

from mpk.lowering import ModulePass, analyses


@dataclasses.dataclass
class MpkPlanMemory(ModulePass):
    name = "mpk-plan-memory"
    summary = "workspace offsets for intermediates, reused where the event graph orders lifetimes"
    alignment: int = 128
    report: bool = True

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if not graph.events:
            self.fail(module, "no events: run 'mpk-build-events' before 'mpk-plan-memory'")
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            self.fail(module, f"alignment must be a power of two, got {self.alignment}")
        before, _ = analyses.event_ancestry(module)     # before[g]: groups all of whose tasks precede all of g's
        writers, touchers = defaultdict(set), defaultdict(set)
        for gi, g in enumerate(graph.groups):
            for b in g.outputs:
                writers[b].add(gi)
                touchers[b].add(gi)
            for b in g.inputs:
                touchers[b].add(gi)
        buffers = [b for b in graph.buffers.values() if b.space == "workspace"]
        buffers.sort(key=lambda b: min(writers[b.name], default=len(graph.groups)))

        def dead_before(a, b) -> bool:
            """Every access of a happens before every write of b."""
            return bool(writers[b.name]) and all(touchers[a.name] <= before[w] for w in writers[b.name])

        # A flagged buffer (mpk-data-flags) shares its bytes with nothing: the flag of its
        # words is the step, so that a word must have no other writer.
        placed, peak, total = [], 0, 0
        for b in buffers:
            size = -(-b.stored_bytes // self.alignment) * self.alignment
            total += size
            busy = sorted((o, o + s) for p, o, s in placed
                          if b.flagged or p.flagged or not (dead_before(p, b) or dead_before(b, p)))
            offset = 0
            for lo, hi in busy:
                if offset + size <= lo:
                    break
                offset = max(offset, hi)
            placed.append((b, offset, size))
            peak = max(peak, offset + size)
            b.op.attributes["offset"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), offset)
        graph.kernel.attributes["workspace_bytes"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), peak)
        if self.report:
            print(f"mpk-plan-memory: {len(buffers)} workspace buffers, {total} bytes unshared, "
                  f"peak workspace {peak} bytes", file=sys.stderr)

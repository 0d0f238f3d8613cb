"""mpk-data-flags: activations that carry their own readiness flag, for events with no counter.

A task's trigger is a release (`red.release.gpu`): on the H200 its fence is
~0.35 us of every ~1 us hop, because the signal and the data lie at different
addresses (bench/NOTES.md round 20). NCCL's LL protocol puts them at one: each
element of a flagged buffer is stored as a 32-bit word, the bf16 value in the
low half and a 16-bit flag in the high half (one single-copy-atomic store),
and a reader polls the words it loads until every flag says "this step's
value". No fence, no counter, and the poll is the data's own load.

Flags the `bf16` workspace buffers of at most `max-rows` rows that one group
writes, a decode `linear` or `gate_up` (its only output) or an `attention_split`
with the rope fused in (its merged output), and that only such groups read: a
linear as x that it stages in shared memory, the residual or silu's `up`, the
attention as q, k or v (its rope's loads). It marks `flagged` the events whose
every triggering group writes only flagged buffers (an attention also its
partials, caches and arrival counts, which no other group reads and its
acquire-release arrival publishes) and whose every waiting group reads no other
activation (but an attention's own caches, and its position, which it loads at
GPU scope after its polls): those waiters need no counter (their reads wait)
and those triggerers no release (nothing else they wrote is read through the
event). Per dense-decoder layer that is every hop: down -> q/k/v -> attention
-> o_proj -> gate_up -> down. The events stay in the task graph, so
mpk-verify, the CPU interpreter and mpk-plan-memory see the same
dependencies; mpk-materialize gives a flagged event no counter slot and marks
every task that reads a flagged buffer `polls` (the runtime then looks at
its stuck word).

A batch-1 linear or gate_up that polls a flagged x starts before x is there;
the pass sets its param `early_weights`, so that each warp's first weight
loads go out before the poll (kernels/linear.py; pass option `early-weights`),
except after the attention (bench/NOTES.md round 24).

A flagged buffer gets the unit attribute `flagged`; its flag in step s of a
launch is s + 1 (mpk-lower-tasks passes it to the task functions), which is
unique among a word's writes in a launch because mpk-plan-memory gives a
flagged buffer bytes of its own, and the loader zeroes them before each
launch, so that no flag of the last launch passes for one of this launch.

On by default up to batch 8 (the driver's `data_flags`, `--data-flags 0`:
off): on the H200 it made batch 1 of Qwen3-0.6B, Llama-3.2-1B, Qwen3-1.7B and
Qwen3-8B 9.9/6.2/8.5/3.5% faster than round 20's code, the linears' hops alone
1.9-3.3% (NOTES rounds 21-22), and batch 8 4.9/2.3/0.6/0.4% faster than its
counters (round 23), where a linear's x of more than `max-x-bytes` (the 8B's
128 KB of flagged words at batch 8, which made it 1.5% slower) stays a counter's.
A poll that sees a stale flag 2^24 times gives up: the runtime reports the task
(like a counter's wait that times out) and the launch ends.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict

from mlir import ir

from mpk import defaults
from mpk.dialects.taskir import set_param
from mpk.lowering import ModulePass, analyses, kinds
from mpk.lowering.kinds.linear import gemm_tile_rows, linear_roles

KINDS = ("linear", "gate_up")
READ_ROLES = ("x", "residual", "up", "qkv")   # what a flagged buffer may be to its readers
FLAG_LIMIT = 1 << 16                     # 16-bit flags, 0 meaning "not written"
STAGING_SCRATCH = 32 * 1024              # beside x, a linear's scratch (its K slices' sums, the norm's)


def fused_attention(g) -> bool:
    """An attention_split with the rope and the KV append fused in: it polls q, k and v
    in the rope's loads and stores its merged output as flagged words."""
    return g.kind == "attention_split" and kinds.get(g.kind).typed(g.params).inv_freq is not None


def input_roles(g) -> list[str] | None:
    """What each input of a group that can poll flagged words is; None for other groups.
    Besides READ_ROLES: `own`, a buffer only the group itself writes (a KV cache: its
    rows of past steps), and `position`, which the attention loads after its polls at
    GPU scope (never its L1's copy of the last step's)."""
    if fused_attention(g):
        return ["qkv"] * 3 + ["own", "own", "position"] + ["norm"] * (len(g.inputs) - 6)
    if g.kind not in KINDS or not g.outputs or gemm_tile_rows(g.tile[0]) is not None:
        return None
    if g.kind == "gate_up":
        return ["x", "w", "w"] + ["norm"] * (len(g.inputs) - 3)
    p = kinds.get("linear").typed(g.params)
    if p.ranks is not None or p.row_counts:
        return None
    return linear_roles(p, len(g.inputs))


def flaggable_output(g) -> str | None:
    """The output a group can store as flagged words: a decode linear's or gate_up's only
    one, a fused attention's merged output (its partials, caches and arrival counts are
    its own, released by its arrival: kernels/attention.py)."""
    if fused_attention(g):
        return g.outputs[-2]
    return g.outputs[0] if input_roles(g) is not None and len(g.outputs) == 1 else None


@dataclasses.dataclass
class MpkDataFlags(ModulePass):
    name = "mpk-data-flags"
    summary = "flag the activations between linears and attention and drop their events' counters"
    max_rows: int = defaults.DATA_FLAG_ROWS      # flag buffers of at most this many rows
    smem_bytes: int = defaults.TASK_SMEM_BYTES   # mpk-lower-tasks': a reader stages x in it, beside its scratch
    # A linear polls an x of at most this many bytes of flagged words (4 an element):
    # at batch 8 the 0.6B's 96 KB paid, the 8B's 128 KB did not (NOTES round 23).
    max_x_bytes: int = 96 * 1024
    # A batch-1 reader of a flagged x starts before x is there: its first weights load
    # across the poll (`early_weights`), unless x is the attention's merged output.
    early_weights: bool = True
    report: bool = True

    def run(self, module: ir.Operation) -> None:
        for option, value in (("max-rows", self.max_rows), ("max-x-bytes", self.max_x_bytes)):
            if value < 0:
                self.fail(module, f"{option} must be 0 or more, not {value}")
        graph = analyses.task_graph(module)
        if not graph.events:
            self.fail(module, "no events: run 'mpk-build-events' before 'mpk-data-flags'")
        roles = {g.name: input_roles(g) for g in graph.groups}
        writers, readers, read_as = defaultdict(list), defaultdict(set), defaultdict(list)
        for g in graph.groups:
            for b in g.outputs:
                writers[b].append(g)
            for i, b in enumerate(g.inputs):
                readers[b].add(g.name)
                role = roles[g.name][i] if roles[g.name] else None
                nbytes = graph.buffers[b].nbytes
                if role == "x" and (nbytes + STAGING_SCRATCH > self.smem_bytes or 2 * nbytes > self.max_x_bytes):
                    role = None    # read from global memory in the task's loop (a poll per load), or too large
                read_as[b].append(role)

        def flaggable(b) -> bool:
            w = writers[b.name]
            return (b.space == "workspace" and b.dtype == "bf16" and len(b.shape) == 2
                    and b.shape[0] <= self.max_rows and len(w) == 1 and flaggable_output(w[0]) == b.name
                    and bool(read_as[b.name]) and all(r in READ_ROLES for r in read_as[b.name]))
        flagged = [b for b in graph.buffers.values() if flaggable(b)]
        if int(graph.kernel_attr("steps", 1)) >= FLAG_LIMIT:
            self.fail(graph.kernel, f"a launch of {FLAG_LIMIT} steps or more would repeat a 16-bit flag")
        for b in flagged:
            b.op.attributes["flagged"] = ir.UnitAttr.get()

        names = {b.name for b in flagged}
        early = self._early_weights(graph, roles, names) if self.early_weights else []

        def signals_only_flags(g) -> bool:
            """Whether g writes nothing that its event's waiters or later tasks read through
            its release: only flagged buffers, and a fused attention's own buffers."""
            return all(b in names or (fused_attention(g) and readers[b] <= {g.name}) for b in g.outputs)

        def reads_only_flags(g) -> bool:
            """Whether every activation g reads is polled, its own, or loaded after its polls."""
            for i, b in enumerate(g.inputs):
                role = roles[g.name][i] if roles[g.name] else None
                own = role == "own" and {w.name for w in writers[b]} == {g.name}
                if graph.buffers[b].space != "weight" and not (b in names or own or role == "position"):
                    return False
            return any(b in names for b in g.inputs)
        triggered, waiting = defaultdict(list), defaultdict(list)
        for g in graph.groups:
            if g.trigger:
                triggered[g.trigger.event].append(g)
            if g.wait:
                waiting[g.wait.event].append(g)
        events = [e for e in graph.events.values() if not e.primed and e.ranks == 1
                  and triggered[e.name] and waiting[e.name]
                  and all(signals_only_flags(g) for g in triggered[e.name])
                  and all(reads_only_flags(g) for g in waiting[e.name])]
        for e in events:
            e.op.attributes["flagged"] = ir.UnitAttr.get()
        if self.report:
            print(f"mpk-data-flags: {len(flagged)} flagged buffers, {len(events)} of {len(graph.events)} "
                  f"events without a counter, {len(early)} groups load weights early", file=sys.stderr)

    @staticmethod
    def _early_weights(graph, roles, names) -> list:
        """Mark `early_weights` the batch-1 linears and gate_ups that poll a flagged x: each
        warp's first weight loads go out before the poll (kernels/linear.py), while the
        producers still run. Not after the attention: there the weights of ~120 SMs met
        the merging splits' round trips, and the attention stage grew by more than o_proj
        gained (0.5-1.0 us on the H200, bench/NOTES.md round 24)."""
        merged = {g.outputs[-2] for g in graph.groups if fused_attention(g)}
        early = []
        for g in graph.groups:
            role = roles[g.name]
            x = g.inputs[role.index("x")] if g.kind in KINDS and role and "x" in role else None
            if x in names and x not in merged and graph.buffers[x].shape[0] == 1:
                set_param(g.op, "early_weights", ir.BoolAttr.get(True))
                early.append(g)
        return early

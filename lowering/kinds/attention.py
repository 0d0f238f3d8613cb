"""attention: one query row per sequence (decode) over its cache rows 0..pos[b].

Inputs q [B, Hq*D], the two caches [B, S, Hkv*D], positions [B]; a task
takes one sequence and one KV head with its Hq/Hkv query heads. At decode
batch mpk-partition splits the cache rows over SMs (attention_split, or
attention_partial + attention_combine).
"""

from __future__ import annotations

import dataclasses

from mpk.dialects import verify as v
from mpk.interp import ops

from . import Params, TaskKind, cols, copy, volume

MIN_SPLIT_ROWS = 128


def group_width(op) -> int:
    """Output columns of one KV head group: its query heads' D each."""
    head_dim = op.params["head_dim"]
    q_heads, kv_heads = op.inputs[0][1] // head_dim, op.inputs[1][-1] // head_dim
    return q_heads // kv_heads * head_dim


def check_cache_rows(task, positions) -> None:
    """Error unless this step's kv_append wrote row positions[r] of every row r of the
    task's sequences, in the task's columns of both caches (inputs 1 and 2)."""
    from mpk.interp.tasks import UNWRITTEN
    for c in (1, 2):
        region, name = task.reads[c], task.group.inputs[c]
        versions = task.versions(name)
        per_seq = ops.rows_per_sequence(len(positions), versions)
        for r in range(task.rows.start, task.rows.stop):
            p, b = int(positions[r]), r // per_seq
            seen = versions[(b, slice(0, p + 1)) + region[2:]]
            if (seen == UNWRITTEN).any() or (seen[p] != task.step).any():
                raise task.error(f"reads '@{name}' row {p} of sequence {b} before this step's kv_append "
                                 "wrote it, and no event orders them")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionParams(Params):
    head_dim: int
    scale: float
    mma: int | None = None            # 1: on the tensor cores, 0: the CUDA cores (kernels/attention.py)
    mma_rows: int | None = None       # cache rows per warp and block on the tensor cores: 8 or 16
    unroll: int | None = None         # cache rows in flight per lane on the CUDA cores (tuning)
    row_counts: bool = False          # attention_prefill: a chunk's rows per sequence, the last input


class Attention(TaskKind):
    name = "attention"
    params = AttentionParams
    reference = staticmethod(ops.attention)
    operands = 4
    position_operand = 3

    def tile_unit(self, op):
        return (1, group_width(op))

    def fixed_tile(self, op):
        return (1, group_width(op))   # one batch row, one KV head group

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        ratio = group_width(op) // op.params["head_dim"]
        rows = (lo[:, 0], hi[:, 0])
        cache = cols(lo[:, 1] // ratio, -(-hi[:, 1] // ratio), rows, op.inputs[1])
        positions = (lo[:, :1].copy(), hi[:, :1].copy())
        return [copy(out), cache, copy(cache), positions]

    def flops(self, op, out):
        return 4 * volume(out) * op.inputs[1][1]

    def kv_caches(self, params):
        return (1, 2)

    def splits(self, op, target, min_rows: int | None = None) -> int:
        """KV splits of the op (split-KV decoding, `attention_split`).

        One task per (sequence, KV head) leaves most SMs idle at small batch
        while it streams the whole cache (8 tasks for Qwen3 at batch 1), and
        attention sits on the critical path of every layer. So the cache rows
        are split until the tasks fill about one wave of SMs, keeping at least
        `min_rows` (default MIN_SPLIT_ROWS) cache rows per split of a full cache.
        """
        batch, seq = op.inputs[1][0], op.inputs[1][1]
        groups = batch * (op.inputs[1][2] // op.params["head_dim"])
        return max(1, min(target.num_sms // groups, seq // (min_rows or MIN_SPLIT_ROWS)))

    def graph_check(self, c, op, types, p):
        q, kc, vc, pos, result = types
        v.heads(c, op, q, kc, vc, pos, p)
        v.positive(c, op, p, "scale")
        if q.rank == 2:                  # else the error about q says it
            v.same_type(c, op, "result and q", result, q)

    def check(self, c, op, ins, outs, p):
        counts = p.row_counts and self.name == "attention_prefill"
        if not v.arity(c, op, self.name, ins, outs, 4 + counts, 1, " (q, k_cache, v_cache, positions)"):
            return
        errors = c.errors
        self.graph_check(c, op, ins[:4] + outs, p)
        if c.errors != errors:
            return
        q, kc = ins[0], ins[1]
        if self.name == "attention":
            c.check(q.shape[0] == kc.shape[0], op, f"q rows ({q.shape[0]}) must be one per sequence of the "
                                                   f"cache ({kc.shape[0]}): several rows per sequence are "
                                                   "'attention_prefill'")
        elif counts:
            v.row_counts(c, op, ins[4], q.shape[0])

    def run_task(self, task):
        positions = task.read(3)
        check_cache_rows(task, positions)
        q, kc, vc = task.tiles(3)
        p = task.params
        task.write_output(ops.attention(q, kc, vc, positions[task.rows], p["head_dim"], p["scale"]))

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import attention
        attention.attention(e, g, task, views)

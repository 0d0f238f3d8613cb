"""mpk-fuse-norm: a layer norm that only linears read is computed inside each of them.

A norm whose every user reads it as x (linears, gate_ups) gets `mpk.in_users`:
mpk-partition then makes no group of it, and each of its users' tasks
normalizes x per row while it stages x in shared memory (kernels/linear.py:
the group takes the norm's weight as one more input and `norm_eps`): one
task group and one event hop less. Only at decode rows (a GEMM tile streams x
through the matrix units instead) and while B x K of x is at most
FUSED_X_MAX_BYTES; a norm per head (QK-norm), or one with an `mpk.tile`,
stays. The graph's meaning does not change: the attribute says where the
norm is computed, so the graph interpreter and the verifier need nothing new.
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk.dialects.taskir import element_bytes
from mpk.lowering import IN_USERS_ATTR, TILE_ATTR, GraphRewrite
from mpk.lowering.kinds.linear import gemm_tile_rows

# A layer norm or silu_mul feeding only linears is computed by each linear
# task on the x it stages in shared memory (`norm_eps`, `silu_gate`), when
# B x K of x is at most this many bytes. A fused silu_mul stages two inputs
# (gate and up) instead of one on every down_proj task: on an H100 it saved
# 5% of the Qwen3-0.6B step at batch 1 (x: 6 KiB) but cost 0.7-1.8% from
# 16 KiB up (Llama 3.2 1B and Qwen3-8B at batch 1, Qwen3-0.6B at batch 8),
# where the longer staging outweighs the hop (bench/NOTES.md).
FUSED_X_MAX_BYTES = {"mpk.rmsnorm": 64 * 1024, "mpk.silu_mul": 8 * 1024}
# The ops whose x (operand 0) a fused norm or silu_mul may be, per fused op.
READERS = {"mpk.rmsnorm": ("mpk.linear", "mpk.gate_up"), "mpk.silu_mul": ("mpk.linear",)}


def stage_in_users(op: ir.Operation) -> bool | None:
    """Mark `op` to be computed by its users; True (no match) unless each of them reads
    it as x (READERS), at decode rows, small enough, and it is not marked yet."""
    t = ir.RankedTensorType(op.operands[0].type)
    batch, width = t.shape
    users = list(op.results[0].uses)
    if (IN_USERS_ATTR in op.attributes or TILE_ATTR in op.attributes or gemm_tile_rows(batch) is not None
            or not users or batch * width * element_bytes(str(t.element_type)) > FUSED_X_MAX_BYTES[op.name]
            or not all(u.owner.name in READERS[op.name] and u.operand_number == 0 for u in users)):
        return True
    op.attributes[IN_USERS_ATTR] = ir.UnitAttr.get()
    return None


@dataclasses.dataclass
class MpkFuseNorm(GraphRewrite):
    name = "mpk-fuse-norm"
    summary = "compute a layer norm that only linears read inside those linears (mpk.in_users)"

    def patterns(self):
        return [("mpk.rmsnorm", self.fuse)]

    def fuse(self, norm, rewriter):
        norm = norm.operation
        x, weight = norm.operands
        if ir.RankedTensorType(weight.type).shape[0] != ir.RankedTensorType(x.type).shape[1]:
            return True                                    # a norm per head
        return stage_in_users(norm)

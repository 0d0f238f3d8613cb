"""mpk-fuse-silu: a silu_mul that only linears read is computed inside each of them.

A silu_mul whose every user is a linear reading it as x gets `mpk.in_users`:
mpk-partition makes no group of it, and each of its linears' tasks stages
silu(gate) * up as its x (the group reads the gate as x, `up` as its last
input, and has `silu_gate`): a down_proj computes its MLP's activation, one
task group and one event hop less per layer. The conditions of mpk-fuse-norm
apply (decode rows, FUSED_X_MAX_BYTES). Run after mpk-fuse-gate-up, which
takes the silu_mul into a gate_up instead.
"""

from __future__ import annotations

import dataclasses

from mpk.lowering import GraphRewrite
from mpk.lowering.mpk_fuse_norm import stage_in_users


@dataclasses.dataclass
class MpkFuseSilu(GraphRewrite):
    name = "mpk-fuse-silu"
    summary = "compute a silu_mul that only linears read inside those linears (mpk.in_users)"

    def patterns(self):
        return [("mpk.silu_mul", lambda silu, rewriter: stage_in_users(silu.operation))]

"""silu_mul: `silu(gate) * up`, elementwise (an MLP's activation)."""

from __future__ import annotations

from mpk.interp import ops

from . import TaskKind


class SiluMul(TaskKind):
    name = "silu_mul"
    reference = staticmethod(ops.silu_mul)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import silu_mul
        silu_mul.silu_mul(e, g, task, views)

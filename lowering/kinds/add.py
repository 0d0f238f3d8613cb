"""add: `a + b`, elementwise (a residual add that no linear took in)."""

from __future__ import annotations

from mpk.interp import ops

from . import TaskKind, volume


class Add(TaskKind):
    name = "add"
    reference = staticmethod(ops.add)

    def flops(self, op, out):
        return volume(out)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import add
        add.add(e, g, task, views)

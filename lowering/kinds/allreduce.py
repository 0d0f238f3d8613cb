"""allreduce: the sum of a tensor over the ranks of a tensor-parallel group (one rank: itself)."""

from __future__ import annotations

from mpk.interp import ops

from . import TaskKind


class AllReduce(TaskKind):
    name = "allreduce"
    reference = staticmethod(ops.allreduce)
    operands = 1

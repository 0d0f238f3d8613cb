"""Analyses of a module: computed once, kept until a pass changes the module.

Inside `session()` (a pipeline run: mpk.pipeline.run, the driver's stages)
`get(module, analysis)` computes `analysis(module)` the first time and
returns the same object after, until `invalidate(module)`. `ModulePass`
invalidates after every pass that does not declare `preserves_analyses`.
Outside a session nothing is kept: the module may die and its address be
reused. A pass reads an analysis at its start (where it is valid) and must
not modify the object it gets.
"""

from __future__ import annotations

import contextlib
from typing import Callable, TypeVar

from mlir import ir

T = TypeVar("T")
_cache: dict[ir.Operation, dict[Callable, object]] | None = None


@contextlib.contextmanager
def session():
    """Keep analyses while the block runs (nested sessions share the outer one)."""
    global _cache
    if _cache is not None:
        yield
        return
    _cache = {}
    try:
        yield
    finally:
        _cache = None


def get(module: ir.Operation, analysis: Callable[[ir.Operation], T]) -> T:
    if _cache is None:
        return analysis(module)
    kept = _cache.setdefault(module, {})
    if analysis not in kept:
        kept[analysis] = analysis(module)
    return kept[analysis]


def invalidate(module: ir.Operation) -> None:
    if _cache is not None:
        _cache.pop(module, None)


def task_graph(module: ir.Operation):
    """The `dialects.taskir.TaskGraph` view of a task module."""
    from mpk.dialects.taskir import TaskGraph
    return get(module, TaskGraph.from_module)


def event_ancestry(module: ir.Operation) -> tuple[list[set], list[set]]:
    """`mpk_build_events.event_ancestry` of the module's task graph."""
    return get(module, _event_ancestry)


def _event_ancestry(module: ir.Operation):
    from mpk.lowering.mpk_build_events import event_ancestry
    return event_ancestry(task_graph(module))

"""A read-only Python view of task-level mpk IR.

Passes, the verifier, the task interpreter and the table writer all need the
same facts about a task module (buffers, events, task groups, their event
maps evaluated for every task); this module reads them once. Maps are
evaluated with numpy over all tasks of a group at once, so a 10^5-task model
stays fast.
"""

from __future__ import annotations

import dataclasses
import graphlib
import re
from collections import defaultdict
from typing import Callable

import numpy as np
from mlir import ir

# `peer`: memory every rank of a tensor-parallel step has at the same place, which the other
# ranks write (an allgather's slots): outside the workspace, never shared with another buffer.
SPACES = ("workspace", "weight", "state", "io", "counters", "peer")
# A decoder layer's groups carry its index: `model.layers.3.mlp.down_proj`, `layers.3.attention`.
LAYER_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def compile_affine_expr(expr: ir.AffineExpr) -> Callable[[np.ndarray], np.ndarray]:
    """An affine expression as a numpy function of dims `d` (shape [rank, n])."""
    if isinstance(expr, ir.AffineDimExpr):
        pos = expr.position
        return lambda d: d[pos]
    if isinstance(expr, ir.AffineConstantExpr):
        value = expr.value
        return lambda d: np.full(d.shape[1], value, dtype=np.int64)
    binary = {
        ir.AffineAddExpr: np.add, ir.AffineMulExpr: np.multiply, ir.AffineModExpr: np.mod,
        ir.AffineFloorDivExpr: np.floor_divide,
        ir.AffineCeilDivExpr: lambda a, b: -np.floor_divide(-a, b),
    }
    for cls, fn in binary.items():
        if isinstance(expr, cls):
            lhs, rhs = compile_affine_expr(expr.lhs), compile_affine_expr(expr.rhs)
            return lambda d: fn(lhs(d), rhs(d))
    raise ValueError(f"unsupported affine expression {expr}")


@dataclasses.dataclass
class EventRef:
    """The `[@event, map]` of a task group's `wait` or `trigger`."""
    event: str
    map: ir.AffineMap

    def indices(self, grid_indices: np.ndarray) -> np.ndarray:
        """Event index of every task; grid_indices has shape [rank, n]."""
        return compile_affine_expr(self.map.results[0])(grid_indices).astype(np.int64)


@dataclasses.dataclass
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str                      # MLIR element type spelling: bf16, f32, i32...
    space: str
    offset: int | None              # bytes into the workspace, once planned
    weight_name: str | None         # `name` of weight/state buffers
    per_step: bool
    op: ir.Operation
    shard: list[int] | None = None  # `mpk.shard` (mpk-shard): dim, size, each rank's start
    flagged: bool = False           # mpk-data-flags: each element a 32-bit word with a flag

    @property
    def stored_bytes(self) -> int:
        """Bytes in memory: a flagged buffer stores each element in a 32-bit word."""
        return self.numel * 4 if self.flagged else self.nbytes

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * element_bytes(self.dtype)


@dataclasses.dataclass
class Event:
    name: str
    size: int
    triggers: int
    primed: bool
    op: ir.Operation
    ranks: int = 1                  # >1: every rank of a tensor-parallel step triggers it (allgather)
    flagged: bool = False           # mpk-data-flags: its waiters poll the data's flags, no counter


@dataclasses.dataclass
class TaskGroup:
    name: str
    kind: str
    grid: tuple[int, ...]
    tile: tuple[int, ...]
    domain: tuple[int, ...] | None  # explicit `domain`, else the first output's shape
    inputs: list[str]
    outputs: list[str]
    wait: EventRef | None
    trigger: EventRef | None
    params: dict
    first_task: int                 # global id of task 0 (module order)
    op: ir.Operation

    @property
    def num_tasks(self) -> int:
        return int(np.prod(self.grid, dtype=np.int64))

    def grid_indices(self) -> np.ndarray:
        """[rank, num_tasks] grid coordinates in row-major task order."""
        return np.indices(self.grid).reshape(len(self.grid), -1).astype(np.int64)

    def tile_bounds(self, task: int, domain: tuple[int, ...]) -> list[tuple[int, int]]:
        """Half-open [lo, hi) per dimension of task `task`'s output tile."""
        coords = np.unravel_index(task, self.grid)
        return [(int(c) * t, min((int(c) + 1) * t, d)) for c, t, d in zip(coords, self.tile, domain)]


@dataclasses.dataclass(frozen=True)
class DependentStages:
    """The longest chain of task groups in which each waits, through a non-primed
    event, on the one before: stages that run one after another however many SMs
    there are, each paying an event hop. Primed events (`step`) order a step
    after the previous one and are left out; in a launch of many steps that hop
    joins the chain's last group to the next step's first, so a step pays
    `per_step` hops in all."""
    per_step: int        # groups on the chain
    in_layers: int       # of them, groups of a decoder layer (LAYER_NAME)
    layers: int          # decoder layers named in the module; 0: none

    @property
    def per_layer(self) -> float | None:
        return self.in_layers / self.layers if self.layers else None

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "per_layer": self.per_layer}


@dataclasses.dataclass
class TaskGraph:
    kernel: ir.Operation | None
    buffers: dict[str, Buffer]
    events: dict[str, Event]
    groups: list[TaskGroup]
    schedule: list[np.ndarray] | None
    schedule_op: ir.Operation | None

    @property
    def num_tasks(self) -> int:
        return sum(g.num_tasks for g in self.groups)

    def domain(self, group: TaskGroup) -> tuple[int, ...]:
        if group.domain is not None:
            return group.domain
        return self.buffers[group.outputs[0]].shape

    def dependent_stages(self) -> DependentStages:
        """The longest chain of groups linked by non-primed events (mpk-stats prints
        it, the bundle's plan records it for bench/decode.py's limit)."""
        triggerers = defaultdict(list)
        for g in self.groups:
            if g.trigger is not None and not self.events[g.trigger.event].primed:
                triggerers[g.trigger.event].append(g.name)
        producers = {g.name: triggerers[g.wait.event] if g.wait is not None else [] for g in self.groups}
        in_layer = {g.name: LAYER_NAME.search(g.name) is not None for g in self.groups}
        # Per group, the longest chain ending at it: (groups, groups in layers); ties go to more in layers.
        chain: dict[str, tuple[int, int]] = {}
        for name in graphlib.TopologicalSorter(producers).static_order():
            groups, in_layers = max((chain[p] for p in producers[name]), default=(0, 0))
            chain[name] = (groups + 1, in_layers + in_layer[name])
        per_step, in_layers = max(chain.values(), default=(0, 0))
        layers = {m.group(1) for g in self.groups if (m := LAYER_NAME.search(g.name))}
        return DependentStages(per_step, in_layers, len(layers))

    def kernel_attr(self, name: str, default=None):
        if self.kernel is None or name not in self.kernel.attributes:
            return default
        return python_value(self.kernel.attributes[name])

    @classmethod
    def from_module(cls, module: ir.Module | ir.Operation) -> "TaskGraph":
        body = module.body if isinstance(module, ir.Module) else module.regions[0].blocks[0]
        graph = cls(None, {}, {}, [], None, None)
        next_task = 0
        for op in body.operations:
            op = op.operation
            name = op.name
            if name == "mpk.kernel":
                graph.kernel = op
            elif name == "mpk.buffer":
                b = _buffer(op)
                graph.buffers[b.name] = b
            elif name == "mpk.event":
                a = op.attributes
                graph.events[_str(a["sym_name"])] = Event(
                    _str(a["sym_name"]), _int(a["size"]), _int(a["triggers"]), "primed" in a, op,
                    _int(a["ranks"]) if "ranks" in a else 1, "flagged" in a)
            elif name == "mpk.tasks":
                g = _group(op, next_task)
                next_task += g.num_tasks
                graph.groups.append(g)
            elif name == "mpk.schedule":
                graph.schedule_op = op
                graph.schedule = [np.asarray(ir.DenseI32ArrayAttr(q), dtype=np.int64)
                                  for q in ir.ArrayAttr(op.attributes["queues"])]
        return graph


ELEMENT_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "f64": 8, "i32": 4, "i64": 8, "i8": 1, "i1": 1}


def element_bytes(dtype: str) -> int:
    return ELEMENT_BYTES[dtype]


def _str(a: ir.Attribute) -> str:
    return ir.StringAttr(a).value


def _int(a: ir.Attribute) -> int:
    return ir.IntegerAttr(a).value


def _refs(a: ir.Attribute) -> list[str]:
    return [ir.FlatSymbolRefAttr(x).value for x in ir.ArrayAttr(a)]


def python_value(a: ir.Attribute):
    """Attribute -> plain Python value (for params and kernel attributes)."""
    for cls, conv in ((ir.BoolAttr, lambda x: x.value), (ir.IntegerAttr, lambda x: x.value),
                      (ir.FloatAttr, lambda x: x.value), (ir.StringAttr, lambda x: x.value),
                      (ir.DenseF32ArrayAttr, list), (ir.DenseI64ArrayAttr, list),
                      (ir.DenseI32ArrayAttr, list), (ir.FlatSymbolRefAttr, lambda x: x.value),
                      (ir.UnitAttr, lambda x: True), (ir.TypeAttr, lambda x: x.value),
                      (ir.ArrayAttr, lambda x: [python_value(e) for e in x]),
                      (ir.DictAttr, lambda x: {n.name: python_value(n.attr) for n in x})):
        if isinstance(a, cls):
            return conv(cls(a))
    return a


def set_param(op: ir.Operation, name: str, value: ir.Attribute) -> None:
    """Set one entry of an `mpk.tasks` op's `params` (a pass's decision, visible in the IR)."""
    params = {n.name: n.attr for n in ir.DictAttr(op.attributes["params"])} if "params" in op.attributes else {}
    params[name] = value
    op.attributes["params"] = ir.DictAttr.get(params)


def event_ref(a: ir.Attribute) -> EventRef:
    """Parse `[@event, affine_map]`; raises ValueError when malformed."""
    if not isinstance(a, ir.ArrayAttr):
        raise ValueError("expected [@event, affine_map<...>]")
    items = list(ir.ArrayAttr(a))
    if (len(items) != 2 or not isinstance(items[0], ir.FlatSymbolRefAttr)
            or not isinstance(items[1], ir.AffineMapAttr)):
        raise ValueError("expected [@event, affine_map<...>]")
    return EventRef(ir.FlatSymbolRefAttr(items[0]).value, ir.AffineMapAttr(items[1]).value)


def _buffer(op: ir.Operation) -> Buffer:
    a = op.attributes
    t = ir.TypeAttr(a["type"]).value
    shaped = ir.RankedTensorType(t) if isinstance(t, ir.RankedTensorType) else None
    return Buffer(
        name=_str(a["sym_name"]),
        shape=tuple(shaped.shape) if shaped else (),
        dtype=str(shaped.element_type) if shaped else str(t),
        space=_str(a["space"]),
        offset=_int(a["offset"]) if "offset" in a else None,
        weight_name=_str(a["name"]) if "name" in a else None,
        per_step="per_step" in a,
        op=op,
        shard=list(ir.DenseI64ArrayAttr(a["mpk.shard"])) if "mpk.shard" in a else None,
        flagged="flagged" in a)


def _group(op: ir.Operation, first_task: int) -> TaskGroup:
    a = op.attributes
    params = python_value(a["params"]) if "params" in a and isinstance(a["params"], ir.DictAttr) else {}
    return TaskGroup(
        name=_str(a["sym_name"]), kind=_str(a["kind"]),
        grid=tuple(ir.DenseI64ArrayAttr(a["grid"])), tile=tuple(ir.DenseI64ArrayAttr(a["tile"])),
        domain=tuple(ir.DenseI64ArrayAttr(a["domain"])) if "domain" in a else None,
        inputs=_refs(a["inputs"]), outputs=_refs(a["outputs"]),
        wait=event_ref(a["wait"]) if "wait" in a else None,
        trigger=event_ref(a["trigger"]) if "trigger" in a else None,
        params=params, first_task=first_task, op=op)

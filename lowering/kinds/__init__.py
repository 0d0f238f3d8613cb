"""Task kinds: one file per kind, each one `TaskKind` subclass that is the kind.

A kind's class says everything the compiler, the interpreters and the
lowering need to know about it (README.md, "Adding a task kind"):

- `name`, and the graph op it comes from when that op has the same name
  (`graph_check`, `graph_op_irdl` for a graph op the dialect does not define);
- its tiles, the boxes a task reads and writes, and its cost (`tile_unit`,
  `fixed_tile`, `reads`, `output_writes`, `traffic`, `flops`, ...): half-open
  `[lo, hi)` per dimension, int64 arrays of shape [tasks, rank] for all tasks
  of a group at once, so partition, events and schedule stay vectorized;
- its params, typed (`Params`: a frozen dataclass, read from the IR attribute
  and checked by `mpk-verify`), and the buffers its groups take (`check`);
- its reference semantics (`reference`, the numpy function both interpreters
  run; `run_task` for a task that does more than map input tiles to its tile);
- its device lowering (`emit`, `tensor_maps`).

Defining a subclass with a `name` registers it; `registry()` imports every
module of this package once and returns the kinds by name. Every registry of
the compiler (verifier rules, partition dispatch, interpreters, lowering)
reads this one. Reads are conservative where they depend on data (an
embedding task reads all table rows, attention all cache rows); the task
interpreter checks the exact rows.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
import pkgutil
import sys
import types
import typing
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

# One box per task: (lo, hi), each int64 [tasks, rank].
Boxes = tuple[np.ndarray, np.ndarray]

# A prefill step's io input `row_counts` [B]: the prompt rows of each sequence in the
# chunk (the rest is padding). Groups with this unit param take it as their last input
# and skip the tiles of padding rows (their outputs there are never read).
ROW_COUNTS = "row_counts"

# Kind modules outside this package to load with it (module names or .py paths,
# os.pathsep-separated): how `mpk-opt` and `mpk` see a kind defined elsewhere.
ENV = "MPK_KINDS"
_KINDS: dict[str, "TaskKind"] = {}
_LOADED = False


@dataclasses.dataclass
class OpInfo:
    """What a kind needs to know about one operator."""
    kind: str
    inputs: list[tuple[int, ...]]     # input buffer shapes, graph operand order
    input_bytes: list[int]            # element size of each input
    output: tuple[int, ...]           # shape of the (first) output buffer
    output_bytes: int
    domain: tuple[int, ...]           # the grid's index space
    params: dict


class ParamError(ValueError):
    """Params that do not fit a kind's `Params` (an unknown name, a wrong type, one missing)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params:
    """A kind's params, typed. A field without a default is required; one whose default
    is None or False is a variant the group may have (a fused norm's `norm_eps`, a
    flag that is a unit attribute in the IR). The IR attribute is the truth: a group's
    `params` dictionary, or its graph op's attributes (`mpk.`-prefixed annotations left
    out); `of` reads one."""

    @classmethod
    def of(cls, values: typing.Mapping) -> "Params":
        """The typed params of `values` (plain Python values: taskir.python_value)."""
        hints, fields = _schema(cls)
        given = {name: value for name, value in values.items() if not name.startswith("mpk.")}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ParamError(f"unknown param '{unknown[0]}' (takes: {', '.join(fields) or 'none'})")
        missing = [n for n, f in fields.items() if n not in given
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ParamError(f"needs the param '{missing[0]}'")
        return cls(**{name: _typed(name, value, hints[name]) for name, value in given.items()})


@functools.cache
def _schema(cls: type) -> tuple[dict, dict]:
    """A Params class's field types and fields (resolving the hints is slow: once a class)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _typed(name: str, value, hint):
    """`value` as the field type `hint` (int, float, bool, tuple[float, ...], or one of
    those or None), or ParamError."""
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    want = [t for t in typing.get_args(hint) if t is not type(None)][0] if optional else hint
    if want is bool and isinstance(value, bool):
        return value
    if want is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(want) is tuple and isinstance(value, (list, tuple)) \
            and all(isinstance(v, float) for v in value):      # an array<f32: ...>
        return tuple(value)
    what = {bool: "a unit attribute", int: "an integer", float: "a float"}.get(want, "a non-empty array<f32: ...>")
    shown = f'"{value}"' if isinstance(value, str) else value
    raise ParamError(f"'{name}' must be {what}, got {shown}")


def volume(box: Boxes) -> np.ndarray:
    lo, hi = box
    return np.prod(np.maximum(hi - lo, 0), axis=1)


def full(n: int, shape) -> Boxes:
    """The whole of a buffer of `shape`, for each of `n` tasks."""
    return np.zeros((n, len(shape)), np.int64), np.tile(np.asarray(shape, np.int64), (n, 1))


def nothing(n: int, rank: int) -> Boxes:
    """An empty box for each of `n` tasks: an input the task does not read."""
    return np.zeros((n, rank), np.int64), np.zeros((n, rank), np.int64)


def copy(box: Boxes) -> Boxes:
    return box[0].copy(), box[1].copy()


def sequences(lo_rows, hi_rows, rows: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The sequences [lo, hi) holding rows [lo_rows, hi_rows) of an op with `rows`
    rows over `batch` sequences (row r is sequence r // (rows / batch))."""
    per = max(rows // max(batch, 1), 1)
    return lo_rows // per, -(-hi_rows // per)


def cols(lo, hi, rows: Boxes | None, shape) -> Boxes:
    """The box [rows of `rows` or all, columns lo..hi] of a 2-D (or 3-D: rows are the
    first dim, columns the last) operand."""
    n = lo.shape[0]
    blo, bhi = full(n, shape)
    if rows is not None:
        blo[:, 0], bhi[:, 0] = rows[0], rows[1]
    blo[:, -1], bhi[:, -1] = lo, hi
    return blo, bhi


def zeros(out: Boxes) -> np.ndarray:
    return np.zeros(out[0].shape[0], np.int64)


class TaskKind:
    """Defaults fit an elementwise op on [B, N] activations with one output."""
    name: ClassVar[str] = ""
    # Its params (a `Params` subclass; none by default).
    params: ClassVar[type[Params]] = Params
    # The numpy semantics of the graph op (graph interpreter) and of a task's tile
    # (task interpreter): reference(*inputs, **params) -> output.
    reference: ClassVar[Callable | None] = None
    # IRDL of the graph op `mpk.<name>` when the dialect (dialects/mpk.irdl.mlir) lacks it.
    graph_op_irdl: ClassVar[str] = ""
    # The operand whose producer's tile an elementwise op follows.
    main_input: ClassVar[int] = 0
    # The graph operand that carries positions (partition names its io buffer so).
    position_operand: ClassVar[int | None] = None
    # Operands of the graph op, which the default `check` expects a group to take.
    operands: ClassVar[int] = 2
    # (operand, result) pairs of the graph op: the result is the operand's state updated in place.
    in_place: ClassVar[tuple[tuple[int, int], ...]] = ()
    # Inputs a task reads one row of per sequence (data-dependent rows: an embedding table).
    gathers: ClassVar[tuple[int, ...]] = ()
    # Whether the lowering checks the tile itself (else the verifier checks it is a valid one).
    lowering_checks_tile: ClassVar[bool] = True
    def trigger_ranks(self, params: typing.Mapping) -> str | None:
        """Whose event counters a task's trigger bumps in a tensor-parallel step (a group
        that stores into other ranks' memory): "every" rank's, or its tile's "owner"
        rank's only (`trigger_ranks_of`); None: this rank's."""
        return None

    def trigger_ranks_of(self, op: OpInfo, out: Boxes) -> np.ndarray:
        """The rank each task's trigger goes to, for trigger_ranks "owner"."""
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            _KINDS[cls.name] = cls()

    # -------------------------------------------------------------- tiles
    def tile_unit(self, op: OpInfo) -> tuple[int, ...]:
        """Granularity of a tile per domain dim; a tile is a multiple of it or the whole dim."""
        return (1, 8)

    def fixed_tile(self, op: OpInfo) -> tuple[int | None, ...]:
        """Per domain dim, a tile size the kind requires (None: the cost model picks)."""
        return (op.domain[0], None)

    def max_tile(self, op: OpInfo) -> tuple[int | None, ...]:
        """Per domain dim, the largest tile the kind's lowering takes (None: any)."""
        return (None,) * len(op.domain)

    def elementwise(self, op: OpInfo) -> bool:
        """Cheap per-element ops take their producer's tile, so events stay per tile."""
        return True

    # -------------------------------------------------------------- boxes
    def reads(self, op: OpInfo, out: Boxes) -> list[Boxes]:
        return [copy(out) for _ in op.inputs]

    def writes(self, op: OpInfo, out: Boxes) -> Boxes:
        return out

    def output_writes(self, op: OpInfo, out: Boxes, shapes: list) -> list[Boxes]:
        """The box of every output buffer (`shapes`) a task writes: `writes` for the
        first; further outputs (argmax's tokens and positions) the same rows as its
        tile where their shape is the domain, else all of them."""
        n = out[0].shape[0]
        return [self.writes(op, out)] + [out if tuple(shape) == tuple(op.domain) else full(n, shape)
                                         for shape in shapes[1:]]

    def traffic(self, op: OpInfo, out: Boxes) -> list[Boxes]:
        """The boxes a task really loads (for its cost); `reads` when they are not data-dependent."""
        return self.reads(op, out)

    def kv_caches(self, params: dict) -> tuple[int, ...]:
        """Inputs that are KV caches, of which a decode step reads rows 0..pos (for the
        bytes a step must read: runtime/bandwidth.py)."""
        return ()

    # --------------------------------------------------------------- cost
    def flops(self, op: OpInfo, out: Boxes) -> np.ndarray:
        return 2 * volume(out)

    def mma_flops(self, op: OpInfo, out: Boxes) -> np.ndarray:
        """Flops a task runs on the matrix units (priced at their rate, not the CUDA cores')."""
        return zeros(out)

    # ------------------------------------------------------------- verify
    def graph_check(self, c, op, types: list, p: Params) -> None:
        """The graph op `mpk.<name>`: its operand then result types (`types`) and its
        params `p` (typed, from its attributes); `c` collects errors (dialects/verify.py
        has the rules' helpers). Default: an elementwise op, operands and result of one
        float [B, N] type."""
        from mpk.dialects import verify
        verify.elementwise(c, op, types, p)

    def check(self, c, op, ins: list, outs: list, p: Params) -> None:
        """A task group's input and output buffer types and its typed params, as
        `mpk-partition` builds them. Default: the graph op's operands then its result."""
        from mpk.dialects import verify
        if verify.arity(c, op, self.name, ins, outs, self.operands):
            self.graph_check(c, op, ins + outs, p)

    def natural_domain(self, ins: list, outs: list) -> tuple[list[int], str]:
        """The index space of the group's grid, and what it is the shape of."""
        return list(outs[0].shape), "the first output"

    def typed(self, params: typing.Mapping) -> Params:
        """The group's params (a plain dict) as this kind's `Params`."""
        return self.params.of(params)

    # -------------------------------------------------------- interpreters
    def evaluate(self, operands: list, attrs: dict):
        """The graph op on whole tensors (graph interpreter): its result, or a tuple of
        them. Default: `reference(*operands, **attrs)`."""
        return self.reference(*operands, **attrs)

    def run_task(self, task) -> None:
        """Run one task in the task interpreter (`mpk.interp.tasks.Task`): by default the
        reference on the input tiles and the kind's params, written to the output tile."""
        params = dataclasses.asdict(self.typed(task.params))
        task.write_output(self.reference(*task.tiles(), **{n: v for n, v in params.items() if v is not None}))

    # ------------------------------------------------------------ lowering
    # The device lowering: emit(e, g, task, views) builds the body of the device function
    # running task `task` of group `g` (lowering/kernels/__init__.py says what the arguments
    # are); None: the kind has none.
    emit: ClassVar[Callable | None] = None
    # Its prefetch: prefetch(e, g, task, views) builds a function that one thread runs
    # while the task still waits for its inputs, to start copies into L2 of what the
    # task will read that depends on no event but on run-time values (an attention
    # task's cache rows, found from the positions); None: the kind has none.
    prefetch: ClassVar[Callable | None] = None

    def tensor_maps(self, g, threads: int) -> list:
        """The TMA descriptors (kernels.TensorMap) the group's tasks need."""
        return []


def registry() -> dict[str, TaskKind]:
    """Every task kind by name: the modules of this package, those named in the
    environment variable MPK_KINDS, and any other `TaskKind` subclass once its
    module is imported (a test fixture, a researcher's notebook)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        for module in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
            load_module(module)
    return _KINDS


def load_module(module: str) -> None:
    """Import a kind's module: a dotted name, or the path of a .py file."""
    if not module.endswith(".py"):
        importlib.import_module(module)
        return
    path = Path(module)
    spec = importlib.util.spec_from_file_location(f"mpk_kind_{path.stem}", path)
    if spec is None or not path.is_file():
        raise ImportError(f"{ENV}: no kind file {module}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)


def get(name: str) -> TaskKind:
    kinds = registry()
    if name not in kinds:
        raise KeyError(f"unknown task kind '{name}' (known: {', '.join(kinds)})")
    return kinds[name]

"""The `mpk` dialect: loading its IRDL definition, and Python builders.

`context()` gives an MLIR context with the dialect loaded and unregistered
dialects disallowed; the builders below create every op with its result type
inferred, inside the caller's `with ir.Location(...), ir.InsertionPoint(...)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from mlir import ir
from mlir.dialects import irdl

IRDL_PATH = Path(__file__).with_name("mpk.irdl.mlir")

# The ops of mpk.irdl.mlir (each graph op is the task kind of its name: lowering/kinds).
GRAPH_OPS = ("weight", "state", "embedding", "rmsnorm", "linear", "rope", "attention",
             "kv_append", "silu_mul", "add", "allreduce", "allgather", "argmax", "sample")
TASK_OPS = ("kernel", "buffer", "event", "tasks", "schedule")



def irdl_source() -> str:
    """The dialect's IRDL: mpk.irdl.mlir, plus the graph op of every registered task
    kind that brings its own (lowering/kinds: `graph_op_irdl`)."""
    from mpk.lowering import kinds
    text = IRDL_PATH.read_text()
    extra = "\n".join(k.graph_op_irdl for k in kinds.registry().values() if k.graph_op_irdl)
    end = text.rindex("}")                  # the end of `irdl.dialect @mpk { ... }`
    return text[:end] + extra + "\n" + text[end:]


def load(ctx: ir.Context) -> None:
    """Load the mpk dialect into `ctx` (once per context)."""
    with ctx:
        irdl.load_dialects(ir.Module.parse(irdl_source()))


def context() -> ir.Context:
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = False
    load(ctx)
    return ctx


# A string literal, a comment, or a dense array's element type (`array<index: ...>`).
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|\barray\s*<\s*(?P<element>index\b|![\w.$]+)')
_TYPE_ALIAS = re.compile(r"^\s*(![\w.$]+)\s*=\s*(\S+)\s*$", re.MULTILINE)
# Text decoded with errors="surrogateescape": each byte that is not UTF-8 is one of these.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
MAX_NESTING = 1000
_BRACKETS = np.zeros(256, np.int8)
_BRACKETS[list(b"[{(<")], _BRACKETS[list(b"]})>")] = 1, -1


def parse(source: str) -> ir.Module | None:
    """Parse `source` in the current context (MLIRError on a syntax error, as
    ir.Module.parse), first rejecting what would crash the process instead: bytes
    that are not UTF-8 (decoded with errors="surrogateescape"), a dense array of
    `index` elements (MLIR's parser asserts on it), and after parsing attributes
    the bindings cannot read (`verify.readable`). Those get an error at their
    location (file "-", as the parser's) and None is returned."""
    rejected = False
    for position, message in _crashing_text(source):
        line = source.count("\n", 0, position) + 1
        col = position - (source.rfind("\n", 0, position) + 1) + 1
        ir.Location.file("-", line, col).emit_error(message)
        rejected = True
    if rejected:
        return None
    from .verify import readable
    module = ir.Module.parse(source)
    return module if readable(module.operation) else None


def _crashing_text(source: str):
    """(offset, message) of each part of `source` that MLIR or the bindings would crash on."""
    bad = _NOT_UTF8.search(source)
    if bad:
        byte = ord(bad.group()) - 0xDC00
        yield bad.start(), f"expected UTF-8 text, got the byte 0x{byte:02x}"
        return
    # Bracket depth, roughly (`->` is no bracket; strings and comments are counted): MLIR's
    # recursive parser overflows the stack some thousands deep.
    depth = np.cumsum(_BRACKETS[np.frombuffer(source.replace("->", "  ").encode(), np.uint8)], dtype=np.int64)
    if depth.size and depth.max() > MAX_NESTING:
        deep = source.encode()[:int(np.argmax(depth > MAX_NESTING))].decode("utf-8", "ignore")
        yield len(deep), f"expected at most {MAX_NESTING} nested brackets, got more"
        return
    aliases = dict(_TYPE_ALIAS.findall(source))
    for m in _TOKENS.finditer(source):
        element = m.group("element")
        for _ in range(len(aliases) + 1):          # follow `!t = index` aliases
            element = aliases.get(element, element)
        if element == "index":
            yield m.start(), ("expected a dense array of integer or float elements, got array<index: ...> "
                              "(MLIR cannot parse it)")


# ----------------------------------------------------------------- helpers

def _op(op_name: str, operands: Sequence[ir.Value] = (), result: ir.Type | None = None, /,
        **attributes) -> ir.Operation:
    attrs = {k: _attr(v) for k, v in attributes.items() if v is not None}
    return ir.Operation.create(f"mpk.{op_name}", results=[result] if result is not None else [],
                               operands=list(operands), attributes=attrs)


def _attr(v) -> ir.Attribute:
    if isinstance(v, ir.Attribute):
        return v
    if isinstance(v, bool):
        return ir.BoolAttr.get(v)
    if isinstance(v, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), v)
    if isinstance(v, float):
        return ir.FloatAttr.get(ir.F32Type.get(), v)
    if isinstance(v, str):
        return ir.StringAttr.get(v)
    if isinstance(v, ir.Type):
        return ir.TypeAttr.get(v)
    if isinstance(v, dict):
        return ir.DictAttr.get({k: _attr(x) for k, x in v.items()})
    raise TypeError(f"cannot make an attribute from {v!r}")


def tensor(shape: Iterable[int], element: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), element)


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _elt(v: ir.Value) -> ir.Type:
    return ir.RankedTensorType(v.type).element_type


def symbol_refs(names: Iterable[str]) -> ir.ArrayAttr:
    return ir.ArrayAttr.get([ir.FlatSymbolRefAttr.get(n) for n in names])


# ------------------------------------------------------------ graph builders

def weight(name: str, type: ir.Type) -> ir.Value:
    return _op("weight", (), type, name=name).result


def state(name: str, type: ir.Type) -> ir.Value:
    return _op("state", (), type, name=name).result


def embedding(ids: ir.Value, table: ir.Value) -> ir.Value:
    return _op("embedding", [ids, table], tensor([_shape(ids)[0], _shape(table)[1]], _elt(table))).result


def rmsnorm(x: ir.Value, w: ir.Value, eps: float) -> ir.Value:
    return _op("rmsnorm", [x, w], x.type, eps=float(eps)).result


def linear(x: ir.Value, w: ir.Value, residual: ir.Value | None = None) -> ir.Value:
    operands = [x, w] + ([residual] if residual is not None else [])
    return _op("linear", operands, tensor([_shape(x)[0], _shape(w)[0]], _elt(x))).result


def rope(x: ir.Value, positions: ir.Value, inv_freq: Sequence[float]) -> ir.Value:
    return _op("rope", [x, positions], x.type,
               inv_freq=ir.DenseF32ArrayAttr.get([float(f) for f in inv_freq])).result


def attention(q: ir.Value, k_cache: ir.Value, v_cache: ir.Value, positions: ir.Value,
              head_dim: int, scale: float) -> ir.Value:
    return _op("attention", [q, k_cache, v_cache, positions], q.type,
               head_dim=int(head_dim), scale=float(scale)).result


def kv_append(cache: ir.Value, new: ir.Value, positions: ir.Value) -> ir.Value:
    return _op("kv_append", [cache, new, positions], cache.type).result


def silu_mul(gate: ir.Value, up: ir.Value) -> ir.Value:
    return _op("silu_mul", [gate, up], gate.type).result


def add(a: ir.Value, b: ir.Value) -> ir.Value:
    return _op("add", [a, b], a.type).result


def allreduce(x: ir.Value, ranks: int, residual: ir.Value | None = None) -> ir.Value:
    return _op("allreduce", [x] + ([residual] if residual is not None else []), x.type, ranks=ranks).result


def allgather(x: ir.Value, ranks: int) -> ir.Value:
    rows, cols = _shape(x)
    return _op("allgather", [x], tensor([rows, cols * ranks], ir.RankedTensorType(x.type).element_type),
               ranks=ranks).result


def argmax(logits: ir.Value, index_type: ir.Type | None = None) -> ir.Value:
    index_type = index_type or ir.IntegerType.get_signless(32)
    return _op("argmax", [logits], tensor([_shape(logits)[0]], index_type)).result


def sample(logits: ir.Value, positions: ir.Value, params: ir.Value, seeds: ir.Value,
           index_type: ir.Type | None = None) -> ir.Value:
    index_type = index_type or ir.IntegerType.get_signless(32)
    return _op("sample", [logits, positions, params, seeds], tensor([_shape(logits)[0]], index_type)).result


# ---------------------------------------------------------- io arguments

IO_ATTR = "mpk.io"   # argument attribute: the name of the io buffer an argument becomes


def io_names(func: ir.Operation) -> list[str | None]:
    """The `mpk.io` name of each argument of a graph function (None where unnamed)."""
    count = len(func.regions[0].blocks[0].arguments)
    if "arg_attrs" not in func.attributes:
        return [None] * count
    names = []
    for attrs in ir.ArrayAttr(func.attributes["arg_attrs"]):
        attrs = ir.DictAttr(attrs)
        names.append(ir.StringAttr(attrs[IO_ATTR]).value if IO_ATTR in attrs else None)
    return names + [None] * (count - len(names))


def add_io_argument(func: ir.Operation, name: str, type: ir.Type) -> ir.Value:
    """Append an argument named `name` (the io buffer the host writes) to a graph
    function, keeping its function type and argument attributes in step."""
    block = func.regions[0].blocks[0]
    names = io_names(func)
    arg = block.add_argument(type, func.location)
    names.append(name)
    func.attributes["arg_attrs"] = ir.ArrayAttr.get(
        [ir.DictAttr.get({IO_ATTR: ir.StringAttr.get(n)} if n else {}) for n in names])
    sync_function_type(func)
    return arg


def sync_function_type(func: ir.Operation) -> None:
    """Rewrite `function_type` from the entry block's arguments and the returned values."""
    block = func.regions[0].blocks[0]
    ret = list(block.operations)[-1]
    func.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [a.type for a in block.arguments], [v.type for v in ret.operands]))


# ------------------------------------------------------------- task builders

def kernel(name: str, num_sms: int, arch: str, **extra) -> ir.Operation:
    return _op("kernel", sym_name=name, num_sms=num_sms, arch=arch, **extra)


def buffer(name: str, type: ir.Type, space: str, **extra) -> ir.Operation:
    return _op("buffer", sym_name=name, type=type, space=space, **extra)


def event(name: str, size: int, triggers: int, primed: bool = False, ranks: int = 1) -> ir.Operation:
    """`ranks` > 1: the triggers come from every rank of a tensor-parallel step (`triggers`
    counts them all), each bumping every rank's counter."""
    return _op("event", sym_name=name, size=size, triggers=triggers,
               primed=ir.UnitAttr.get() if primed else None, ranks=ranks if ranks > 1 else None)


def event_ref(event_name: str, affine_map: ir.AffineMap) -> ir.ArrayAttr:
    """The `[@event, map]` pair of a `wait` or `trigger` attribute."""
    return ir.ArrayAttr.get([ir.FlatSymbolRefAttr.get(event_name), ir.AffineMapAttr.get(affine_map)])


def tasks(name: str, kind: str, grid: Sequence[int], tile: Sequence[int],
          inputs: Sequence[str], outputs: Sequence[str], *, wait: ir.ArrayAttr | None = None,
          trigger: ir.ArrayAttr | None = None, params: dict | ir.DictAttr | None = None,
          **extra) -> ir.Operation:
    return _op("tasks", sym_name=name, kind=kind, grid=ir.DenseI64ArrayAttr.get(list(grid)),
               tile=ir.DenseI64ArrayAttr.get(list(tile)), inputs=symbol_refs(inputs),
               outputs=symbol_refs(outputs), wait=wait, trigger=trigger,
               params=params if params is not None else {}, **extra)


def schedule(queues: Sequence[Sequence[int]], **extra) -> ir.Operation:
    return _op("schedule", queues=ir.ArrayAttr.get([ir.DenseI32ArrayAttr.get(list(q)) for q in queues]),
               **extra)

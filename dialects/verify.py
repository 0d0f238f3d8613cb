"""Semantic verification of mpk IR: what the IRDL definition cannot express.

`verify(module)` emits one MLIR error diagnostic at the offending op's
location per violation and returns whether the module is valid. `mpk-opt`
runs it after parsing; the `mpk-verify` pass runs it inside a pipeline. It
checks what the passes and the task lowerings assume, so that a module it
accepts does not crash them: graph ops' shapes, dtypes and attributes; every
task group's buffers (count, ranks, element types, shapes, per kind as
`mpk-partition` builds them), params and the tiles its lowering does not
check itself; events and schedule; and first that the bindings can read
every attribute (`readable`).
Every rule has an invalid-IR test in test/dialect/invalid-*.mlir or
regress-*.mlir.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
from mlir import ir

from mpk.lowering import analyses, kinds, tiling

from . import TASK_OPS, taskir

FLOATS = ("bf16", "f16", "f32")
INTS = ("i32", "i64")
# Element types of the dense arrays the Python bindings have a class for.
DENSE_ARRAY_ELEMENTS = "i1, i8, i16, i32, i64, f32 or f64"


class Checker:
    def __init__(self):
        self.errors = 0

    @property
    def ok(self) -> bool:
        return self.errors == 0

    def error(self, op, message: str) -> None:
        op.location.emit_error(message)
        self.errors += 1

    def check(self, cond, op, message: str) -> bool:
        if not cond:
            self.error(op, message)
        return bool(cond)


def verify(module: ir.Module | ir.Operation) -> bool:
    op = module.operation if isinstance(module, ir.Module) else module
    if not readable(op):
        return False
    checker = Checker()
    task_ops = []
    for child in _walk(op):
        name = child.name
        if not name.startswith("mpk."):
            continue
        short = name[4:]
        if short in TASK_OPS:
            task_ops.append(child)
            continue
        types = _operands(checker, child)
        if types is None:
            continue
        if short in ("weight", "state"):
            _named(checker, child, types, child.attributes)
        elif short in kinds.registry():    # a graph op is the task kind of its name
            p = typed_params(checker, child, kinds.get(short), child.attributes)
            if p is not None:
                kinds.get(short).graph_check(checker, child, types, p)
    if task_ops:
        _verify_tasks(checker, op, task_ops)
    return checker.ok


def _walk(op: ir.Operation):
    """The ops nested in `op`, in pre-order (no recursion: nesting may be deep)."""
    pending = [iter(_children(op))]
    while pending:
        child = next(pending[-1], None)
        if child is None:
            pending.pop()
            continue
        yield child
        pending.append(iter(_children(child)))


def _children(op: ir.Operation) -> list[ir.Operation]:
    return [child.operation for region in op.regions for block in region.blocks for child in block.operations]


# ------------------------------------------------------------- readability

def readable(op: ir.Operation) -> bool:
    """Whether the Python bindings can read every attribute in and under `op`; an
    error at each op holding one they cannot: a dense array of an element type they
    have no class for (array<bf16: ...>, array<si64: ...>). Reading one raises, and
    reading it as a dictionary entry (NamedAttribute.attr) aborts the process, so no
    pass may see such a module."""
    ok = True
    for child in [op, *_walk(op)]:
        attrs = child.attributes
        for name in [attrs[i].name for i in range(len(attrs))]:
            for path, text in _unreadable(lambda name=name: attrs[name], name):
                child.location.emit_error(f"attribute '{path}': expected a dense array of "
                                          f"{DENSE_ARRAY_ELEMENTS} elements, got {text}")
                ok = False
    return ok


def _unreadable(get, path: str):
    """(path, text) of the unreadable attributes in the one `get()` returns, and in the
    arrays and dictionaries in it (no recursion: nesting may be deep)."""
    pending = [(get, path)]
    while pending:
        get, path = pending.pop()
        try:
            a = get()
        except TypeError as e:         # "Can't cast unknown element type DenseArrayAttr (Attribute(...))"
            found = re.search(r"\(Attribute\((.*)\)\)$", str(e))
            yield path, found.group(1) if found else "a dense array of another element type"
            continue
        if isinstance(a, ir.ArrayAttr):
            pending += [(lambda a=a, i=i: a[i], f"{path}[{i}]") for i in reversed(range(len(a)))]
        elif isinstance(a, ir.DictAttr):
            pending += [(lambda a=a, n=n: a[n], f"{path}.{n}") for n in reversed([entry.name for entry in a])]


# ------------------------------------------------------------- graph level
#
# A rule takes the op's tensor types (operands, then results) and its
# attributes; task groups of the same kinds reuse them on their buffers and params.

def _tensor(v: ir.Value):
    t = v.type
    return ir.RankedTensorType(t) if isinstance(t, ir.RankedTensorType) else None


def elt(t) -> str:
    return str(t.element_type)


def _operands(c: Checker, op: ir.Operation):
    """Ranked tensor types of all operands and results, or None after an error."""
    types = []
    for v in list(op.operands) + list(op.results):
        t = _tensor(v)
        if not c.check(t is not None and all(d > 0 for d in t.shape), op,
                       f"'{op.name}' expects statically shaped ranked tensors of positive sizes, got {v.type}"):
            return None
        types.append(t)
    return types


def positive(c: Checker, op, p, name: str):
    """The typed param `name` of `p` (kinds.Params) if it is > 0; None after an error."""
    value = getattr(p, name)
    return value if c.check(value is not None and value > 0, op, f"'{name}' must be positive") else None


def inv_freq(c: Checker, op, p) -> int | None:
    """len(inv_freq), or None after an error."""
    if not c.check(p.inv_freq, op, "'inv_freq' must be a non-empty array<f32: ...>"):
        return None
    return len(p.inv_freq)


def typed_params(c: Checker, op, kind, attrs):
    """The kind's typed params (kinds.Params) of an op's attributes or a group's params
    dictionary; None after an error."""
    names = [a if isinstance(a, str) else a.name for a in attrs]
    try:
        return kind.typed({n: taskir.python_value(attrs[n]) for n in names})
    except kinds.ParamError as e:
        c.error(op, str(e))
        return None


def _named(c: Checker, op, types, attrs):
    (result,) = types
    c.check(ir.StringAttr(attrs["name"]).value != "", op, "'name' must not be empty")
    c.check(elt(result) in FLOATS, op, f"result element type must be one of {', '.join(FLOATS)}, got {elt(result)}")


def same_type(c: Checker, op: ir.Operation, what: str, a, b) -> bool:
    return c.check(a == b, op, f"{what} must have the same type ({a} vs {b})")


def float2d(c: Checker, op, t, what: str) -> bool:
    return (c.check(t.rank == 2, op, f"{what} must be 2-D [batch, features], got {t}")
            and c.check(elt(t) in FLOATS, op, f"{what} must have a float element type, got {elt(t)}"))


def ints(c: Checker, op, t, length: int, what: str) -> bool:
    return c.check(t.rank == 1 and elt(t) in INTS and t.shape[0] == length, op,
                   f"{what} must be a 1-D i32/i64 tensor of length {length}, got {t}")


def positions(c: Checker, op, t, batch: int) -> bool:
    return c.check(t.rank == 1 and elt(t) in INTS and t.shape[0] == batch, op,
                   f"positions must be a 1-D i32/i64 tensor of length {batch} (one per row), got {t}")


def heads(c: Checker, op, q, kc, vc, pos, p) -> int | None:
    """head_dim when q, the caches and the positions fit an attention's, else None after errors."""
    errors = c.errors
    if not (float2d(c, op, q, "q")
            and c.check(kc.rank == 3, op, f"k_cache must be 3-D [batch, seq, kv_heads * head_dim], got {kc}")
            and same_type(c, op, "k_cache and v_cache", kc, vc)):
        return None
    head_dim = positive(c, op, p, "head_dim")
    if head_dim is None:
        return None
    c.check(q.shape[0] % kc.shape[0] == 0, op,
            f"q rows ({q.shape[0]}) must be a multiple of the cache batch ({kc.shape[0]}): "
            f"every sequence has the same number of query rows")
    c.check(elt(kc) == elt(q), op, f"cache element type {elt(kc)} differs from q's {elt(q)}")
    if c.check(q.shape[1] % head_dim == 0 and kc.shape[2] % head_dim == 0, op,
               f"head_dim {head_dim} must divide the q width {q.shape[1]} and the cache width {kc.shape[2]}"):
        hq, hkv = q.shape[1] // head_dim, kc.shape[2] // head_dim
        c.check(hq % hkv == 0, op, f"kv heads ({hkv}) must divide query heads ({hq})")
    positions(c, op, pos, q.shape[0])
    return head_dim if c.errors == errors else None


def elementwise(c: Checker, op, types, attrs):
    for t in types[1:]:
        if not same_type(c, op, "operands and result", types[0], t):
            return
    float2d(c, op, types[0], "operand")




# -------------------------------------------------------------- task level

# Bounds on what the passes allocate per task and per SM (an array each): far above real
# models (Qwen3-8B: ~30k tasks, a prefill chunk ~10x that; an H100 has 132 SMs).
MAX_TASKS = 1 << 22
MAX_SMS = 1 << 16


def _attr_is(c: Checker, op, name: str, cls, what: str) -> bool:
    return c.check(isinstance(op.attributes[name], cls), op, f"'{name}' must be {what}")


def _verify_tasks(c: Checker, module_op: ir.Operation, ops: list[ir.Operation]) -> None:
    # Per-op attribute forms first: the TaskGraph view below relies on them.
    kernels = []
    for op in ops:
        a = op.attributes
        if op.name == "mpk.kernel":
            kernels.append(op)
            sms = ir.IntegerAttr(a["num_sms"]).value
            if c.check(sms > 0, op, "'num_sms' must be positive"):
                c.check(sms <= MAX_SMS, op, f"'num_sms' {sms} exceeds {MAX_SMS}")
        elif op.name == "mpk.buffer":
            t = ir.TypeAttr(a["type"]).value
            space = ir.StringAttr(a["space"]).value
            if c.check(isinstance(t, ir.RankedTensorType), op, f"'type' must be a ranked tensor type, got {t}"):
                c.check(all(d > 0 for d in t.shape) and elt(t) in taskir.ELEMENT_BYTES, op,
                        f"'type' must have static positive sizes and one of the element types "
                        f"{', '.join(taskir.ELEMENT_BYTES)}, got {t}")
            c.check(space in taskir.SPACES, op, f"unknown space '{space}' (expected one of {', '.join(taskir.SPACES)})")
            if space in ("weight", "state"):
                c.check("name" in a and isinstance(a["name"], ir.StringAttr), op,
                        f"a {space} buffer needs a 'name' string attribute (the name it is bound by)")
            if "offset" in a:
                c.check(isinstance(a["offset"], ir.IntegerAttr) and ir.IntegerAttr(a["offset"]).value >= 0,
                        op, "'offset' must be a non-negative integer")
        elif op.name == "mpk.event":
            size = ir.IntegerAttr(a["size"]).value
            if c.check(size > 0, op, "'size' must be positive"):
                c.check(size <= MAX_TASKS, op, f"'size' {size} exceeds {MAX_TASKS} (a counter per task at most)")
            c.check(ir.IntegerAttr(a["triggers"]).value > 0, op, "'triggers' must be positive")
        elif op.name == "mpk.tasks":
            _task_group_form(c, op)
        elif op.name == "mpk.schedule":
            c.check(all(isinstance(q, ir.DenseI32ArrayAttr) for q in ir.ArrayAttr(a["queues"])), op,
                    "'queues' must be an array of array<i32: ...>")
    for k in kernels[1:]:
        c.error(k, "a module holds at most one 'mpk.kernel'")
    if not c.ok:
        return
    graph = analyses.task_graph(module_op)
    if kernels == [] and graph.groups:
        c.error(graph.groups[0].op, "task groups need an 'mpk.kernel' header in their module")
    for g in graph.groups:
        _task_group_semantics(c, graph, g)
    if not c.ok:
        return
    _trigger_counts(c, graph)
    _acyclic(c, graph)
    if graph.schedule is not None:
        _schedule(c, graph)
    if c.ok:       # the module's structure holds: now what each kind's lowering assumes
        for g in graph.groups:
            _task_group_kind(c, graph, g)


def _task_group_form(c: Checker, op) -> None:
    a = op.attributes
    if not (_attr_is(c, op, "grid", ir.DenseI64ArrayAttr, "an array<i64: ...>")
            and _attr_is(c, op, "tile", ir.DenseI64ArrayAttr, "an array<i64: ...>")):
        return
    grid, tile = list(ir.DenseI64ArrayAttr(a["grid"])), list(ir.DenseI64ArrayAttr(a["tile"]))
    c.check(len(grid) == len(tile) and len(grid) > 0, op,
            f"grid (rank {len(grid)}) and tile (rank {len(tile)}) must have the same non-zero rank")
    if c.check(all(x > 0 for x in grid + tile), op, "grid and tile sizes must be positive"):
        tasks = int(np.prod(grid, dtype=object))
        c.check(tasks <= MAX_TASKS, op, f"a group of {tasks} tasks: at most {MAX_TASKS} are supported")
    for key in ("inputs", "outputs"):
        c.check(all(isinstance(x, ir.FlatSymbolRefAttr) for x in ir.ArrayAttr(a[key])), op,
                f"'{key}' must be an array of buffer symbols")
    c.check(len(ir.ArrayAttr(a["outputs"])) > 0, op, "a task group needs at least one output buffer")
    if "domain" in a:
        _attr_is(c, op, "domain", ir.DenseI64ArrayAttr, "an array<i64: ...>")
    if "params" in a:
        _attr_is(c, op, "params", ir.DictAttr, "a dictionary")
    for key in ("wait", "trigger"):
        if key in a:
            try:
                taskir.event_ref(a[key])
            except ValueError as e:
                c.error(op, f"'{key}' {e}")
    kind = ir.StringAttr(a["kind"]).value
    c.check(kind in kinds.registry(), op, f"unknown task kind '{kind}' (known: {', '.join(kinds.registry())})")


def _task_group_semantics(c: Checker, graph: taskir.TaskGraph, g: taskir.TaskGroup) -> None:
    op = g.op
    for b in g.inputs + g.outputs:
        c.check(b in graph.buffers, op, f"'{b}' does not name an 'mpk.buffer'")
    if not c.ok:
        return
    domain = graph.domain(g)
    if c.check(len(domain) == len(g.grid), op,
               f"grid rank {len(g.grid)} differs from the output domain rank {len(domain)} {list(domain)}"):
        want = [-(-d // t) for d, t in zip(domain, g.tile)]
        c.check(want == list(g.grid), op,
                f"tiles {list(g.tile)} on grid {list(g.grid)} do not cover the output {list(domain)} exactly once "
                f"(grid must be {want})")
    for key, ref in (("wait", g.wait), ("trigger", g.trigger)):
        if ref is None:
            continue
        if not c.check(ref.event in graph.events, op, f"'{key}' names '@{ref.event}', which is not an 'mpk.event'"):
            continue
        if not c.check(ref.map.n_dims == len(g.grid) and len(ref.map.results) == 1 and ref.map.n_symbols == 0,
                       op, f"'{key}' map must take {len(g.grid)} dims (one per grid dim) and give one result"):
            continue
        try:
            with np.errstate(divide="raise", invalid="raise"):
                idx = ref.indices(g.grid_indices())
        except (ValueError, ArithmeticError) as e:     # a floordiv or mod by zero
            c.error(op, f"'{key}' map {ref.map} cannot be evaluated: {e}")
            continue
        size = graph.events[ref.event].size
        bad = np.nonzero((idx < 0) | (idx >= size))[0]
        c.check(bad.size == 0, op,
                f"'{key}' index {int(idx[bad[0]]) if bad.size else 0} of task {int(bad[0]) if bad.size else 0} "
                f"is out of range for '@{ref.event}' of size {size}")


def _task_group_kind(c: Checker, graph: taskir.TaskGraph, g: taskir.TaskGroup) -> None:
    """The group's buffers and params as its kind's lowering reads them, and its domain."""
    ins, outs = ([ir.RankedTensorType(ir.TypeAttr(graph.buffers[b].op.attributes["type"]).value) for b in names]
                 for names in (g.inputs, g.outputs))
    params = g.op.attributes["params"] if "params" in g.op.attributes else ir.DictAttr.get({})
    errors = c.errors
    kind = kinds.get(g.kind)
    p = typed_params(c, g.op, kind, params)
    if p is None:
        return
    kind.check(c, g.op, ins, outs, p)
    if c.errors != errors:
        return
    natural, what = kind.natural_domain(ins, outs)
    if c.check(list(graph.domain(g)) == list(natural), g.op,
               f"the domain {list(graph.domain(g))} must be {list(natural)}, the shape of {what}") \
            and not kind.lowering_checks_tile:
        why = tiling.valid_tile(tiling.op_info(graph, g), g.tile)
        c.check(why is None, g.op, f"invalid tile {list(g.tile)}: {why}")


# Helpers of the kinds' rules (lowering/kinds: `graph_check` and `check`), which take
# the buffer or operand types and the attributes or params.

def arity(c: Checker, op, kind: str, ins, outs, inputs: int | tuple, outputs: int | tuple = 1,
           roles: str = "") -> bool:
    """`inputs`/`outputs`: the number of buffers the kind takes, or (fewest, most)."""
    (lo_in, hi_in), (lo_out, hi_out) = ((n, n) if isinstance(n, int) else n for n in (inputs, outputs))
    return c.check(lo_in <= len(ins) <= hi_in and lo_out <= len(outs) <= hi_out, op,
                   f"'{kind}' groups take {_count(lo_in, hi_in)} inputs{roles} and {_count(lo_out, hi_out)} "
                   f"outputs, got {len(ins)} and {len(outs)}")


def _count(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo} to {hi}" if hi < 1 << 20 else f"{lo} or more"


def row_counts(c: Checker, op, counts, rows: int) -> None:
    c.check(counts.rank == 1 and elt(counts) in INTS and rows % counts.shape[0] == 0, op,
            f"row_counts must be a 1-D i32/i64 tensor with one entry per sequence of the {rows} rows, got {counts}")


def fused_norm(c: Checker, op, w, x, p) -> None:
    """The weight and `norm_eps` of a layer norm a linear (or gate_up) applies to its x."""
    c.check(w.rank == 1 and w.shape[0] == x.shape[1] and elt(w) == elt(x),
            op, f"the fused norm weight must be tensor<{x.shape[1]}x{elt(x)}>, got {w}")
    positive(c, op, p, "norm_eps")


def rope_inputs(c: Checker, op, ins, p) -> int | None:
    """head_dim when q, k, v, the caches, positions and the norm weights (with `eps`)
    fit a rope_append's inputs, else None after errors."""
    q, k, v, kc, vc, pos, *norms = ins
    errors = c.errors
    head_dim = heads(c, op, q, kc, vc, pos, p)
    if head_dim is None or inv_freq(c, op, p) is None:
        return None
    c.check(k.rank == 2 and k.shape == [q.shape[0], kc.shape[2]] and elt(k) == elt(q) and v == k, op,
            f"k and v must be tensor<{q.shape[0]}x{kc.shape[2]}x{elt(q)}> (q's rows, a cache row), got {k} and {v}")
    for w in norms:
        c.check(w.rank == 1 and w.shape[0] == head_dim and elt(w) == elt(q), op,
                f"the norm weights must be tensor<{head_dim}x{elt(q)}>, got {w}")
    if norms:
        positive(c, op, p, "eps")
    return head_dim if c.errors == errors else None


def partials(c: Checker, op, t, rows: int, splits: int | None, heads: int, head_dim: int) -> None:
    """[rows, splits, heads * W] f32: per query head W >= head_dim + 2 floats (sums, max,
    sum of exponentials, padding: kinds/attention_partial.py: partial_width)."""
    c.check(t.rank == 3 and t.shape[0] == rows and t.shape[1] == (splits or t.shape[1]) and elt(t) == "f32"
            and t.shape[2] % heads == 0 and t.shape[2] // heads >= head_dim + 2, op,
            f"the partials must be tensor<{rows}x{splits or 'P'}x{heads}*Wxf32> ({heads} query heads of "
            f"W >= {head_dim + 2} floats), got {t}")


def _trigger_counts(c: Checker, graph: taskir.TaskGraph) -> None:
    counts = {name: np.zeros(e.size, dtype=np.int64) for name, e in graph.events.items()}
    from mpk.lowering import kinds
    per_task = {}
    for g in graph.groups:
        if g.trigger is not None:
            np.add.at(counts[g.trigger.event], g.trigger.indices(g.grid_indices()), 1)
            e = graph.events[g.trigger.event]
            mode = kinds.get(g.kind).trigger_ranks(g.params) if g.kind in kinds.registry() else None
            c.check(e.primed or ((e.ranks == 1) == (mode is None) and (mode is None or g.params.get("ranks") == e.ranks)),
                    g.op,
                    f"'{g.name}' triggers '@{e.name}' of {e.ranks} rank(s): an event of several ranks is "
                    f"triggered by the kinds that store into other ranks' memory (allgather, scatter) "
                    f"of that many ranks, and only by them")
            per_task[e.name] = e.ranks if mode == "every" and e.ranks > 1 else 1   # "every": each task on every rank
    for name, e in graph.events.items():
        wrong = np.nonzero(counts[name] * per_task.get(name, 1) != e.triggers)[0]
        if wrong.size:
            i = int(wrong[0])
            ranks = f" on each of {e.ranks} ranks" if per_task.get(name, 1) > 1 else ""
            c.error(e.op, f"event '@{name}' index {i} is triggered by {int(counts[name][i])} task(s){ranks} "
                          f"but declares triggers = {e.triggers}")


def _acyclic(c: Checker, graph: taskir.TaskGraph) -> None:
    producers = defaultdict(list)
    for g in graph.groups:
        if g.trigger is not None and not graph.events[g.trigger.event].primed:
            producers[g.trigger.event].append(g)
    edges = {g.name: [p.name for p in producers[g.wait.event]] if g.wait else [] for g in graph.groups}
    by_name = {g.name: g for g in graph.groups}
    state = {}                       # 1: on the DFS stack, 2: done

    def visit(name, path):
        state[name] = 1
        for pred in edges[name]:
            if state.get(pred) == 1:
                cycle = path[path.index(pred):] + [pred]
                c.error(by_name[pred].op, "the event graph has a cycle: " + " -> ".join(reversed(cycle)))
                return True
            if pred not in state and visit(pred, path + [pred]):
                return True
        state[name] = 2
        return False

    for g in graph.groups:
        if g.name not in state and visit(g.name, [g.name]):
            return


def _schedule(c: Checker, graph: taskir.TaskGraph) -> None:
    op = graph.schedule_op
    num_sms = graph.kernel_attr("num_sms", 0)
    c.check(len(graph.schedule) <= num_sms, op,
            f"{len(graph.schedule)} queues for a kernel of {num_sms} SMs")
    seen = np.zeros(graph.num_tasks, dtype=np.int64)
    for q in graph.schedule:
        if not c.check(q.size == 0 or (q.min() >= 0 and q.max() < graph.num_tasks), op,
                       f"queue entries must be task ids in [0, {graph.num_tasks})"):
            return
        np.add.at(seen, q, 1)
    bad = np.nonzero(seen != 1)[0]
    c.check(bad.size == 0, op,
            f"task {int(bad[0]) if bad.size else 0} appears {int(seen[bad[0]]) if bad.size else 0} times in the "
            "queues (each task exactly once)")

"""Semantic verification of mpk IR: what the IRDL definition cannot express.

`verify(module)` emits one MLIR error diagnostic at the offending op's
location per violation and returns whether the module is valid. `mpk-opt`
runs it after parsing; the `mpk-verify` pass runs it inside a pipeline.
Every rule has an invalid-IR test in test/dialect/invalid-*.mlir.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from mlir import ir

from . import taskir

FLOATS = ("bf16", "f16", "f32")
INTS = ("i32", "i64")
KINDS = ("embedding", "rmsnorm", "linear", "rope", "attention", "attention_partial",
         "attention_combine", "attention_prefill", "kv_append", "rope_append", "silu_mul", "add",
         "allreduce", "argmax", "sample", "gate_up")


class _Checker:
    def __init__(self):
        self.ok = True

    def error(self, op, message: str) -> None:
        op.location.emit_error(message)
        self.ok = False

    def check(self, cond, op, message: str) -> bool:
        if not cond:
            self.error(op, message)
        return bool(cond)


def verify(module: ir.Module | ir.Operation) -> bool:
    op = module.operation if isinstance(module, ir.Module) else module
    checker = _Checker()
    task_ops = []
    for child in _walk(op):
        name = child.name
        if not name.startswith("mpk."):
            continue
        short = name[4:]
        if short in _GRAPH_RULES:
            _GRAPH_RULES[short](checker, child)
        else:
            task_ops.append(child)
    if task_ops:
        _verify_tasks(checker, op, task_ops)
    return checker.ok


def _walk(op: ir.Operation):
    for region in op.regions:
        for block in region.blocks:
            for child in block.operations:
                yield child.operation
                yield from _walk(child.operation)


# ------------------------------------------------------------- graph level

def _tensor(v: ir.Value):
    t = v.type
    return ir.RankedTensorType(t) if isinstance(t, ir.RankedTensorType) else None


def _shape(t) -> list[int]:
    return list(t.shape)


def _elt(t) -> str:
    return str(t.element_type)


def _describe(v: ir.Value) -> str:
    return str(v.type)


def _operands(c: _Checker, op: ir.Operation):
    """Ranked tensor types of all operands and results, or None after an error."""
    types = []
    for v in list(op.operands) + list(op.results):
        t = _tensor(v)
        if not c.check(t is not None and not any(d < 0 for d in t.shape), op,
                       f"'{op.name}' expects statically shaped ranked tensors, got {_describe(v)}"):
            return None
        types.append(t)
    return types


def _named(c: _Checker, op: ir.Operation) -> None:
    types = _operands(c, op)
    if types is None:
        return
    (result,) = types
    c.check(ir.StringAttr(op.attributes["name"]).value != "", op, "'name' must not be empty")
    c.check(_elt(result) in FLOATS, op, f"result element type must be one of {', '.join(FLOATS)}, got {_elt(result)}")


def _same_type(c: _Checker, op: ir.Operation, what: str, a, b) -> bool:
    return c.check(a == b, op, f"{what} must have the same type ({a} vs {b})")


def _float2d(c: _Checker, op, t, what: str) -> bool:
    return (c.check(t.rank == 2, op, f"{what} must be 2-D [batch, features], got {t}")
            and c.check(_elt(t) in FLOATS, op, f"{what} must have a float element type, got {_elt(t)}"))


def _positions(c: _Checker, op, t, batch: int) -> bool:
    return c.check(t.rank == 1 and _elt(t) in INTS and t.shape[0] == batch, op,
                   f"positions must be a 1-D i32/i64 tensor of length {batch} (one per row), got {t}")


def _embedding(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    ids, table, result = types
    if not (c.check(ids.rank == 1 and _elt(ids) in INTS, op, f"ids must be a 1-D i32/i64 tensor, got {ids}")
            and c.check(table.rank == 2 and _elt(table) in FLOATS, op,
                        f"table must be a 2-D float tensor [vocab, hidden], got {table}")):
        return
    expected = f"tensor<{ids.shape[0]}x{table.shape[1]}x{_elt(table)}>"
    c.check(str(result) == expected, op, f"result must be {expected}, got {result}")


def _rmsnorm(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    x, w, result = types
    if not (_float2d(c, op, x, "x") and c.check(w.rank == 1, op, f"weight must be 1-D, got {w}")):
        return
    c.check(x.shape[1] % w.shape[0] == 0, op,
            f"the last dimension of x ({x.shape[1]}) must be a multiple of the weight size ({w.shape[0]})")
    c.check(_elt(w) == _elt(x), op, f"weight element type {_elt(w)} differs from x's {_elt(x)}")
    _same_type(c, op, "result and x", result, x)
    c.check(ir.FloatAttr(op.attributes["eps"]).value > 0, op, "'eps' must be positive")


def _linear(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    x, w, *rest = types
    result = rest[-1]
    if not (_float2d(c, op, x, "x") and c.check(w.rank == 2, op, f"weight must be 2-D [out, in], got {w}")):
        return
    c.check(w.shape[1] == x.shape[1], op,
            f"weight has {w.shape[1]} input features but x has {x.shape[1]}")
    c.check(_elt(w) == _elt(x), op, f"weight element type {_elt(w)} differs from x's {_elt(x)}")
    expected = f"tensor<{x.shape[0]}x{w.shape[0]}x{_elt(x)}>"
    c.check(str(result) == expected, op, f"result must be {expected}, got {result}")
    if len(rest) == 2:
        _same_type(c, op, "residual and result", rest[0], result)


def _rope(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    x, pos, result = types
    attr = op.attributes["inv_freq"]
    if not c.check(isinstance(attr, ir.DenseF32ArrayAttr) and len(ir.DenseF32ArrayAttr(attr)) > 0, op,
                   "'inv_freq' must be a non-empty array<f32: ...>"):
        return
    head_dim = 2 * len(ir.DenseF32ArrayAttr(attr))
    if not _float2d(c, op, x, "x"):
        return
    c.check(x.shape[1] % head_dim == 0, op,
            f"x width {x.shape[1]} is not a multiple of the head dim {head_dim} (2 * len(inv_freq))")
    _positions(c, op, pos, x.shape[0])
    _same_type(c, op, "result and x", result, x)


def _attention(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    q, kc, vc, pos, result = types
    head_dim = ir.IntegerAttr(op.attributes["head_dim"]).value
    if not (_float2d(c, op, q, "q")
            and c.check(kc.rank == 3, op, f"k_cache must be 3-D [batch, seq, kv_heads * head_dim], got {kc}")
            and _same_type(c, op, "k_cache and v_cache", kc, vc)
            and c.check(head_dim > 0, op, "'head_dim' must be positive")):
        return
    c.check(kc.shape[0] > 0 and q.shape[0] % kc.shape[0] == 0, op,
            f"q rows ({q.shape[0]}) must be a multiple of the cache batch ({kc.shape[0]}): "
            f"every sequence has the same number of query rows")
    c.check(_elt(kc) == _elt(q), op, f"cache element type {_elt(kc)} differs from q's {_elt(q)}")
    if c.check(q.shape[1] % head_dim == 0 and kc.shape[2] % head_dim == 0, op,
               f"head_dim {head_dim} must divide the q width {q.shape[1]} and the cache width {kc.shape[2]}"):
        hq, hkv = q.shape[1] // head_dim, kc.shape[2] // head_dim
        c.check(hq % hkv == 0, op, f"kv heads ({hkv}) must divide query heads ({hq})")
    c.check(ir.FloatAttr(op.attributes["scale"]).value > 0, op, "'scale' must be positive")
    _positions(c, op, pos, q.shape[0])
    _same_type(c, op, "result and q", result, q)


def _kv_append(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    cache, new, pos, result = types
    if not (c.check(cache.rank == 3, op, f"cache must be 3-D [batch, seq, width], got {cache}")
            and c.check(new.rank == 2, op, f"new must be 2-D [batch, width], got {new}")):
        return
    rows = new.shape[0]
    c.check(new.shape[1] == cache.shape[2] and rows > 0 and rows % max(cache.shape[0], 1) == 0
            and _elt(new) == _elt(cache), op,
            f"new must be tensor<Rx{cache.shape[2]}x{_elt(cache)}>, R a multiple of the cache batch "
            f"{cache.shape[0]}, to append to {cache}, got {new}")
    _positions(c, op, pos, rows)
    _same_type(c, op, "result and cache", result, cache)


def _elementwise(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    for t in types[1:]:
        if not _same_type(c, op, "operands and result", types[0], t):
            return
    _float2d(c, op, types[0], "operand")


def _argmax(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    logits, result = types
    if _float2d(c, op, logits, "logits"):
        c.check(result.rank == 1 and _elt(result) in INTS and result.shape[0] == logits.shape[0], op,
                f"result must be a 1-D i32/i64 tensor of length {logits.shape[0]}, got {result}")


def _sample(c: _Checker, op):
    types = _operands(c, op)
    if types is None:
        return
    logits, pos, params, seeds, result = types
    if not _float2d(c, op, logits, "logits"):
        return
    batch = logits.shape[0]
    _positions(c, op, pos, batch)
    c.check(params.rank == 2 and _elt(params) == "f32" and params.shape == [batch, 4], op,
            f"params must be tensor<{batch}x4xf32> (temperature, top_k, top_p, min_p per row), got {params}")
    c.check(seeds.rank == 1 and _elt(seeds) in INTS and seeds.shape[0] == batch, op,
            f"seeds must be a 1-D i32/i64 tensor of length {batch}, got {seeds}")
    c.check(result.rank == 1 and _elt(result) in INTS and result.shape[0] == batch, op,
            f"result must be a 1-D i32/i64 tensor of length {batch}, got {result}")


_GRAPH_RULES = {
    "weight": _named, "state": _named, "embedding": _embedding, "rmsnorm": _rmsnorm,
    "linear": _linear, "rope": _rope, "attention": _attention, "kv_append": _kv_append,
    "silu_mul": _elementwise, "add": _elementwise, "allreduce": _elementwise, "argmax": _argmax,
    "sample": _sample,
}


# -------------------------------------------------------------- task level

def _attr_is(c: _Checker, op, name: str, cls, what: str) -> bool:
    return c.check(isinstance(op.attributes[name], cls), op, f"'{name}' must be {what}")


def _verify_tasks(c: _Checker, module_op: ir.Operation, ops: list[ir.Operation]) -> None:
    # Per-op attribute forms first: the TaskGraph view below relies on them.
    kernels = []
    for op in ops:
        a = op.attributes
        if op.name == "mpk.kernel":
            kernels.append(op)
            c.check(ir.IntegerAttr(a["num_sms"]).value > 0, op, "'num_sms' must be positive")
        elif op.name == "mpk.buffer":
            t = ir.TypeAttr(a["type"]).value
            space = ir.StringAttr(a["space"]).value
            c.check(isinstance(t, ir.RankedTensorType), op, f"'type' must be a ranked tensor type, got {t}")
            c.check(space in taskir.SPACES, op, f"unknown space '{space}' (expected one of {', '.join(taskir.SPACES)})")
            if space in ("weight", "state"):
                c.check("name" in a and isinstance(a["name"], ir.StringAttr), op,
                        f"a {space} buffer needs a 'name' string attribute (the name it is bound by)")
            if "offset" in a:
                c.check(isinstance(a["offset"], ir.IntegerAttr) and ir.IntegerAttr(a["offset"]).value >= 0,
                        op, "'offset' must be a non-negative integer")
        elif op.name == "mpk.event":
            c.check(ir.IntegerAttr(a["size"]).value > 0, op, "'size' must be positive")
            c.check(ir.IntegerAttr(a["triggers"]).value > 0, op, "'triggers' must be positive")
        elif op.name == "mpk.tasks":
            _task_group_form(c, op)
    for k in kernels[1:]:
        c.error(k, "a module holds at most one 'mpk.kernel'")
    if not c.ok:
        return
    graph = taskir.TaskGraph.from_module(module_op)
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


def _task_group_form(c: _Checker, op) -> None:
    a = op.attributes
    if not (_attr_is(c, op, "grid", ir.DenseI64ArrayAttr, "an array<i64: ...>")
            and _attr_is(c, op, "tile", ir.DenseI64ArrayAttr, "an array<i64: ...>")):
        return
    grid, tile = list(ir.DenseI64ArrayAttr(a["grid"])), list(ir.DenseI64ArrayAttr(a["tile"]))
    c.check(len(grid) == len(tile) and len(grid) > 0, op,
            f"grid (rank {len(grid)}) and tile (rank {len(tile)}) must have the same non-zero rank")
    c.check(all(x > 0 for x in grid + tile), op, "grid and tile sizes must be positive")
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
    c.check(kind in KINDS, op, f"unknown task kind '{kind}' (known: {', '.join(KINDS)})")


def _task_group_semantics(c: _Checker, graph: taskir.TaskGraph, g: taskir.TaskGroup) -> None:
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
        idx = ref.indices(g.grid_indices())
        size = graph.events[ref.event].size
        bad = np.nonzero((idx < 0) | (idx >= size))[0]
        c.check(bad.size == 0, op,
                f"'{key}' index {int(idx[bad[0]]) if bad.size else 0} of task {int(bad[0]) if bad.size else 0} "
                f"is out of range for '@{ref.event}' of size {size}")


def _trigger_counts(c: _Checker, graph: taskir.TaskGraph) -> None:
    counts = {name: np.zeros(e.size, dtype=np.int64) for name, e in graph.events.items()}
    for g in graph.groups:
        if g.trigger is not None:
            np.add.at(counts[g.trigger.event], g.trigger.indices(g.grid_indices()), 1)
    for name, e in graph.events.items():
        wrong = np.nonzero(counts[name] != e.triggers)[0]
        if wrong.size:
            i = int(wrong[0])
            c.error(e.op, f"event '@{name}' index {i} is triggered by {int(counts[name][i])} task(s) "
                          f"but declares triggers = {e.triggers}")


def _acyclic(c: _Checker, graph: taskir.TaskGraph) -> None:
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


def _schedule(c: _Checker, graph: taskir.TaskGraph) -> None:
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

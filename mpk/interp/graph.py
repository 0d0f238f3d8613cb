"""Execute mpk graph IR on the CPU, op by op, with the reference semantics of each kind (lowering/kinds).

`run_graph(module, weights, *inputs, state=state)` runs the decode step
function: `mpk.weight "name"` reads `weights[name]`, `mpk.state "name"` reads
`state[name]`, and an `mpk.kv_append` whose cache comes from an `mpk.state`
writes its result back to `state[name]`, as the runtime updates the cache in
place. Arrays are numpy (torch tensors are accepted and converted).

A tensor-parallel step (mpk-shard) runs as one of its ranks (`rank`): it reads
the rank's slice of each weight marked `mpk.shard` from the full checkpoint,
and its `mpk.allreduce` and `mpk.allgather` call `collective(op_name, parts,
residual)` with the rank's part; `run_graph_ranks` runs the N ranks together,
their collectives combining across them, each rank with the state
`shard_state` cut.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping, MutableMapping

import numpy as np
from mlir import ir

from mpk.dialects.taskir import python_value

from mpk.interp import ops
from mpk.runtime.weights import slice_of
from mpk.lowering import kinds

COLLECTIVES = ("allreduce", "allgather")


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def find_function(module, name: str = "decode_step") -> ir.Operation:
    body = module.body if isinstance(module, ir.Module) else module.regions[0].blocks[0]
    for op in body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            return op.operation
    raise KeyError(f"no function @{name} in the module")


def run_graph(module, weights: Mapping[str, object], *inputs,
              state: MutableMapping[str, np.ndarray] | None = None,
              func_name: str = "decode_step", rank: int = 0,
              collective: Callable | None = None) -> tuple[np.ndarray, ...]:
    """Run `func_name` on `inputs`; returns its results. `state` is updated in place."""
    func = find_function(module, func_name)
    block = func.regions[0].blocks[0]
    if len(inputs) != len(block.arguments):
        raise TypeError(f"@{func_name} takes {len(block.arguments)} inputs, got {len(inputs)}")
    state = {} if state is None else state
    values: dict[ir.Value, np.ndarray] = {arg: _numpy(x) for arg, x in zip(block.arguments, inputs)}
    state_of: dict[ir.Value, str] = {}  # value -> name of the state it holds

    for op in block.operations:
        op = op.operation
        if op.name == "func.return":
            return tuple(values[v] for v in op.operands)
        kind = op.name.removeprefix("mpk.")
        if kind in ("weight", "state"):
            name = ir.StringAttr(op.attributes["name"]).value
            table = weights if kind == "weight" else state
            if name not in table:
                raise KeyError(f"no {kind} named {name!r}")
            result = _numpy(table[name])
            if kind == "weight":
                result = shard(op, result, rank)
            expected = tuple(ir.RankedTensorType(op.result.type).shape)
            if result.shape != expected:
                raise ValueError(f"{kind} {name!r} has shape {result.shape}, IR expects {expected}")
            if kind == "state":
                state[name] = result  # keep the converted array: updates land there
                state_of[op.result] = name
            values[op.result] = result
            continue
        task_kind = kinds.registry().get(kind)
        if task_kind is None or (task_kind.reference is None and type(task_kind).evaluate is kinds.TaskKind.evaluate) \
                or op.name == kind:
            raise NotImplementedError(f"the graph interpreter cannot run {op.name}")
        args = [values[v] for v in op.operands]
        if kind in COLLECTIVES and collective is not None:
            values[op.results[0]] = collective(op.name, args[0], args[1] if len(args) > 1 else None)
            continue
        attrs = {name: python_value(op.attributes[name]) for name in op.attributes
                 if not name.startswith("mpk.")}          # annotations (mpk.tile, mpk.in_users), not params
        element = ir.RankedTensorType(op.results[0].type).element_type
        if isinstance(element, ir.IntegerType):        # token ids: the result's integer type
            attrs["index_dtype"] = np.dtype(f"int{ir.IntegerType(element).width}")
        results = task_kind.evaluate(args, attrs)
        results = results if isinstance(results, tuple) else (results,)
        for operand, result in task_kind.in_place:
            if op.operands[operand] in state_of:          # the state takes the new value
                name = state_of[op.operands[operand]]
                state[name] = results[result]
                state_of[op.results[result]] = name
        values.update(zip(op.results, results))
    raise ValueError(f"@{func_name} has no return")


def shard(op: ir.Operation, full: np.ndarray, rank: int) -> np.ndarray:
    """Rank `rank`'s slice of a weight or state (`mpk.shard = array<i64: dim, size,
    start_0, ...>`: mpk.lowering.mpk_shard), or all of it."""
    if "mpk.shard" not in op.attributes:
        return full
    return slice_of(list(ir.DenseI64ArrayAttr(op.attributes["mpk.shard"])), full, rank)


def shard_state(module, state: Mapping[str, np.ndarray], rank: int, func_name: str = "decode_step") -> dict:
    """A rank's own copy of the states it reads (its slice of each KV cache)."""
    block = find_function(module, func_name).regions[0].blocks[0]
    local = {}
    for op in block.operations:
        op = op.operation
        if op.name == "mpk.state":
            name = ir.StringAttr(op.attributes["name"]).value
            local[name] = shard(op, _numpy(state[name]), rank).copy()
    return local


def run_graph_ranks(module, weights: Mapping[str, object], *inputs,
                    states: list[MutableMapping[str, np.ndarray]]) -> list[tuple[np.ndarray, ...]]:
    """Run the ranks of one tensor-parallel step together (a thread each, one per
    state): every `mpk.allreduce` sums across the ranks, every `mpk.allgather`
    concatenates. Returns each rank's results; a rank's error is raised (the
    others stop at their next collective)."""
    ranks = len(states)
    barrier, parts = threading.Barrier(ranks), [None] * ranks
    results, errors = [None] * ranks, [None] * ranks

    def run(rank: int):
        def collective(name, value, residual):
            parts[rank] = value
            barrier.wait()
            combined = ops.allgather(parts) if name == "mpk.allgather" else ops.allreduce(parts, residual)
            barrier.wait()                      # every rank has read the parts before the next
            return combined
        try:
            results[rank] = run_graph(module, weights, *inputs, state=states[rank], rank=rank,
                                      collective=collective)
        except threading.BrokenBarrierError:
            pass
        except Exception as e:                  # reported below; the others must not wait for it
            errors[rank] = e
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(ranks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results

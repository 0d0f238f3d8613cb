"""Execute mpk graph IR on the CPU, op by op, with the reference semantics of each kind (lowering/kinds).

`run_graph(module, weights, *inputs, state=state)` runs the decode step
function: `mpk.weight "name"` reads `weights[name]`, `mpk.state "name"` reads
`state[name]`, and an `mpk.kv_append` whose cache comes from an `mpk.state`
writes its result back to `state[name]`, as the runtime updates the cache in
place. Arrays are numpy (torch tensors are accepted and converted).
"""

from __future__ import annotations

from typing import Mapping, MutableMapping

import numpy as np
from mlir import ir

from mpk.dialects.taskir import python_value

from mpk.lowering import kinds


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
              func_name: str = "decode_step") -> tuple[np.ndarray, ...]:
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

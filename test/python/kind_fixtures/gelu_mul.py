"""gelu_mul: `gelu(gate) * up` (tanh approximation), a task kind defined in this one
file, as README.md "Adding a task kind" describes: its graph op, its reference
semantics, its tiles (the elementwise defaults) and its device lowering.
test_kind_plugin.py takes it through the whole pipeline without touching any
other file of mpk."""

from __future__ import annotations

import math

import numpy as np
from mlir.dialects import arith

from mpk.lowering.kinds import TaskKind
from mpk.lowering.kernels.emit import byte_width, widest_vector

C = math.sqrt(2 / math.pi)


def gelu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    g = np.asarray(gate, np.float64)
    return (0.5 * g * (1 + np.tanh(C * (g + 0.044715 * g ** 3))) * up).astype(gate.dtype)


class GeluMul(TaskKind):
    name = "gelu_mul"
    reference = staticmethod(gelu_mul)
    graph_op_irdl = """
  irdl.operation @gelu_mul {
    %g = irdl.base "!builtin.tensor"
    %u = irdl.base "!builtin.tensor"
    irdl.operands(gate: %g, up: %u)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }
"""

    def emit(self, e, g, task, views):
        gate, up, y = views
        vec = widest_vector(g.tile[1], g.domain[1], element_bytes=byte_width(y.element))

        def gelu(x):   # x * sigmoid(2u) = 0.5 x (1 + tanh(u)), u = C (x + 0.044715 x^3)
            u = arith.mulf(e.f32(2 * C), arith.addf(x, arith.mulf(e.f32(0.044715), arith.mulf(x, arith.mulf(x, x)))))
            t = e.exp2(arith.mulf(u, e.f32(-1 / math.log(2))))
            return arith.divf(x, arith.addf(t, e.f32(1.0)))

        def body(r, c):
            value = e.map(gelu, e.to_f32(gate.load(r, c, n=vec)))
            y.store(e.to(y.element, arith.mulf(value, e.to_f32(up.load(r, c, n=vec)))), r, c)
        e.for_each_vector(task, g.grid, g.tile, g.domain, vec, body)

"""linear: `x @ w^T (+ residual)`, a tile of output columns (weight rows).

Inputs x [R, K], w [N, K], then the residual [R, N] (if any), then what the
fusion passes fused in, each named by a param: the weight of a layer norm x
goes through first (`norm_eps`: mpk-fuse-norm), `up` of a silu_mul whose gate
x is (`silu_gate`: mpk-fuse-silu), a prefill chunk's `row_counts` (added by
mpk-partition). The graph op and its task group take the same operands. Over many rows a task is a
GEMM tile on the matrix units, else a matrix-vector tile over all rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mpk.dialects import verify as v
from mpk.interp import ops

from . import ROW_COUNTS, Params, TaskKind, cols, copy, full, volume, zeros

# From this many rows a linear is a GEMM on the matrix units (wgmma: 64 rows per
# warpgroup) in tiles of gemm_tile_rows(rows) rows x up to GEMM_MAX_COLS columns.
GEMM_MIN_ROWS = 64
GEMM_MAX_COLS = 256


def gemm_tile_rows(rows: int) -> int | None:
    """Rows of a linear's GEMM tile, or None for the matrix-vector path."""
    if rows < GEMM_MIN_ROWS:
        return None
    return 128 if rows >= 128 else 64


def gemm_boxes(op, out):
    """The boxes of x (the tile's rows, all of K) and of w (the tile's columns as
    rows of w, all of K) that an output box `out` of x @ w^T reads."""
    lo, hi = out
    x = full(lo.shape[0], op.inputs[0])
    x[0][:, 0], x[1][:, 0] = lo[:, 0], hi[:, 0]
    w = cols(lo[:, 1], hi[:, 1], None, op.inputs[1][::-1])
    return x, (w[0][:, ::-1].copy(), w[1][:, ::-1].copy())   # rows of w are output columns


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinearParams(Params):
    norm_eps: float | None = None     # x goes through a layer norm first (its weight an input)
    silu_gate: bool = False           # x is a silu_mul's gate, its `up` an input: x = silu(x) * up
    row_counts: bool = False          # a prefill chunk's rows per sequence, the last input
    unroll: int | None = None         # weight loads in flight per lane (tuning: kernels/linear.py)
    staged_weights: bool = False      # the tile's weight rows wait in shared memory (mpk-stage-weights)
    early_weights: bool = False       # the first weights in flight across a flagged x's poll (mpk-data-flags)
    ranks: int | None = None          # the tile goes into every rank's slots [ranks, B, N] of an
                                      # allreduce (a row-parallel product, mpk-partition); `peers` last


def linear_roles(p: LinearParams, count: int) -> list[str]:
    """What each of a linear's `count` inputs is: x, w, then the residual (if
    any), the weight of a fused layer norm (`norm_eps`: x is normalized first),
    `up` of a fused silu_mul (`silu_gate`: x is its gate, the linear's input
    is silu(x) * up), a prefill chunk's `row_counts`, the io buffer `peers` (`ranks`:
    the tile is stored into every rank's slots)."""
    fused = [role for role, present in (("norm", p.norm_eps is not None), ("up", p.silu_gate),
                                        (ROW_COUNTS, p.row_counts), ("peers", p.ranks is not None)) if present]
    return ["x", "w"] + ["residual"] * (count - 2 - len(fused)) + fused


class Linear(TaskKind):
    name = "linear"
    params = LinearParams
    reference = staticmethod(ops.linear)

    def elementwise(self, op):
        return False

    def tile_unit(self, op):
        tm = gemm_tile_rows(op.domain[0])
        return (1, 8) if tm is None else (tm, 64)

    def fixed_tile(self, op):
        tm = gemm_tile_rows(op.domain[0])
        return (op.domain[0] if tm is None else tm, None)

    def max_tile(self, op):
        return (None, None if gemm_tile_rows(op.domain[0]) is None else GEMM_MAX_COLS)

    def mma_flops(self, op, out):
        return self.flops(op, out) if gemm_tile_rows(op.domain[0]) else zeros(out)

    def writes(self, op, out):
        """The tile, or (`ranks`) every rank's slot of it."""
        if op.params.get("ranks") is None:
            return out
        lo, hi = out
        n = lo.shape[0]
        return (np.concatenate([np.zeros((n, 1), np.int64), lo], 1),
                np.concatenate([np.full((n, 1), op.params["ranks"], np.int64), hi], 1))

    def trigger_ranks(self, params):
        return "every" if params.get("ranks") is not None else None

    def reads(self, op, out):
        """x (the tile's rows), the weight rows of the tile, the residual tile (if any),
        the whole norm weight, all of `up` (the rows of x), row_counts, peers."""
        x, w = gemm_boxes(op, out)
        box = {"x": x, "w": w, "residual": copy(out), "up": copy(x)}
        return [box[role] if role in box else full(out[0].shape[0], shape)
                for role, shape in zip(linear_roles(self.typed(op.params), len(op.inputs)), op.inputs)]

    def flops(self, op, out):
        return 2 * volume(out) * op.inputs[0][1]

    def graph_check(self, c, op, types, p):
        self.check(c, op, types[:-1], types[-1:], p)

    @staticmethod
    def product(c, op, x, w, result, residual=None) -> None:
        """x @ w^T (+ residual) -> result: the types of a matrix product."""
        if not (v.float2d(c, op, x, "x") and c.check(w.rank == 2, op, f"weight must be 2-D [out, in], got {w}")):
            return
        c.check(w.shape[1] == x.shape[1], op,
                f"weight has {w.shape[1]} input features but x has {x.shape[1]}")
        c.check(v.elt(w) == v.elt(x), op, f"weight element type {v.elt(w)} differs from x's {v.elt(x)}")
        expected = f"tensor<{x.shape[0]}x{w.shape[0]}x{v.elt(x)}>"
        c.check(str(result) == expected, op, f"result must be {expected}, got {result}")
        if residual is not None:
            v.same_type(c, op, "residual and result", residual, result)

    def check(self, c, op, ins, outs, p):
        roles = linear_roles(p, len(ins))
        fused = len([r for r in roles if r not in ("x", "w", "residual")])
        if not v.arity(c, op, self.name, ins, outs, (2 + fused, 3 + fused), 1,
                       " (x, w, [residual], then the fused norm weight, up, row_counts of its params)"):
            return
        role = dict(zip(roles, ins))
        x, result = role["x"], outs[0]
        if p.ranks is not None:                  # every rank's slots of the product
            if not c.check(result.rank == 3 and result.shape[0] == p.ranks and "residual" not in role, op,
                           f"a linear storing into {p.ranks} ranks' slots takes no residual and writes "
                           f"[{p.ranks}, B, N] slots, got {result}"):
                return
            v.ints(c, op, role["peers"], p.ranks + 1, "peers")
            from mlir import ir
            result = ir.RankedTensorType.get(result.shape[1:], result.element_type)
        errors = c.errors
        self.product(c, op, x, role["w"], result, role.get("residual"))
        if c.errors != errors:
            return
        if "norm" in role:
            v.fused_norm(c, op, role["norm"], x, p)
        if "up" in role:
            v.same_type(c, op, "up and x", role["up"], x)
        if ROW_COUNTS in role:
            v.row_counts(c, op, role[ROW_COUNTS], x.shape[0])

    def natural_domain(self, ins, outs):
        shape = list(outs[0].shape)
        return (shape[1:], "the slots' [B, N]") if len(shape) == 3 else (shape, "the first output")

    def evaluate(self, operands, attrs):
        p = self.typed(attrs)
        role = dict(zip(linear_roles(p, len(operands)), operands))
        x = role["x"]
        if "norm" in role:
            x = ops.rmsnorm(x, role["norm"], p.norm_eps)
        if "up" in role:
            x = ops.silu_mul(x, role["up"])
        return ops.linear(x, role["w"], role.get("residual"))

    def run_task(self, task):
        result = self.evaluate(task.tiles(), task.params)
        if task.params.get("ranks") is not None:
            task.push(result)
        else:
            task.write_output(result)

    def emit(self, e, g, task, views):
        from mpk.lowering.kernels import linear
        linear.linear(e, g, task, views)

    def tensor_maps(self, g, threads):
        from mpk.lowering.kernels import gemm
        return gemm.tensor_maps(g, threads)

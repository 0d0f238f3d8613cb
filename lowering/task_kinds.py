"""What a task of each kind touches, and what it costs.

One `Kind` per task kind (dialects/README.md, "Task kinds and their tiles"):
which tiles a partition may choose, which box of every input a task reads
for its output tile, which box of its output buffer it writes, and its flops.
Boxes are half-open `[lo, hi)` per dimension, computed for all tasks of a
group at once as int64 arrays of shape [tasks, rank], so partition, event
building and scheduling stay vectorized at 10^5 tasks.

Reads are conservative where they depend on data: an embedding task reads all
table rows, attention reads all cache rows and kv_append may write any row
(the row is `positions[b]`, known only at run time). The task interpreter
checks the exact rows.

Not a pass: the partition, event, schedule and memory passes share it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# One box per task: (lo, hi), each int64 [tasks, rank].
Boxes = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Target:
    """The machine the cost model prices tasks on."""
    arch: str
    num_sms: int
    hbm_bytes_per_s: float    # achievable device read bandwidth, shared by all SMs
    flops_per_sm: float       # fp32 FMA throughput of one SM (decode GEMVs use CUDA cores)
    mma_flops_per_sm: float   # bf16 matrix-unit throughput of one SM (prefill GEMM tiles)
    task_overhead_s: float    # wait on an event + dispatch + trigger, per task

    @property
    def sm_bytes_per_s(self) -> float:
        return self.hbm_bytes_per_s / self.num_sms

    def task_seconds(self, nbytes, flops, mma_flops=0):
        """Time of one task when every SM is busy (bandwidth split evenly)."""
        compute = np.asarray(flops) / self.flops_per_sm + np.asarray(mma_flops) / self.mma_flops_per_sm
        return self.task_overhead_s + np.maximum(np.asarray(nbytes) / self.sm_bytes_per_s, compute)


# H100 SXM: 3.35 TB/s peak HBM3, ~3.0 TB/s streamed (bench/NOTES.md); 132 SMs at 1.98 GHz;
# wgmma at about 80% of its 989 TFLOP/s dense bf16 peak.
ARCHS = {"sm_90": dict(hbm_bytes_per_s=3.0e12, flops_per_sm=128 * 2 * 1.98e9,
                       mma_flops_per_sm=0.8 * 989e12 / 132, task_overhead_s=1.5e-6)}


def target(arch: str, num_sms: int) -> Target:
    if arch not in ARCHS:
        raise KeyError(f"unknown arch '{arch}' (known: {', '.join(ARCHS)})")
    return Target(arch, num_sms, **ARCHS[arch])


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


def volume(box: Boxes) -> np.ndarray:
    lo, hi = box
    return np.prod(np.maximum(hi - lo, 0), axis=1)


def _full(n: int, shape) -> Boxes:
    return np.zeros((n, len(shape)), np.int64), np.tile(np.asarray(shape, np.int64), (n, 1))


def sequences(lo_rows, hi_rows, rows: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The sequences [lo, hi) holding rows [lo_rows, hi_rows) of an op with `rows`
    rows over `batch` sequences (row r is sequence r // (rows / batch))."""
    per = max(rows // max(batch, 1), 1)
    return lo_rows // per, -(-hi_rows // per)


def _cols(lo, hi, rows: Boxes | None, shape) -> Boxes:
    """The box [rows of `rows` or all, columns lo..hi] of a 2-D operand."""
    n = lo.shape[0]
    blo, bhi = _full(n, shape)
    if rows is not None:
        blo[:, 0], bhi[:, 0] = rows[0], rows[1]
    blo[:, -1], bhi[:, -1] = lo, hi
    return blo, bhi


class Kind:
    """Defaults fit an elementwise op on [B, N] activations."""
    name = ""

    def tile_unit(self, op: OpInfo) -> tuple[int, ...]:
        """Granularity of a tile per domain dim; a tile is a multiple of it or the whole dim."""
        return (1, 8)

    def fixed_tile(self, op: OpInfo) -> tuple[int | None, ...]:
        """Per domain dim, a tile size the kind requires (None: the cost model picks)."""
        return (op.domain[0], None)

    def elementwise(self, op: OpInfo) -> bool:
        """Cheap per-element ops take their producer's tile, so events stay per tile."""
        return True

    def reads(self, op: OpInfo, out: Boxes) -> list[Boxes]:
        lo, hi = out
        return [(lo.copy(), hi.copy()) for _ in op.inputs]

    def writes(self, op: OpInfo, out: Boxes) -> Boxes:
        return out

    def output_writes(self, op: OpInfo, out: Boxes, shapes: list) -> list[Boxes]:
        """The box of every output buffer (`shapes`) a task writes: `writes` for the
        first; further outputs (argmax's tokens and positions) the same rows as its
        tile where their shape is the domain, else all of them."""
        n = out[0].shape[0]
        return [self.writes(op, out)] + [out if tuple(shape) == tuple(op.domain) else _full(n, shape)
                                         for shape in shapes[1:]]

    def traffic(self, op: OpInfo, out: Boxes) -> list[Boxes]:
        """The boxes a task really loads (for its cost); `reads` when they are not data-dependent."""
        return self.reads(op, out)

    def flops(self, op: OpInfo, out: Boxes) -> np.ndarray:
        return 2 * volume(out)

    def mma_flops(self, op: OpInfo, out: Boxes) -> np.ndarray:
        """Flops a task runs on the matrix units (priced at their rate, not the CUDA cores')."""
        return np.zeros(out[0].shape[0], np.int64)

    def max_tile(self, op: OpInfo) -> tuple[int | None, ...]:
        """Per domain dim, the largest tile the kind's lowering takes (None: any)."""
        return (None,) * len(op.domain)


class Embedding(Kind):
    name = "embedding"

    def reads(self, op, out):
        lo, hi = out
        ids = (lo[:, :1].copy(), hi[:, :1].copy())
        table = _cols(lo[:, 1], hi[:, 1], None, op.inputs[1])  # the rows are data
        return [ids, table]

    def traffic(self, op, out):
        ids, (tlo, thi) = self.reads(op, out)
        thi[:, 0] = out[1][:, 0] - out[0][:, 0]                  # one table row per sequence
        return [ids, (tlo, thi)]

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)


class RMSNorm(Kind):
    name = "rmsnorm"

    def tile_unit(self, op):
        return (1, op.inputs[1][0])

    def fixed_tile(self, op):
        # A whole-row norm (the layer norm) is one reduction per row: at decode batch one
        # task of all rows, with many rows (prefill) tiles of rows. Per-head norms split
        # by heads and keep all rows.
        if op.inputs[1][0] != op.domain[1]:
            return (op.domain[0], None)
        return (None if op.domain[0] > DECODE_ROWS else op.domain[0], op.domain[1])

    def elementwise(self, op):
        return op.inputs[1][0] != op.domain[1]

    def reads(self, op, out):
        lo, hi = out
        n = lo.shape[0]
        return [(lo.copy(), hi.copy()), _full(n, op.inputs[1])]

    def flops(self, op, out):
        return 4 * volume(out)


# At most this many rows, an op is a decode step's (one row per sequence): a linear
# is a matrix-vector product over all rows at once, a layer norm one task.
DECODE_ROWS = 8
# From this many rows a linear is a GEMM on the matrix units (wgmma: 64 rows per
# warpgroup) in tiles of GEMM_ROWS[i] rows x up to GEMM_MAX_COLS columns.
GEMM_MIN_ROWS = 64
GEMM_MAX_COLS = 256


def gemm_tile_rows(rows: int) -> int | None:
    """Rows of a linear's GEMM tile, or None for the matrix-vector path."""
    if rows < GEMM_MIN_ROWS:
        return None
    return 128 if rows >= 128 else 64


def _gemm_boxes(op, out):
    """The boxes of x (the tile's rows, all of K) and of w (the tile's columns as
    rows of w, all of K) that an output box `out` of x @ w^T reads."""
    lo, hi = out
    n = lo.shape[0]
    x = (np.column_stack([lo[:, 0], np.zeros(n, np.int64)]),
         np.column_stack([hi[:, 0], np.full(n, op.inputs[0][1])]))
    w = _cols(lo[:, 1], hi[:, 1], None, op.inputs[1][::-1])
    return x, (w[0][:, ::-1].copy(), w[1][:, ::-1].copy())   # rows of w are output columns


class Linear(Kind):
    name = "linear"

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
        return self.flops(op, out) if gemm_tile_rows(op.domain[0]) else np.zeros(out[0].shape[0], np.int64)

    def reads(self, op, out):
        """x (all of it), the weight rows of the tile, the residual tile (if any),
        the whole norm weight (if the layer norm before it is fused: `norm_eps`),
        all of `up` (if x is the gate of a fused silu_mul: `silu_gate`)."""
        lo, hi = out
        n = lo.shape[0]
        x, w = _gemm_boxes(op, out)
        box = {"x": x, "w": w, "residual": (lo.copy(), hi.copy()), "up": (x[0].copy(), x[1].copy())}
        return [box[role] if role in box else _full(n, shape)
                for role, shape in zip(linear_roles(op.params, len(op.inputs)), op.inputs)]

    def flops(self, op, out):
        return 2 * volume(out) * op.inputs[0][1]


class GateUp(Linear):
    """silu(x @ w_gate^T) * (x @ w_up^T), an MLP's two projections and their product
    in one task: inputs x [R, K], w_gate and w_up [N, K], then (decode rows) the
    weight of a fused layer norm (`norm_eps`) or (prefill) `row_counts`. Over many
    rows a task is a GEMM tile, else the linear's matrix-vector tile."""
    name = "gate_up"

    def fixed_tile(self, op):
        # GEMM: both weights' columns in each warpgroup (kernels/gemm.py)
        return (128, None) if gemm_tile_rows(op.domain[0]) else super().fixed_tile(op)

    def tile_unit(self, op):
        return (128, 64) if gemm_tile_rows(op.domain[0]) else super().tile_unit(op)

    def max_tile(self, op):
        return (None, GATE_UP_MAX_COLS) if gemm_tile_rows(op.domain[0]) else super().max_tile(op)

    def reads(self, op, out):
        n = out[0].shape[0]
        x, w = _gemm_boxes(op, out)
        return [x, w, (w[0].copy(), w[1].copy())] + [_full(n, shape) for shape in op.inputs[3:]]

    def flops(self, op, out):
        return 4 * volume(out) * op.inputs[0][1]


# Two accumulators of 64 x N a warpgroup: N = 128 at most (the prefill program's 255 registers).
GATE_UP_MAX_COLS = 128


def linear_roles(params: dict, count: int) -> list[str]:
    """What each of a linear's `count` inputs is: x, w, then the residual (if
    any), the weight of a fused layer norm (`norm_eps`: x is normalized first),
    `up` of a fused silu_mul (`silu_gate`: x is its gate, the linear's input
    is silu(x) * up)."""
    fused = [role for role, param in (("norm", "norm_eps"), ("up", "silu_gate"), (ROW_COUNTS, ROW_COUNTS))
             if param in params]
    return ["x", "w"] + ["residual"] * (count - 2 - len(fused)) + fused


# A prefill step's io input `row_counts` [B]: the prompt rows of each sequence in the
# chunk (the rest is padding). Groups with this unit param take it as their last input
# and skip the tiles of padding rows (their outputs there are never read).
ROW_COUNTS = "row_counts"


def has_residual(op: OpInfo) -> bool:
    return "residual" in linear_roles(op.params, len(op.inputs))


class Rope(Kind):
    name = "rope"

    def tile_unit(self, op):
        return (1, 2 * len(op.params["inv_freq"]))

    def reads(self, op, out):
        lo, hi = out
        return [(lo.copy(), hi.copy()), (lo[:, :1].copy(), hi[:, :1].copy())]

    def flops(self, op, out):
        return 6 * volume(out)


class Attention(Kind):
    name = "attention"

    def _group_width(self, op):
        head_dim = op.params["head_dim"]
        q_heads, kv_heads = op.inputs[0][1] // head_dim, op.inputs[1][-1] // head_dim
        return q_heads // kv_heads * head_dim

    def tile_unit(self, op):
        return (1, self._group_width(op))

    def fixed_tile(self, op):
        return (1, self._group_width(op))   # one batch row, one KV head group

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        ratio = self._group_width(op) // op.params["head_dim"]
        rows = (lo[:, 0], hi[:, 0])
        cache = _cols(lo[:, 1] // ratio, -(-hi[:, 1] // ratio), rows, op.inputs[1])
        positions = (lo[:, :1].copy(), hi[:, :1].copy())
        return [(lo.copy(), hi.copy()), cache, (cache[0].copy(), cache[1].copy()), positions]

    def flops(self, op, out):
        seq = op.inputs[1][1]
        return 4 * volume(out) * seq

    def splits(self, op: OpInfo, target: Target, min_rows: int | None = None) -> int:
        """KV splits of the op (split-KV decoding, `attention_partial` + `attention_combine`).

        One task per (sequence, KV head) leaves most SMs idle at small batch
        while it streams the whole cache (8 tasks for Qwen3 at batch 1), and
        attention sits on the critical path of every layer. So the cache rows
        are split until the tasks fill about one wave of SMs, keeping at least
        `min_rows` (default MIN_SPLIT_ROWS) cache rows per split of a full cache.
        """
        batch, seq = op.inputs[1][0], op.inputs[1][1]
        groups = batch * (op.inputs[1][2] // op.params["head_dim"])
        return max(1, min(target.num_sms // groups, seq // (min_rows or MIN_SPLIT_ROWS)))


MIN_SPLIT_ROWS = 128


def partial_width(head_dim: int) -> int:
    """Floats per query head in an `attention_partial` output: D accumulators, the
    max and the sum, two floats of padding (rows of 16-byte multiples)."""
    return head_dim + 4


class AttentionPartial(Attention):
    """Split `p` of P of the cache rows 0..pos[b] of one KV head group: output
    `[B, P, Hq * (D + 4)]` f32, per query head the unnormalized output, the
    running max (log2 domain) and the sum of exponentials (dialects/README.md).

    With the param `inv_freq` the group's `rope_append` is fused in: the inputs
    are q, k, v (before QK-norm and rope), the two caches, positions and (with
    `eps`) the q and k norm weights, and the caches are outputs too (row
    positions[b], written by the split that holds it)."""
    name = "attention_partial"

    def _group_width(self, op):
        head_dim = op.params["head_dim"]
        q_heads, kv_heads = op.inputs[0][1] // head_dim, op.inputs[1][-1] // head_dim
        return q_heads // kv_heads * partial_width(head_dim)

    def tile_unit(self, op):
        return (1, 1, self._group_width(op))

    def fixed_tile(self, op):
        return (1, 1, self._group_width(op))

    def _boxes(self, op, out):
        """q's columns of the tile's query heads, the k/v columns of its KV head
        (of k and v, or of a cache: `shape`), the rows of its sequence."""
        lo, hi = out
        head_dim = op.params["head_dim"]
        width = partial_width(head_dim)
        heads = (lo[:, 2] // width, -(-hi[:, 2] // width))
        ratio = (op.inputs[0][1] // head_dim) // (op.inputs[1][-1] // head_dim)
        rows = (lo[:, 0], hi[:, 0])
        q = _cols(heads[0] * head_dim, heads[1] * head_dim, rows, op.inputs[0])
        kv_cols = (heads[0] // ratio * head_dim, -(-heads[1] // ratio) * head_dim)
        return q, lambda shape: _cols(*kv_cols, rows, shape)

    def reads(self, op, out):
        lo, hi = out
        q, kv = self._boxes(op, out)
        positions = (lo[:, :1].copy(), hi[:, :1].copy())
        if "inv_freq" not in op.params:
            # All rows of the cache: the split's row range depends on pos[b] (data).
            return [q, kv(op.inputs[1]), kv(op.inputs[2]), positions]
        return [q, kv(op.inputs[1]), kv(op.inputs[2]), kv(op.inputs[3]), kv(op.inputs[4]), positions] + \
            [_full(lo.shape[0], shape) for shape in op.inputs[6:]]

    def output_writes(self, op, out, shapes):
        _, kv = self._boxes(op, out)
        return [out] + [kv(shape) for shape in shapes[1:]]     # cache row positions[b]: data

    def traffic(self, op, out):
        boxes = self.reads(op, out)
        splits = op.output[1]
        for c in ((3, 4) if "inv_freq" in op.params else (1, 2)):
            lo, hi = boxes[c]
            hi = hi.copy()
            hi[:, 1] = -(-op.inputs[c][1] // splits)          # one split of a full cache
            boxes[c] = (lo, hi)
        return boxes

    def flops(self, op, out):
        cache = op.inputs[3] if "inv_freq" in op.params else op.inputs[1]
        return 4 * volume(out) * cache[1] // op.output[1]


class AttentionSplit(AttentionPartial):
    """An `attention_partial` whose last split merges: after writing its partial, a
    task counts itself in `arrivals[b, kv]`; the one that completes the count merges
    the P partials of its KV group into the attention output (as `attention_combine`
    would) and resets the counter. One event hop and one task group per layer less
    than partial + combine, and no task waits for a merge it could do itself.

    Outputs: the partials, [the two caches: with `inv_freq`], the attention output
    `[B, Hq * D]`, the arrival counters `[B, Hkv]` i32 (space `counters`). Every split
    declares the output columns of its group's heads: whichever finishes last writes
    them, so a reader waits for all P."""
    name = "attention_split"

    def output_writes(self, op, out, shapes):
        writes = super().output_writes(op, out, shapes[:-2])
        lo, hi = out
        width, head_dim = partial_width(op.params["head_dim"]), op.params["head_dim"]
        heads = (lo[:, 2] // width, -(-hi[:, 2] // width))
        ratio = (op.inputs[0][1] // head_dim) // (op.inputs[1][-1] // head_dim)   # query heads per KV head
        rows = (lo[:, 0], hi[:, 0])
        merged = _cols(heads[0] * head_dim, heads[1] * head_dim, rows, shapes[-2])
        arrivals = _cols(heads[0] // ratio, heads[1] // ratio, rows, shapes[-1])
        return writes + [merged, arrivals]


class AttentionCombine(Kind):
    """Merges the P partial results of whole query heads into the attention output."""
    name = "attention_combine"

    def tile_unit(self, op):
        return (1, op.params["head_dim"])

    def fixed_tile(self, op):
        return (1, None)

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        head_dim = op.params["head_dim"]
        width = partial_width(head_dim)
        n = lo.shape[0]
        plo, phi = _full(n, op.inputs[0])
        plo[:, 0], phi[:, 0] = lo[:, 0], hi[:, 0]
        plo[:, 2], phi[:, 2] = lo[:, 1] // head_dim * width, -(-hi[:, 1] // head_dim) * width
        return [(plo, phi)]

    def flops(self, op, out):
        return 4 * volume(out) * op.inputs[0][1]


class KVAppend(Kind):
    name = "kv_append"

    def tile_unit(self, op):
        # Whole heads of the attention that reads the cache (partition passes
        # its head_dim as a hint), so each attention task waits on few appends.
        return (1, op.params.get("head_dim", 8))

    def reads(self, op, out):
        lo, hi = out
        n = lo.shape[0]
        cache = np.zeros((n, 3), np.int64), np.zeros((n, 3), np.int64)   # reads nothing of the cache
        return [cache, (lo.copy(), hi.copy()), (lo[:, :1].copy(), hi[:, :1].copy())]

    def writes(self, op, out):
        lo, hi = out
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], op.output[0])   # cache row positions[r]: data
        return _cols(lo[:, 1], hi[:, 1], seqs, op.output)

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)


class RopeAppend(Kind):
    """QK-norm (optional), rope and the KV append of one KV head group, fused.

    Inputs q [B, Hq*D], k and v [B, Hkv*D], the two caches [B, S, Hkv*D],
    positions, then (with the param `eps`) the q and k norm weights [D];
    outputs the roped q and the two caches (in place, row positions[b]). A
    task takes one sequence and one KV head: its Hq/Hkv query heads, the k
    head and the v head. `mpk-partition` builds it from the rmsnorm, rope and
    kv_append ops that feed an attention (three event hops become one).
    """
    name = "rope_append"

    def _group_width(self, op):
        head_dim = op.params["head_dim"]
        return op.inputs[0][1] // (op.inputs[1][1] // head_dim)

    def tile_unit(self, op):
        return (1, self._group_width(op))

    def fixed_tile(self, op):
        # One KV head group; one row at decode batch, tiles of rows in a prefill.
        return (1 if op.inputs[0][0] <= op.inputs[3][0] else None, self._group_width(op))

    def elementwise(self, op):
        return False

    def _kv_cols(self, op, out) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = out
        width, head_dim = self._group_width(op), op.params["head_dim"]
        return lo[:, 1] // width * head_dim, -(-hi[:, 1] // width) * head_dim

    def reads(self, op, out):
        lo, hi = out
        n, rows = lo.shape[0], (lo[:, 0], hi[:, 0])
        kv = _cols(*self._kv_cols(op, out), rows, op.inputs[1])
        nothing = (np.zeros((n, 3), np.int64), np.zeros((n, 3), np.int64))   # of the caches
        boxes = [(lo.copy(), hi.copy()), kv, (kv[0].copy(), kv[1].copy()), nothing,
                 (nothing[0].copy(), nothing[1].copy()), (lo[:, :1].copy(), hi[:, :1].copy())]
        return boxes + [_full(n, shape) for shape in op.inputs[6:]]

    def output_writes(self, op, out, shapes):
        lo, hi = out
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], shapes[1][0])
        cache = _cols(*self._kv_cols(op, out), seqs, shapes[1])   # rows positions[r]: data
        return [out, cache, (cache[0].copy(), cache[1].copy())]

    def flops(self, op, out):
        return 12 * volume(out)


class AttentionPrefill(Attention):
    """Causal attention of a chunk of query rows of one sequence (a prefill):
    q [R, Hq*D] with R = B * C rows, row r of sequence r // C at position pos[r],
    over that sequence's cache rows 0..pos[r] (the chunk's own keys appended
    before). A task takes `prefill_rows` consecutive rows of one sequence and
    one KV head with its G query heads: the matrix units' rows are (row, head)
    pairs, tq * G of them, at most PREFILL_MMA_ROWS."""
    name = "attention_prefill"

    def tile_unit(self, op):
        return (prefill_rows(op), Attention._group_width(self, op))

    def fixed_tile(self, op):
        return self.tile_unit(op)

    def reads(self, op, out):
        lo, hi = out
        ratio = Attention._group_width(self, op) // op.params["head_dim"]
        seqs = sequences(lo[:, 0], hi[:, 0], op.domain[0], op.inputs[1][0])
        cache = _cols(lo[:, 1] // ratio, -(-hi[:, 1] // ratio), seqs, op.inputs[1])
        return [(lo.copy(), hi.copy()), cache, (cache[0].copy(), cache[1].copy()),
                (lo[:, :1].copy(), hi[:, :1].copy())] + [_full(lo.shape[0], s) for s in op.inputs[4:]]

    def traffic(self, op, out):
        boxes = self.reads(op, out)
        rows = op.domain[0] // op.inputs[1][0]            # a chunk reads about its own length
        for c in (1, 2):
            lo, hi = boxes[c]
            hi = hi.copy()
            hi[:, 1] = np.minimum(hi[:, 1], rows)
            boxes[c] = (lo, hi)
        return boxes

    def flops(self, op, out):
        return np.zeros(out[0].shape[0], np.int64)

    def mma_flops(self, op, out):
        # Rows of a tile see the chunk's rows up to their own (causal): half a chunk on average.
        rows = op.domain[0] // op.inputs[1][0]
        return 2 * volume(out) * rows


# Matrix-unit rows (query row, head) of an attention_prefill task: 8 warps of 16 (the
# prefill program's CTAs have 256 threads: driver.PREFILL_THREADS).
PREFILL_MMA_ROWS = 128


def prefill_rows(op) -> int:
    """Query rows per attention_prefill task: the most that fit PREFILL_MMA_ROWS
    (row, head) pairs, a multiple of 16 / G pairs per warp, dividing the chunk."""
    head_dim = op.params["head_dim"]
    group = (op.inputs[0][1] // head_dim) // (op.inputs[1][2] // head_dim)
    chunk = op.domain[0] // op.inputs[1][0]
    for rows in range(min(chunk, PREFILL_MMA_ROWS // group), 0, -1):
        if chunk % rows == 0 and rows * group % 16 == 0:
            return rows
    raise ValueError(f"a prefill chunk of {chunk} rows with {group} query heads per KV head has no "
                     "tile of whole 16-row matrix blocks: make the chunk a multiple of 16")


class SiluMul(Kind):
    name = "silu_mul"


class Add(Kind):
    name = "add"

    def flops(self, op, out):
        return volume(out)


class AllReduce(Kind):
    name = "allreduce"


class Argmax(Kind):
    name = "argmax"

    def tile_unit(self, op):
        return (1,)

    def fixed_tile(self, op):
        return (1,)

    def elementwise(self, op):
        return False

    def reads(self, op, out):
        lo, hi = out
        return [_cols(np.zeros_like(lo[:, 0]), np.full_like(lo[:, 0], op.inputs[0][1]),
                      (lo[:, 0], hi[:, 0]), op.inputs[0])]

    def flops(self, op, out):
        return volume(out) * 0


class Sample(Argmax):
    """One token per row from its logits: the argmax, or a draw (mpk.sampling). Inputs
    logits [B, V], positions [B], params [B, 4], seeds [B]: a task reads its row of each."""
    name = "sample"

    def reads(self, op, out):
        lo, hi = out
        rows = (lo[:, 0], hi[:, 0])
        return [_cols(np.zeros_like(lo[:, 0]), np.full_like(lo[:, 0], shape[-1]), rows, shape)
                if len(shape) == 2 else (lo.copy(), hi.copy()) for shape in op.inputs]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Embedding(), RMSNorm(), Linear(), Rope(), Attention(), AttentionPartial(), AttentionSplit(), AttentionCombine(),
    AttentionPrefill(), KVAppend(), RopeAppend(), SiluMul(), Add(), AllReduce(), Argmax(), Sample(), GateUp())}


def tile_boxes(domain, grid, tile) -> Boxes:
    """Output tile of every task of a grid, row-major task order."""
    idx = np.indices(grid).reshape(len(grid), -1).T.astype(np.int64)
    tile = np.asarray(tile, np.int64)
    lo = idx * tile
    return lo, np.minimum(lo + tile, np.asarray(domain, np.int64))


def grid_for(domain, tile) -> tuple[int, ...]:
    return tuple(-(-d // t) for d, t in zip(domain, tile))


def task_cost(op: OpInfo, out: Boxes, target: Target) -> np.ndarray:
    """Predicted seconds of every task: bytes it moves and flops it does."""
    kind = KINDS[op.kind]
    nbytes = volume(kind.writes(op, out)) * op.output_bytes
    for box, size in zip(kind.traffic(op, out), op.input_bytes):
        nbytes = nbytes + volume(box) * size
    mma = kind.mma_flops(op, out)
    return target.task_seconds(nbytes, kind.flops(op, out) - mma, mma)


def choose_tile(op: OpInfo, target: Target) -> tuple[int, ...]:
    """The tile minimizing the op's time on `target`: waves of tasks times task time.

    More tasks than SMs cost a second wave; fewer leave SMs idle. Among tiles
    within 2% of the best, the one with fewer tasks wins (fewer events and
    queue entries for the same time).
    """
    kind = KINDS[op.kind]
    fixed, unit = kind.fixed_tile(op), kind.tile_unit(op)
    tile = list(fixed)
    free = [d for d, f in enumerate(fixed) if f is None]
    if not free:
        return tuple(tile)
    (dim,) = free                       # kinds split at most one dimension freely
    extent, step, largest = op.domain[dim], unit[dim], kind.max_tile(op)[dim]
    candidates = sorted({step * math.ceil(extent / (step * t))
                         for t in range(1, min(extent // step, 8 * target.num_sms) + 1)})
    if largest is not None:
        candidates = [c for c in candidates if c <= largest] or [min(largest, step)]
    candidates = [min(c, extent) for c in candidates] or [extent]     # a dim under one unit: whole
    best = None
    for size in candidates:
        tile[dim] = size
        grid = grid_for(op.domain, tile)
        tasks = int(np.prod(grid))
        seconds = task_cost(op, tile_boxes(op.domain, grid, tile), target).max()
        total = math.ceil(tasks / target.num_sms) * seconds
        if best is None or total < best[0] * 0.98 or (total <= best[0] * 1.02 and tasks < best[1]):
            best = (min(total, best[0]) if best else total, tasks, size)
    tile[dim] = best[2]
    return tuple(tile)


def valid_tile(op: OpInfo, tile) -> str | None:
    """Why `tile` is not a tile this kind accepts, or None."""
    kind = KINDS[op.kind]
    if len(tile) != len(op.domain):
        return f"tile rank {len(tile)} differs from the domain rank {len(op.domain)}"
    for d, (t, extent, unit, fixed, largest) in enumerate(zip(tile, op.domain, kind.tile_unit(op),
                                                              kind.fixed_tile(op), kind.max_tile(op))):
        if t <= 0:
            return f"tile size {t} in dim {d} must be positive"
        if fixed is not None and t != fixed:
            return f"'{op.kind}' tasks need tile size {fixed} in dim {d}, got {t}"
        if largest is not None and t > largest:
            return f"'{op.kind}' tiles take at most {largest} in dim {d}, got {t}"
        if t != extent and t % unit:
            return f"tile size {t} in dim {d} must be a multiple of {unit} or the whole dim {extent}"
    return None


def op_info(graph, group) -> OpInfo:
    """The `OpInfo` of a task group of a `dialects.taskir.TaskGraph`."""
    from mpk.dialects.taskir import element_bytes
    ins = [graph.buffers[b] for b in group.inputs]
    out = graph.buffers[group.outputs[0]]
    return OpInfo(group.kind, [b.shape for b in ins], [element_bytes(b.dtype) for b in ins],
                  out.shape, element_bytes(out.dtype), tuple(graph.domain(group)), group.params)


def group_boxes(graph, group) -> tuple[Boxes, list[Boxes], list[Boxes]]:
    """(output tiles in the domain, write box per output buffer, read box per input)."""
    info = op_info(graph, group)
    kind = KINDS[group.kind]
    out = tile_boxes(info.domain, group.grid, group.tile)
    writes = kind.output_writes(info, out, [graph.buffers[name].shape for name in group.outputs])
    return out, writes, kind.reads(info, out)

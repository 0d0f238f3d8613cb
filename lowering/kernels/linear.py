"""`linear`: y[b, n] = x[b, :] . w[n, :] (+ residual[b, n]) for the rows n of one tile.

Memory-bound matrix-vector product (all B rows of x at once), two ways.

At batch 2..8 (`_tensor_core`): every weight element meets B activations,
and on the CUDA cores the bf16 -> fp32 conversions of x and the shared-memory
reads of it (B per weight chunk) cap the stream well under bandwidth
(measured on an H100 at batch 8: 46 us per Qwen3-8B task against 21 at
batch 1). So the weights feed the tensor cores as the A operand of
`mma.sync.m16n8k16` (16 weight rows by 16 k) with x as the B operand (16 k
by 8 batch rows; rows past B repeat the last one and are not stored), fp32
accumulation. A dot product does not care in which order its k come, so each
lane loads 16-byte runs of its weight rows and of x at the same k and feeds
them to the MMA as if they were the k the fragment layout names: the loads
stay 16 bytes wide and no lane exchanges anything. Warps split the tile's
rows in blocks of 16 and K in slices; slices are summed in shared memory.
Its weight loads carry `invariant` but come out of NVPTX as plain
`ld.global.v4`; forcing `ld.global.nc` (inline PTX) measured the same
(24576x4096 at batch 8: 2348 GB/s either way), so the read path is not what
keeps this kernel under the batch-1 rate.

At batch 1 (and shapes the MMA does not fit) the CUDA cores do it: one warp per
output row: each lane streams 16-byte chunks of the weight row, `UNROLL` of
them issued before any use so several loads are in flight per lane, fp32
accumulation in vectors, one horizontal sum and a shuffle reduction per row.
x is staged once per task in shared memory when it fits, so the weight stream
is the only global traffic in the loop.

With the param `norm_eps` (mpk-partition fuses a layer norm that feeds only
linears) x is normalized first, per row, by every task on the copy it stages
in shared memory (`_stage`): one task group and one event hop less per norm.
With `silu_gate` (a fused silu_mul, down_proj's input) the staged x is
silu(x) * up, computed from the gate and up buffers: one hop less per MLP.

Measured on one H100 (bench_linear_* in test/python/test_gpu_kinds.py):
UNROLL 8 beat 4 by 1-2%; two rows per warp at once (to hide one row's
reduction behind the other's loads) was up to 13% slower, so it is gone.
The group param `unroll` overrides UNROLL (tuning).

With `early_weights` (mpk-data-flags sets it on a batch-1 reader of a flagged x,
which starts before its x is there and polls it) each warp issues its first
row's first loop step of weight loads (or its tail) before the poll and the
staging, and keeps them in registers across them: at batch 1 Llama 3.2 1B and
Qwen3-1.7B 2.7-3.4% faster on an H100, within +-1% on an H200 (bench/NOTES.md
round 24; round 14's L1 prefetch, issued after a wait that had already ended,
was slower).

With `staged_weights` (mpk-stage-weights) the tile's weight rows are already
in shared memory when the task starts (the runtime copied them into its weight
ring, rows `row_pitch` bytes apart, each weight's rows after the one before)
and both paths read them from there.
"""

from __future__ import annotations

from functools import reduce

from mlir import ir
from mlir.dialects import arith

from mpk.lowering.mpk_stage_weights import PARAM as STAGED, row_pitch
from mpk.lowering.kinds import ROW_COUNTS
from mpk.lowering.kinds.linear import gemm_tile_rows, linear_roles

from . import gemm, require
from .emit import FlaggedView, View, byte_width, f32, widest_vector

UNROLL = 8  # 16-byte weight loads in flight per lane
MMA_RUNS = 4  # 16-byte runs per lane, per weight row and k-step, on the tensor-core path
# Independent accumulators per weight on the tensor-core path: a k-step's MMAs
# alternate between them, so its last MMA waits for half as many before it
# (bench/NOTES.md round 17: -0.7 to -1.1% at batch 8 on the 0.6B, Llama and
# the 1.7B; next step's loads issued before this step's MMAs measured slower).
MMA_CHAINS = 2


def linear(e, g, task, buffers):
    # Buffers: x, w, [residual], [norm weight: norm_eps], [up: silu_gate], y.
    role = dict(zip(linear_roles(g.typed, len(buffers) - 1), buffers))
    x, w, y, residual = role["x"], role["w"], buffers[-1], role.get("residual")
    if "peers" in role:              # the product goes into every rank's slots of an allreduce
        from .collective import RankSlots
        y = RankSlots(e, y, role["peers"], g.typed.ranks)
    norm = (role["norm"], float(g.param("norm_eps"))) if "norm" in role else None
    if gemm_tile_rows(x.shape[0]) is not None:   # many rows (prefill): a GEMM tile on the matrix units
        require(not (norm or "up" in role) and not g.param(STAGED, False),
                "a GEMM tile fuses no norm, silu_mul or stage")
        return gemm.gemm(e, g, task, x, [w], y, residual, row_counts=role.get(ROW_COUNTS))
    matrix_vector(e, g, task, x, [w], y, residual, norm, role.get("up"))


def matrix_vector(e, g, task, x, weights, y, residual=None, norm=None, up=None, combine=None):
    """y[b, n] = combine(x[b, :] . w[n, :] for w in weights) (+ residual[b, n]) for the
    rows n of the task's tile, all B rows of x at once (module docstring);
    `combine` defaults to the one product. Every weight shares the x staging, the
    loop and the reductions: gate_up's decode tasks are this with two."""
    combine = combine or (lambda v: v[0])
    (B, K), N = x.shape, weights[0].shape[0]
    require(g.tile[0] == B, f"linear tiles take all {B} rows, not {g.tile[0]}")
    fused = norm or up
    tn = g.tile[1]
    n0 = e.mul(task, tn)  # the grid is [1, N / tn]: task = column tile
    rows = e.tile_extent(n0, tn, N)
    weight_rows = [_weight_rows(e, g, w, n0, j, rows) for j, w in enumerate(weights)]
    if 2 <= B <= 8 and K % 32 == 0 and str(x.element) == "bf16" and \
            all(str(w.element) == "bf16" for w in weights):
        return _tensor_core(e, g, x, weight_rows, y, residual, norm, up, n0, rows, combine)
    W = len(weights)
    unroll = max(1, int(g.param("unroll", UNROLL)) // W)   # loads in flight per lane, over all weights
    vec = widest_vector(K, element_bytes=byte_width(weights[0].element))
    chunks = K // vec
    per_step = 32 * unroll
    full = chunks // per_step * per_step    # chunks of the loop's whole steps; the rest, the tail
    tails = (chunks - full + 31) // 32      # tail chunks per lane
    zero = e.f32(0.0, vec)

    def step_cols(c0):
        return [e.mul(e.add(e.add(c0, 32 * u), e.lane), vec) for u in range(unroll)]

    def tail_col(u):
        """The tail's u-th chunk of this lane: past the row's end a chunk index is clamped
        (a valid load) and its weights zeroed (`ragged`)."""
        c = e.add(full + 32 * u, e.lane)
        ragged = chunks - full - 32 * u < 32
        return c, ragged, e.mul(e.min(c, chunks - 1) if ragged else c, vec)

    # `early_weights`: x is polled (flagged), so the task starts before x is there; the
    # first weights of each warp's first row (its loop's first step, else its tail),
    # which depend on no event, go out first.
    early = None
    if isinstance(x, FlaggedView) and g.param("early_weights", False) and not g.param(STAGED, False):
        count = unroll if full else tails

        def loads():
            wrs = [w(e.warp) for w in weight_rows]
            cols = step_cols(e.int(0)) if full else [tail_col(u)[2] for u in range(tails)]
            return [wr.load(c, n=vec) for c in cols for wr in wrs]
        flat = e.if_(e.lt(e.warp, rows), loads,
                     lambda: [e.to(w.element, zero) for _ in range(count) for w in weights],   # no row
                     types=[ir.VectorType.get([vec], w.element) for _ in range(count) for w in weights])
        early = [list(flat[i * W:(i + 1) * W]) for i in range(count)]
    staged = B * K * byte_width(x.element)
    fits = staged + 4 * B * e.warps <= e.smem_bytes
    residual, polled = _polled_residual(e, residual, n0, rows, tn, staged + 16 + 4 * B * e.warps if fits else 0)
    if fits:
        xs = _stage(e, x, 0, norm, up)
    else:
        require(not fused, f"a fused norm or silu_mul needs x ({staged} bytes) in shared memory")
        xs = x
        if polled:
            e.barrier()      # the polled residual's tile

    def accumulate(acc, wvs, col):
        """acc[j * B + b] += w_j chunk * x[b] chunk, for every weight j and batch row b."""
        wf = [e.to_f32(wv) for wv in wvs]
        xv = [e.to_f32(xs.load(b, col, n=vec)) for b in range(B)]
        return [e.fma(w, xb, acc[j * B + b]) for j, w in enumerate(wf) for b, xb in enumerate(xv)]

    def row(r, first=None):
        n = e.add(n0, r)
        wrs = [weight_row(r) for weight_row in weight_rows]

        def step(c0, acc):
            cols = step_cols(c0)
            loads = [[wr.load(c, n=vec) for wr in wrs] for c in cols]  # all in flight before the math
            for wvs, c in zip(loads, cols):
                acc = accumulate(acc, wvs, c)
            return acc

        acc, start = [zero] * (W * B), 0
        if first is not None and full:
            for wvs, c in zip(first, step_cols(e.int(0))):
                acc = accumulate(acc, wvs, c)
            start = per_step
        if start < full:
            acc = e.loop(start, full, per_step, acc, step)
        for u in range(tails):
            c, ragged, col = tail_col(u)
            wvs = first[u] if first is not None and not full else [wr.load(col, n=vec) for wr in wrs]
            if ragged:
                wvs = [e.select(e.lt(c, chunks), wv, e.to(w.element, zero)) for wv, w in zip(wvs, weights)]
            acc = accumulate(acc, wvs, col)

        sums = e.warp_reduce([e.hsum(a) for a in acc], e.sum)

        def write():
            for b in range(B):
                s = combine([sums[j * B + b] for j in range(W)])
                if residual is not None:
                    s = arith.addf(s, e.to_f32(residual(b, n, r)))
                y.store(e.to(y.element, s), b, n)
        e.if_(e.eq(e.lane, 0), write)

    if early is None:
        e.strided(e.warp, rows, e.warps, row)
    else:
        e.if_(e.lt(e.warp, rows), lambda: row(e.warp, early))
        e.strided(e.add(e.warp, e.warps), rows, e.warps, row)


def _weight_rows(e, g, w, n0, j, rows):
    """Row r of the task's tile of w, its j-th weight: in the weight ring (after the
    `rows` rows of each weight before it), or in w itself."""
    if not g.param(STAGED, False):
        return lambda r: w.row(e.add(n0, r))
    require(e.staged is not None, "a staged linear needs its weight rows' address in the ring")
    size = byte_width(w.element)
    pitch = row_pitch(w.shape[1] * size)
    base = e.staged if j == 0 else e.gep(e.staged, ir.IntegerType.get_signless(8), e.mul(rows, j * pitch))
    staged = View(e, base, w.element, [g.tile[1], pitch // size])
    return staged.row


def _stage(e, x, byte_offset: int, norm=None, up=None):
    """x copied into shared memory at `byte_offset`; with a fused layer norm
    (weight, eps), every row normalized there: x / sqrt(mean(x^2) + eps) * weight;
    with a fused silu_mul (`up`), silu(x) * up; either rounded to x's type as the
    unfused op stores it. Uses 4 * B * warps bytes after x for the norm's reduction."""
    (B, K), size = x.shape, byte_width(x.element)
    xs = e.shared(x.element, x.shape, byte_offset)
    vec = widest_vector(K, element_bytes=size)
    early = None
    if norm is not None and K // vec <= e.threads:
        # One chunk of the norm weight per thread, loaded before x: it depends on no
        # event, so its latency hides behind x's instead of following the reduction.
        early = e.to_f32(norm[0].load(e.mul(e.min(e.tid, K // vec - 1), vec), n=vec))
    if up is None:
        e.copy(x, xs)
    else:
        flat_vec = widest_vector(B * K, element_bytes=size)
        flat = [v.flatten() for v in (x, up, xs)]

        def gate(i):
            at = e.mul(i, flat_vec)
            v = arith.mulf(e.silu(e.to_f32(flat[0].load(at, n=flat_vec))),
                           e.to_f32(flat[1].load(at, n=flat_vec)))
            flat[2].store(e.to(x.element, v), at)
        e.strided(e.tid, B * K // flat_vec, e.threads, gate)
    e.barrier()
    if norm is None:
        return xs
    weight, eps = norm

    def squares(c, ss):
        vs = [e.to_f32(xs.load(b, e.mul(c, vec), n=vec)) for b in range(B)]
        return [arith.addf(s, e.hsum(arith.mulf(v, v))) for s, v in zip(ss, vs)]
    ss = e.loop(e.tid, K // vec, e.threads, [e.f32(0.0)] * B, squares)
    reduce_at = -(-(byte_offset + B * K * size) // 16) * 16
    ss = e.block_reduce(ss, e.sum, [e.f32(0.0)] * B, byte_offset=reduce_at)
    inv = [e.splat(e.rsqrt(arith.addf(arith.mulf(s, e.f32(1.0 / K)), e.f32(eps))), vec) for s in ss]

    def scale(c):
        col = e.mul(c, vec)
        wv = early if early is not None else e.to_f32(weight.load(col, n=vec))
        for b in range(B):
            v = arith.mulf(arith.mulf(e.to_f32(xs.load(b, col, n=vec)), inv[b]), wv)
            xs.store(e.to(x.element, v), b, col)
    e.strided(e.tid, K // vec, e.threads, scale)
    e.barrier()
    return xs


def _tensor_core(e, g, x, weight_rows, y, residual, norm, up, n0, rows, combine):
    """The tile on the tensor cores (module docstring): units of 16 weight rows by
    one K slice, spread over the warps; with several weights, one accumulator each."""
    (B, K), tn, W = x.shape, g.tile[1], len(weight_rows)
    runs = next(u for u in (max(MMA_RUNS // W, 1), 2, 1) if K // 32 % u == 0)
    kstep = 32 * runs                        # k per step: 4 lanes of `runs` 16-byte runs
    steps = K // kstep
    blocks = -(-tn // 16)
    slices = max(1, min(e.warps // blocks, steps))
    scratch = slices * blocks * 32 * 4 * W * 4 if slices > 1 else 0   # [slice, block, lane, 4 W] fp32
    staged = B * K * 2
    fits = scratch + staged + 16 + 4 * B * e.warps <= e.smem_bytes
    residual, polled = _polled_residual(e, residual, n0, rows, tn,
                                        scratch + staged + 16 + 4 * B * e.warps if fits else scratch)
    if fits:
        xs = _stage(e, x, scratch, norm, up)
    else:
        require(norm is None and up is None,
                f"a fused norm or silu_mul needs x ({staged} bytes) in shared memory")
        xs = x
        if polled:
            e.barrier()      # the polled residual's tile
    sums = e.shared(f32(), [slices, blocks, 32, 4 * W]) if scratch else None
    quad, t = e.div(e.lane, 4), e.rem(e.lane, 4)   # mma "groupID" and "thread in group"
    xr = xs.row(e.min(quad, B - 1))                # the batch row this lane feeds
    last = e.sub(rows, 1)

    def unit(u):
        block, part = e.rem(u, blocks), e.div(u, blocks)
        lo = e.add(e.mul(block, 16), quad)
        w_rows = [[weight_row(e.min(r, last)) for r in (lo, e.add(lo, 8))] for weight_row in weight_rows]

        def step(s, carried):   # carried: MMA_CHAINS accumulators of 4 per weight
            k = [e.add(e.mul(s, kstep), e.add(e.mul(t, 8 * runs), 8 * r)) for r in range(runs)]
            a = [[[e.words(w_row, c) for c in k] for w_row in pair] for pair in w_rows]  # weight loads first
            b = [e.words(xr, c) for c in k]
            acc = [carried[4 * i:4 * i + 4] for i in range(W * MMA_CHAINS)]
            for j, (a_lo, a_hi) in enumerate(a):
                frags = [(frag, x_w[h:h + 2]) for lo_w, hi_w, x_w in zip(a_lo, a_hi, b)
                         for h, frag in ((0, [lo_w[0], hi_w[0], lo_w[1], hi_w[1]]),
                                         (2, [lo_w[2], hi_w[2], lo_w[3], hi_w[3]]))]
                for i, (frag, x_pair) in enumerate(frags):   # round robin over the chains
                    c = j * MMA_CHAINS + i % MMA_CHAINS
                    acc[c] = e.mma_bf16(acc[c], frag, x_pair)
            return [v for chain in acc for v in chain]
        chains = e.loop(part, steps, slices, [e.f32(0.0)] * (4 * W * MMA_CHAINS), step)
        acc = [reduce(arith.addf, [chains[4 * (j * MMA_CHAINS + c) + k] for c in range(MMA_CHAINS)])
               for j in range(W) for k in range(4)]
        if sums is None:
            _store(e, y, residual, B, n0, rows, block, quad, t, acc, combine)
        else:
            for k, a in enumerate(acc):
                sums.store(a, part, block, e.lane, k)
    e.strided(e.warp, blocks * slices, e.warps, unit)

    if sums is not None:
        e.barrier()

        def add_slices():
            block = e.div(e.tid, 32)
            acc = [e.f32(0.0)] * (4 * W)
            for part in range(slices):
                acc = [arith.addf(a, sums.load(part, block, e.lane, k)) for k, a in enumerate(acc)]
            _store(e, y, residual, B, n0, rows, block, quad, t, acc, combine)
        e.if_(e.lt(e.tid, blocks * 32), add_slices)


def _store(e, y, residual, B, n0, rows, block, quad, t, acc, combine):
    """Accumulator k of a lane (of each weight's 4) is row 16 * block + quad (+ 8 for
    k >= 2), batch row 2t + k % 2."""
    W = len(acc) // 4
    for k in range(4):
        r = e.add(e.mul(block, 16), e.add(quad, 8 * (k // 2)))
        b = e.add(e.mul(t, 2), k % 2)

        def write(k=k, r=r, b=b):
            n = e.add(n0, r)
            s = combine([acc[4 * j + k] for j in range(W)])
            s = s if residual is None else arith.addf(s, e.to_f32(residual(b, n, r)))
            y.store(e.to(y.element, s), b, n)
        e.if_(arith.andi(e.lt(r, rows), e.lt(b, B)), write)


def _polled_residual(e, residual, n0, rows, tn, used_bytes):
    """The residual as a function (batch row b, row n, its row r in the tile) -> value, or
    None; and whether its tile was polled into shared memory (the caller's barrier must
    follow). A flagged residual (mpk-data-flags) is polled once, its tile of [B, tn] into
    the end of shared memory by the task's first threads: its writer finished long before
    (the residual comes through x's chain), and a poll per row after the row's sums put a
    round trip on the task's tail (the 8B's O and down 2-3 us a layer slower, NOTES round
    21). Without room for the tile, each row polls."""
    if residual is None:
        return None, False
    B = residual.shape[0]
    at = (e.smem_bytes - B * tn * byte_width(residual.element)) // 16 * 16
    if not isinstance(residual, FlaggedView) or used_bytes > at:
        return (lambda b, n, r: residual.load(b, n)), False
    tile = e.shared(residual.element, [B, tn], at)

    def fill(i):
        b, r = e.div(i, tn), e.rem(i, tn)
        tile.store(residual.load(b, e.add(n0, e.min(r, e.sub(rows, 1)))), b, r)
    e.strided(e.tid, B * tn, e.threads, fill)
    return (lambda b, n, r: tile.load(b, r)), True

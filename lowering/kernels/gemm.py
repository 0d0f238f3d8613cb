"""A linear's GEMM tile on the Hopper matrix units: y[tm x tn] = x[tm rows] @ w[tn rows]^T (+ residual).

The prefill path of `linear` (kinds/linear.py: gemm_tile_rows: from 64 rows). Both
operands are K-major (x [R, K] and w [N, K] row-major), bf16, fp32 accumulation.

* Tiles of K = 64 (one 128-byte row per tile row) go through a ring of
  `stages` shared-memory stages, each holding x's tm rows and w's tn rows,
  filled by the tensor-memory accelerator (one `cp.async.bulk.tensor` per
  operand, 128-byte swizzle, completing on the stage's mbarrier); thread 0
  issues them, `stages` tiles ahead of the math.
* The 4 warpgroups of the CTA split the tile: tm / 64 along the rows, the
  rest along the columns; each runs `wgmma.mma_async m64nNk16` straight from
  the swizzled stage (shared-memory descriptors, K advanced by 32 bytes a
  k-step inside the 128-byte swizzle atom), its accumulators in registers.
* A stage is refilled once every warpgroup's multiply-add on it is done:
  `wgmma.wait_group 1` (the previous k-tile's group) then a CTA barrier, so
  the next tile's multiply-adds stay in flight across the barrier.
* The epilogue writes bf16 pairs from the accumulator fragments (m64nN: lane
  (quad, t) of warp w holds rows 16w + quad (+8), columns 8j + 2t (+1)),
  adding the residual; rows past R and columns past N are the zeros TMA
  filled in, never stored.

The tile's task waited for its inputs with an acquire load (generic proxy);
x's rows then reach the async proxy through `fence.proxy.async` before the
first copy. A wait on a stage that never fills (a broken descriptor) traps
after about a second instead of hanging.
"""

from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, llvm, nvvm

from mpk.lowering.kinds.linear import gemm_tile_rows

from . import TensorMap, require
from .emit import f32, i32, ptr

K_TILE = 64                  # bf16 elements of a 128-byte swizzled row
ROW_BYTES = 2 * K_TILE
STAGES = 4
SWIZZLE_128B = 1             # the descriptor's layout field
ATOM_BYTES = 8 * ROW_BYTES   # 8 rows: the swizzle pattern repeats (stride byte offset)


def layout(g, threads: int) -> tuple[int, int, int, int]:
    """(tm, tn_pad, warpgroups along rows, along columns) of a GEMM tile."""
    tm, tn = g.tile
    wg_m = tm // 64
    wg_n = max(threads // 128 // wg_m, 1)
    tn_pad = -(-tn // (8 * wg_n)) * 8 * wg_n          # every warpgroup a multiple of 8 columns
    return tm, tn_pad, wg_m, wg_n


def tensor_maps(g, threads: int, weights: int = 1) -> list[TensorMap]:
    """x in boxes of tm rows, each weight in boxes of tn_pad rows, 64 columns each."""
    if gemm_tile_rows(g.domain[0]) is None:
        return []
    tm, tn_pad, _, _ = layout(g, threads)
    return [TensorMap(0, (tm, K_TILE))] + [TensorMap(1 + i, (tn_pad, K_TILE)) for i in range(weights)]


def gemm(e, g, task, x, ws, y, residual=None, combine=None, row_counts=None) -> None:
    """y's tile of x @ w^T for the weights `ws` (each [N, K]; their tiles lie one after
    the other in a stage, and one wgmma reads them all): `combine(values)` makes the
    output of the weights' fp32 results at one element (default: the one), + residual.
    With `row_counts` ([B]: the prompt rows of each sequence's chunk of R / B rows),
    a tile whose rows are all padding does nothing."""
    if row_counts is None:
        return _gemm(e, g, task, x, ws, y, residual, combine)
    tm, per_seq = g.tile[0], x.shape[0] // row_counts.shape[0]
    require(per_seq % tm == 0, f"tiles of {tm} rows span chunks of {per_seq}")
    m0 = e.mul(e.unravel(task, g.grid)[0], tm)
    seq = e.div(m0, per_seq)
    prompt = e.lt(e.sub(m0, e.mul(seq, per_seq)), e.as_i32(row_counts.load(seq)))
    e.if_(prompt, lambda: _gemm(e, g, task, x, ws, y, residual, combine))


def _gemm(e, g, task, x, ws, y, residual, combine) -> None:
    (R, K), N = x.shape, ws[0].shape[0]
    tm, tn_pad, wg_m, wg_n = layout(g, e.threads)
    tn = g.tile[1]
    require(tm == gemm_tile_rows(R), f"a GEMM tile has {gemm_tile_rows(R)} rows, not {tm}")
    require(e.threads % 128 == 0 and wg_m * wg_n == e.threads // 128,
            f"a {tm}-row GEMM tile needs its {tm // 64} warpgroups of 64 rows to tile {e.threads} threads")
    require(all(str(b.element) == "bf16" for b in (x, y, *ws)), "the GEMM tile takes bf16 x, w and y")
    require(K % 8 == 0, f"rows of {K} bf16 are not 16-byte multiples (TMA strides)")
    # A warpgroup's accumulators: n_wg / 2 fp32 registers a thread per weight (at 512
    # threads a thread has 128 registers, at 256 it has 255).
    most = 128 if e.threads > 256 else 256
    require(tn_pad <= 256 and len(ws) * tn_pad // wg_n <= most,
            f"{tn} columns of {len(ws)} weight(s) do not fit the warpgroups' registers")
    require(len(e.tensor_maps) == 1 + len(ws), "the GEMM tile needs a tensor map of x and of each weight")
    # Several weights: their tiles lie one after the other in the stage, so one wgmma
    # of their columns together reads them all (as wide as one weight's GEMM tile).
    require(len(ws) == 1 or wg_n == 1, "several weights need every warpgroup on all the tile's columns")
    n_wg = tn_pad // wg_n                                    # columns per warpgroup, per weight
    a_bytes, b_bytes = tm * ROW_BYTES, tn_pad * ROW_BYTES
    stage_bytes = a_bytes + len(ws) * b_bytes
    stages = min(STAGES, (e.smem_bytes - 1024 - 8 * STAGES) // stage_bytes)
    require(stages >= 2, f"a {tm}x{tn} GEMM tile needs {2 * stage_bytes + 1040} bytes of shared memory")
    k_tiles = -(-K // K_TILE)
    i8, i64 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(64)

    # The ring, 1024-byte aligned (the 128-byte swizzle's period), then one mbarrier per stage.
    base = llvm.PtrToIntOp(i64, e.smem).result
    pad = arith.subi(arith.andi(arith.addi(base, _i64(e, 1023)), _i64(e, -1024)), base)
    ring = llvm.GEPOp(ptr(3), e.smem, [pad], [-2147483648], i8, 0).result
    stage_a = lambda s: e.gep(ring, i8, e.mul(s, stage_bytes))
    stage_b = lambda s, w: e.gep(ring, i8, e.add(e.mul(s, stage_bytes), a_bytes + w * b_bytes))
    full = lambda s: e.gep(ring, i8, e.add(stages * stage_bytes, e.mul(s, 8)))

    i, j = e.unravel(task, g.grid)
    m0, n0 = e.mul(i, tm), e.mul(j, tn)
    leader = e.eq(e.tid, 0)
    x_map, *w_maps = (llvm.AddrSpaceCastOp(ptr(0), m).result for m in e.tensor_maps)

    def issue(s, k):
        """Thread 0: the k-th tiles of x and of every weight into stage s."""
        nvvm.mbarrier_arrive_expect_tx(None, full(s), e.int(stage_bytes))
        col = e.mul(k, K_TILE)
        boxes = [(stage_a(s), x_map, m0)] + [(stage_b(s, w), m, n0) for w, m in enumerate(w_maps)]
        for dst, tmap, row in boxes:
            nvvm.CpAsyncBulkTensorGlobalToSharedClusterOp(
                llvm.AddrSpaceCastOp(ptr(7), dst).result, tmap, [col, row], full(s), [])

    def start():
        for s in range(stages):
            nvvm.mbarrier_init(full(s), e.int(1))
        nvvm.fence_mbarrier_init()
        # x was written by other SMs' generic stores, ordered by the event's acquire:
        # make them visible to this SM's async-proxy (TMA) reads.
        nvvm.fence_proxy(ir.Attribute.parse("#nvvm.proxy_kind<async.global>"))
        for s in range(min(stages, k_tiles)):
            issue(e.int(s), e.int(s))
    e.if_(leader, start)
    e.barrier()

    wg = e.div(e.tid, 128)
    wg_row, wg_col = e.div(wg, wg_n), e.rem(wg, wg_n)
    a_offset = e.mul(wg_row, 64 * ROW_BYTES)
    b_offset = e.mul(wg_col, n_wg * ROW_BYTES)
    n_mma = n_wg * len(ws)                                   # columns of one wgmma: every weight's
    acc_type = ir.Type.parse("!llvm.struct<(" + ", ".join(["f32"] * (n_mma // 2)) + ")>")
    zero = llvm.UndefOp(acc_type).result
    for k in range(n_mma // 2):
        zero = llvm.insertvalue(zero, e.f32(0.0), [k])
    shape = ir.Attribute.parse(f"#nvvm.shape<m = 64, n = {n_mma}, k = 16>")
    bf16, f32_t = ir.Attribute.parse("#nvvm.wgmma_type<bf16>"), ir.Attribute.parse("#nvvm.wgmma_type<f32>")
    one_out, one_in = ir.Attribute.parse("#nvvm.wgmma_scale_out<one>"), ir.Attribute.parse("#nvvm.wgmma_scale_in<one>")
    row, col_ = ir.Attribute.parse("#nvvm.mma_layout<row>"), ir.Attribute.parse("#nvvm.mma_layout<col>")

    def step(k, carried):
        s = e.rem(k, stages)
        _wait(e, full(s), e.rem(e.div(k, stages), 2))
        a_desc = _descriptor(e, e.gep(stage_a(s), i8, a_offset))
        b_desc = _descriptor(e, e.gep(stage_b(s, 0), i8, b_offset))
        nvvm.wgmma_fence_aligned()
        out = carried[0]
        for kk in range(K_TILE // 16):          # 32 bytes further inside the swizzle atom
            out = nvvm.WgmmaMmaAsyncOp(acc_type, out, arith.addi(a_desc, _i64(e, 2 * kk)),
                                       arith.addi(b_desc, _i64(e, 2 * kk)), shape, bf16, bf16, f32_t,
                                       one_out, one_in, one_in, row, col_).result
        nvvm.wgmma_commit_group_sync_aligned()
        nvvm.wgmma_wait_group_sync_aligned(1)   # the previous k-tile's products are done
        e.barrier()                             # ... in every warpgroup: its stage is free
        refill = e.add(k, stages - 1)
        e.if_(arith.andi(arith.andi(leader, e.lt(0, k)), e.lt(refill, k_tiles)),
              lambda: issue(e.rem(e.sub(k, 1), stages), refill))
        return [out]
    acc = e.loop(0, k_tiles, 1, [zero], step)[0]
    nvvm.wgmma_wait_group_sync_aligned(0)

    # Epilogue: accumulator (j, h, c) of lane (quad, t) in warp w of the warpgroup is row
    # 16 w + quad + 8 h and column 8 j + 2 t + c of the warpgroup's sub-tile.
    warp_in_wg = e.rem(e.warp, 4)
    quad, t = e.div(e.lane, 4), e.rem(e.lane, 4)
    rows = e.tile_extent(m0, tm, R)
    cols = e.tile_extent(n0, tn, N)
    pair = N % 2 == 0
    combine = combine or (lambda values: values[0])
    for jb in range(n_wg // 8):
        c = e.add(e.add(e.mul(wg_col, n_wg), 8 * jb), e.mul(t, 2))
        for h in range(2):
            r = e.add(e.add(e.mul(wg_row, 64), e.mul(warp_in_wg, 16)), e.add(quad, 8 * h))
            # Weight w's column c is the wgmma's column w * n_wg + c (n-block jb + w * n_wg / 8).
            values = [combine([llvm.extractvalue(f32(), acc, [4 * (jb + w * n_wg // 8) + 2 * h + u])
                               for w in range(len(ws))]) for u in range(2)]

            def store(r=r, c=c, values=values):
                gr, gc = e.add(m0, r), e.add(n0, c)
                if residual is not None:
                    add = (e.elements(e.to_f32(residual.load(gr, gc, n=2))) if pair else
                           [e.to_f32(residual.load(gr, e.min(e.add(gc, u), N - 1))) for u in range(2)])
                    out = [arith.addf(v, a) for v, a in zip(values, add)]
                else:
                    out = values
                if pair:
                    y.store(e.to(y.element, e.from_elements(out)), gr, gc)
                else:
                    for u in range(2):
                        e.if_(e.lt(e.add(c, u), cols), lambda u=u: y.store(e.to(y.element, out[u]), gr, e.add(gc, u)))
            e.if_(arith.andi(e.lt(r, rows), e.lt(c, cols)), store)
    e.barrier()             # every thread is past its waits: the mbarriers may go

    def invalidate():
        for s in range(stages):
            nvvm.mbarrier_inval(full(e.int(s)))
    e.if_(leader, invalidate)


def _i64(e, v: int) -> ir.Value:
    return e.constant(ir.IntegerType.get_signless(64), v)


def _descriptor(e, address) -> ir.Value:
    """The wgmma shared-memory descriptor of a K-major, 128-byte-swizzled operand at
    `address` (1024-byte aligned): start >> 4, leading byte offset 1 (unused when
    swizzled), stride byte offset 1024 >> 4 (8-row atoms), layout 128B."""
    i64 = ir.IntegerType.get_signless(64)
    start = arith.andi(arith.shrui(llvm.PtrToIntOp(i64, address).result, _i64(e, 4)), _i64(e, 0x3FFF))
    fixed = (1 << 16) | ((ATOM_BYTES >> 4) << 32) | (SWIZZLE_128B << 62)
    return arith.ori(start, _i64(e, fixed - 2**64 if fixed >= 2**63 else fixed))


WAIT_PTX = """{
.reg .pred done;
.reg .u32 spins;
mov.u32 spins, 0;
wait:
mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1;
@done bra.uni ready;
add.u32 spins, spins, 1;
setp.lt.u32 done, spins, 4000000;
@done bra.uni wait;
trap;
ready:
}"""


def _wait(e, barrier, parity) -> None:
    """Until the mbarrier completes phase `parity` (each try_wait blocks up to a
    hardware time limit; some 4 million of them is seconds: then trap, not hang)."""
    address = llvm.PtrToIntOp(i32(), barrier).result
    llvm.InlineAsmOp(None, [address, parity], WAIT_PTX, "r,r", has_side_effects=True)

"""`attention_prefill`: causal attention of a chunk of prompt rows on the tensor cores.

A task is `tq` consecutive query rows of one sequence and one KV head with
its G query heads (kinds/attention_prefill.py). The matrix rows are the
(row, head) pairs, M = tq * G of them (row m: query row m // G, head m % G,
so the G heads of a row are one contiguous [G * D] run of q), 16 per warp:

* q's tile goes to shared memory once; KV rows stream through two buffers of
  BLOCK rows each with `cp.async` (the next block's copies in flight while
  the warps work on this one), up to the largest position in the tile: rows
  0..pos[r] of the cache, this chunk's keys included (rope_append wrote them);
* per block and warp, S = Q K^T (`mma.m16n8k16`; Q and K fragments by
  `ldmatrix` from rows padded by 16 bytes against bank conflicts), masked to
  kv row <= pos[r], an online softmax in the log2 domain (max and sum per
  row, a lane holding rows quad and quad + 8), P packed to bf16 in
  registers is already the A fragment of O += P V, V's B fragments by
  `ldmatrix.trans`;
* the output row is O / l, stored as bf16 pairs.

The accumulator of a warp is 16 x D fp32 (D / 2 registers a lane) plus 16 x
BLOCK scores. With the 255 registers a thread of a 256-thread CTA may have
(the prefill program's), blocks are 64 rows and the warp's q fragments stay
in registers; at 512 threads (128 registers) blocks of 16 and q reloaded from
shared memory each block keep a head of 128 from spilling.
"""

from __future__ import annotations

import math

from mlir import ir
from mlir.dialects import arith, llvm, nvvm

from . import require
from .emit import i32

ROOMY_THREADS = 256           # at most this many threads a CTA: 255 registers a thread
NEG = -1.0e30


def attention_prefill(e, g, task, buffers):
    q, kc, vc, positions, *counts, out = buffers      # counts: [row_counts] (kinds.ROW_COUNTS)
    if counts:   # a tile of padding rows (their outputs are never read) does nothing
        tq, per_seq = g.tile[0], q.shape[0] // counts[0].shape[0]
        r0 = e.mul(e.unravel(task, g.grid)[0], tq)
        seq = e.div(r0, per_seq)
        prompt = e.lt(e.sub(r0, e.mul(seq, per_seq)), e.as_i32(counts[0].load(seq)))
        e.if_(prompt, lambda: _attention(e, g, task, q, kc, vc, positions, out))
        return
    _attention(e, g, task, q, kc, vc, positions, out)


def _attention(e, g, task, q, kc, vc, positions, out):
    D = int(g.param("head_dim"))
    scale = float(g.param("scale")) / math.log(2)
    Hq, Hkv = q.shape[1] // D, kc.shape[2] // D
    G = Hq // Hkv
    tq = g.tile[0]
    M = tq * G
    require(all(str(b.element) == "bf16" for b in (q, kc, vc, out)), "attention_prefill takes bf16 q and caches")
    require(D % 16 == 0, f"head_dim {D} is not a multiple of 16")
    require(g.tile[1] == G * D and M % 16 == 0 and M <= 16 * e.warps,
            f"a tile is rows x one KV group: {tq} x {G} heads must be whole 16-row blocks for {e.warps} warps")
    roomy = e.threads <= ROOMY_THREADS
    BLOCK = 64 if roomy else 16                        # cache rows per block
    rows, (B, S, _) = q.shape[0], kc.shape
    require(rows % B == 0 and (rows // B) % tq == 0, f"tiles of {tq} rows split the sequences' chunks")
    per_seq = rows // B
    pitch = D * 2 + 16                                 # bytes per shared row
    q_bytes, kv_bytes = M * pitch, BLOCK * pitch
    reduce_at = q_bytes + 4 * kv_bytes
    require(reduce_at + 64 * e.warps <= e.smem_bytes, f"needs {reduce_at + 64 * e.warps} bytes of shared memory")
    i8 = ir.IntegerType.get_signless(8)
    at = lambda offset: e.gep(e.smem, i8, offset)
    k_buf = lambda b: at(e.add(q_bytes, e.mul(b, 2 * kv_bytes)))
    v_buf = lambda b: at(e.add(q_bytes + kv_bytes, e.mul(b, 2 * kv_bytes)))

    blk, h = e.unravel(task, g.grid)
    r0 = e.mul(blk, tq)
    seq = e.div(r0, per_seq)
    col0 = e.mul(h, G * D)                             # q columns of the group's heads
    kv_col = e.mul(h, D)

    # The tile's largest position: the blocks to visit.
    own = e.select(e.lt(e.tid, tq), e.as_i32(positions.load(e.add(r0, e.min(e.tid, tq - 1)))), e.int(0))
    last = e.block_reduce([own], lambda a, b: [arith.maxsi(a[0], b[0])], [e.int(0)], byte_offset=reduce_at)[0]
    blocks = e.div(e.add(last, BLOCK), BLOCK)

    # q's tile -> shared memory, row m = (row m // G, head m % G).
    chunks = D // 8

    def copy_q(c):
        m, d = e.div(c, chunks), e.mul(e.rem(c, chunks), 8)
        src = q.address(e.add(r0, e.div(m, G)), e.add(col0, e.add(e.mul(e.rem(m, G), D), d)))
        dst = e.gep(at(e.mul(m, pitch)), i8, e.mul(d, 2))
        e.store(e.load(src, q.element, 8), dst)
    e.strided(e.tid, M * chunks, e.threads, copy_q)

    def fetch(j, buf):
        """cp.async of cache rows [32 j, 32 j + 32) of the KV head into buffer `buf`."""
        def one(c):
            s, d = e.div(c, chunks), e.mul(e.rem(c, chunks), 8)
            row = e.min(e.add(e.mul(j, BLOCK), s), S - 1)
            for cache, base in ((kc, k_buf(buf)), (vc, v_buf(buf))):
                src = cache.address(seq, row, e.add(kv_col, d))
                dst = e.gep(base, i8, e.add(e.mul(s, pitch), e.mul(d, 2)))
                nvvm.CpAsyncOp(dst, src, 16, ir.Attribute.parse("#nvvm<load_cache_modifier cg>"))
        e.strided(e.tid, BLOCK * chunks, e.threads, one)
        nvvm.cp_async_commit_group()

    fetch(e.int(0), e.int(0))
    quad, t = e.div(e.lane, 4), e.rem(e.lane, 4)
    active = e.lt(e.warp, M // 16)
    m_lo = e.add(e.mul(e.warp, 16), quad)              # this lane's rows m_lo, m_lo + 8
    pos = [e.as_i32(positions.load(e.add(r0, e.div(e.min(m, M - 1), G)))) for m in (m_lo, e.add(m_lo, 8))]
    nd = D // 8                                        # output n-blocks
    struct4 = ir.Type.parse("!llvm.struct<(i32, i32, i32, i32)>")
    row_l = ir.Attribute.parse("#nvvm.mma_layout<row>")
    col_l = ir.Attribute.parse("#nvvm.mma_layout<col>")
    shape = ir.Attribute.parse("#nvvm.ld_st_matrix_shape<m = 8, n = 8>")
    b16 = ir.Attribute.parse("#nvvm.ld_st_matrix_elt_type<b16>")

    def ldmatrix(address, trans=False):
        r = nvvm.LdMatrixOp(struct4, address, 4, col_l if trans else row_l, shape, b16).result
        return [llvm.extractvalue(i32(), r, [k]) for k in range(4)]

    # This lane's row address of each operand (ldmatrix: lane l gives row l % 8 of
    # matrix l / 8); every fragment is then a constant byte offset from it, which
    # the loads take as an immediate (no address registers live across the loop).
    mi, r8 = e.div(e.lane, 8), e.rem(e.lane, 8)
    warp = e.min(e.warp, M // 16 - 1)                  # an idle warp reads real rows, for nothing
    q_lane = e.add(e.mul(e.add(e.mul(warp, 16), e.add(e.mul(e.rem(mi, 2), 8), r8)), pitch), e.mul(e.div(mi, 2), 16))
    k_lane = e.add(e.mul(e.add(e.mul(e.div(mi, 2), 8), r8), pitch), e.mul(e.rem(mi, 2), 16))
    v_lane = e.add(e.mul(e.add(e.mul(e.rem(mi, 2), 8), r8), pitch), e.mul(e.div(mi, 2), 16))
    fragment = lambda base, offset: e.gep(base, i8, offset)

    # q's A fragments (16 rows x 16 of D each), in registers for all blocks when they fit.
    held_q = None
    if roomy:
        e.barrier()                                    # q's tile is in shared memory
        held_q = [ldmatrix(e.gep(at(q_lane), i8, 32 * kk)) for kk in range(D // 16)]

    def block(j, state):
        m, l, acc = state[:2], state[2:4], state[4:]
        nxt = e.add(j, 1)

        def empty_group():                             # keeps the wait_group count uniform
            nvvm.cp_async_commit_group()
            return []
        e.if_(e.lt(nxt, blocks), lambda: fetch(nxt, e.rem(nxt, 2)), empty_group)
        nvvm.cp_async_wait_group(1)
        e.barrier()
        buf = e.rem(j, 2)

        def compute():
            q_at, k_at, v_at = at(q_lane), fragment(k_buf(buf), k_lane), fragment(v_buf(buf), v_lane)
            # S = Q K^T for the warp's 16 rows and BLOCK cache rows.
            s = [[e.f32(0.0)] * 4 for _ in range(BLOCK // 8)]
            for kk in range(D // 16):
                a = held_q[kk] if held_q else ldmatrix(fragment(q_at, 32 * kk))
                for nb in range(0, BLOCK // 8, 2):
                    b = ldmatrix(fragment(k_at, 8 * nb * pitch + 32 * kk))
                    s[nb] = e.mma_bf16(s[nb], a, b[:2])
                    s[nb + 1] = e.mma_bf16(s[nb + 1], a, b[2:])
            # Cache row 32 j + 8 nb + 2 t + c is visible to a row at position p when
            # 8 nb + c <= p - 32 j - 2 t.
            reach = [e.sub(e.sub(p, e.mul(j, BLOCK)), e.mul(t, 2)) for p in pos]
            scores = [[], []]                          # per row half: (n-block, column) values
            for nb in range(BLOCK // 8):
                for k in range(4):
                    half, c = k // 2, k % 2
                    visible = arith.cmpi(arith.CmpIPredicate.sle, e.int(8 * nb + c), reach[half])
                    scores[half].append(e.select(visible, arith.mulf(s[nb][k], e.f32(scale)), e.f32(NEG)))
            new_m, corr, p_rows = [], [], []
            for half in range(2):
                top = scores[half][0]
                for x in scores[half][1:]:
                    top = e.maxf(top, x)
                for mask in (1, 2):
                    top = e.maxf(top, e.shuffle_xor(top, mask))
                mn = e.maxf(m[half], top)
                new_m.append(mn)
                corr.append(e.exp2(arith.subf(m[half], mn)))
                p_rows.append([e.exp2(arith.subf(x, mn)) for x in scores[half]])
            sums = []
            for half in range(2):
                total = p_rows[half][0]
                for x in p_rows[half][1:]:
                    total = arith.addf(total, x)
                sums.append(e.fma(l[half], corr[half], total))
            # O = O * corr + P V: P's C fragments, packed, are the A fragments (k = cache rows).
            outs = [arith.mulf(a, corr[k % 4 // 2]) for a, k in zip(acc, [k for _ in range(nd) for k in range(4)])]
            for kc_ in range(BLOCK // 16):
                p = lambda nb, half: e.pack_bf16(p_rows[half][2 * nb], p_rows[half][2 * nb + 1])
                a = [p(2 * kc_, 0), p(2 * kc_, 1), p(2 * kc_ + 1, 0), p(2 * kc_ + 1, 1)]
                for nb in range(0, nd, 2):
                    b = ldmatrix(fragment(v_at, 16 * kc_ * pitch + 16 * nb), trans=True)
                    for n, frag in ((nb, b[:2]), (nb + 1, b[2:])):
                        outs[4 * n:4 * n + 4] = e.mma_bf16(outs[4 * n:4 * n + 4], a, frag)
            return new_m + sums + outs
        result = e.if_(active, compute, lambda: list(state), [v.type for v in state])
        e.barrier()                                    # the buffer is refilled next block
        return result

    init = [e.f32(NEG)] * 2 + [e.f32(0.0)] * 2 + [e.f32(0.0)] * (4 * nd)
    state = e.loop(0, blocks, 1, init, block)
    nvvm.cp_async_wait_group(0)
    l = state[2:4]
    for mask in (1, 2):                                 # each lane summed its own columns
        l = [arith.addf(x, e.shuffle_xor(x, mask)) for x in l]
    acc = state[4:]

    def store():
        for half in range(2):
            m = e.add(m_lo, 8 * half)
            r, head = e.add(r0, e.div(m, G)), e.rem(m, G)
            inv = arith.divf(e.f32(1.0), l[half])
            for nb in range(nd):
                pair = [arith.mulf(acc[4 * nb + 2 * half + c], inv) for c in range(2)]
                column = e.add(col0, e.add(e.mul(head, D), e.add(8 * nb, e.mul(t, 2))))
                out.store(e.to(out.element, e.from_elements(pair)), r, column)
    e.if_(active, store)

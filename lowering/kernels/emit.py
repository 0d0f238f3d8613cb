"""IR-building helpers shared by every task-kind lowering.

A task function is built in the gpu/nvvm/llvm/vector/arith/scf dialects with
these conventions, so that the kinds read like the CUDA they replace:

* integers are `i32` (tile arithmetic, loop counters, element indices);
  addresses are `getelementptr` over an element type, so an i32 element index
  reaches 2^31 elements of any buffer;
* memory is reached through `View`s: a raw `!llvm.ptr<1>` (global) or
  `!llvm.ptr<3>` (shared) with a static row-major shape. A view over a weight
  is read-only for the whole kernel and its loads carry `invariant`, which
  the NVPTX backend turns into `ld.global.nc`; any other buffer may be written
  by another SM during the launch, so it is read with plain coherent loads;
* a vector of `n` elements is accessed with alignment `n * sizeof(elt)` (at
  most 16): at 8 x bf16 that is one 128-bit `ld.global.v4` (without the
  alignment LLVM splits it into eight 2-byte loads);
* math is fp32. Transcendentals use the PTX approximations through NVVM
  intrinsics, since `convert-gpu-to-nvvm` maps `math` ops to libdevice calls
  that the PTX link would have to resolve.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable, Sequence

import numpy as np
from mlir import ir
from mlir.dialects import arith, gpu, llvm, nvvm, scf, vector

from mpk.runtime.tables import POLL_LIMIT

# The `rawConstantIndices` entry that marks a dynamic GEP index.
_DYNAMIC = -2147483648

Values = list  # list[ir.Value], the loop-carried / reduced tuple


def i32() -> ir.Type:
    return ir.IntegerType.get_signless(32)


def f32() -> ir.Type:
    return ir.F32Type.get()


def ptr(space: int = 0) -> ir.Type:
    return llvm.PointerType.get(space)


def byte_width(t: ir.Type) -> int:
    if isinstance(t, ir.IntegerType):
        return t.width // 8
    return {"bf16": 2, "f16": 2, "f32": 4, "f64": 8}[str(t)]


def widest_vector(*extents: int, element_bytes: int = 2) -> int:
    """The largest vector width (elements, at most 16 bytes) dividing every extent."""
    n = 16 // element_bytes
    while n > 1 and any(e % n for e in extents):
        n //= 2
    return n


class View:
    """A row-major tensor at a raw pointer: `load`/`store` by multi-index."""

    def __init__(self, e: "Emitter", base: ir.Value, element: ir.Type,
                 shape: Sequence[int], readonly: bool = False):
        self.e, self.base, self.element = e, base, element
        self.shape, self.readonly = list(shape), readonly

    def flat(self, *index) -> ir.Value:
        """Linear element index of `index` (a prefix indexes whole rows)."""
        e, strides = self.e, _strides(self.shape)
        terms = [e.mul(i, s) for i, s in zip(index, strides)]
        out = terms[0]
        for t in terms[1:]:
            out = e.add(out, t)
        return out

    def address(self, *index) -> ir.Value:
        return self.e.gep(self.base, self.element, self.flat(*index))

    def load(self, *index, n: int = 1) -> ir.Value:
        return self.e.load(self.address(*index), self.element, n, invariant=self.readonly)

    def store(self, value: ir.Value, *index) -> None:
        self.e.store(value, self.address(*index))

    def flatten(self) -> "View":
        return View(self.e, self.base, self.element, [math.prod(self.shape)], self.readonly)

    def at(self, *index, shape: Sequence[int]) -> "View":
        """The tensor of `shape` starting at element `index` (one head of a row, say)."""
        return View(self.e, self.address(*index), self.element, shape, self.readonly)

    def row(self, *index) -> "View":
        """The sub-tensor at a leading index, e.g. one row of a matrix."""
        return View(self.e, self.address(*index), self.element, self.shape[len(index):],
                    self.readonly)

    def load_many(self, requests: Sequence[tuple[tuple, int]]) -> list[ir.Value]:
        """`load(*index, n=n)` of every (index, n) (a FlaggedView polls them together)."""
        return [self.load(*index, n=n) for index, n in requests]


class FlaggedView(View):
    """A flagged buffer (mpk-data-flags): element i is 32-bit word i, the value's 16
    bits in its low half and `flag` (this step's) in its high half. A load polls its
    words until every flag is this step's; a store writes value and flag at once.
    Elements are reached by index only: an address of an element means nothing here."""

    def __init__(self, e: "Emitter", base: ir.Value, element: ir.Type, shape: Sequence[int],
                 flag: ir.Value):
        super().__init__(e, base, element, shape)
        self.flag = flag

    def _word(self, *index) -> ir.Value:
        return self.e.gep(self.base, i32(), self.flat(*index))

    def address(self, *index) -> ir.Value:
        from . import Unsupported
        raise Unsupported("a flagged buffer is reached through its view's loads and stores only")

    def load(self, *index, n: int = 1) -> ir.Value:
        return self.load_many([(index, n)])[0]

    def load_many(self, requests: Sequence[tuple[tuple, int]]) -> list[ir.Value]:
        """`load(*index, n=n)` of every (index, n), polled together (Emitter.poll_flagged)."""
        return self.e.poll_flagged([(self._word(*index), n) for index, n in requests], self.flag, self.element)

    def store(self, value: ir.Value, *index) -> None:
        self.e.store_flagged(value, self._word(*index), self.flag)

    def flatten(self) -> "View":
        return FlaggedView(self.e, self.base, self.element, [math.prod(self.shape)], self.flag)

    def at(self, *index, shape: Sequence[int]) -> "View":
        return FlaggedView(self.e, self._word(*index), self.element, shape, self.flag)

    def row(self, *index) -> "View":
        return FlaggedView(self.e, self._word(*index), self.element, self.shape[len(index):], self.flag)


def _bits(t: ir.Type) -> int:
    if isinstance(t, ir.VectorType):
        return ir.VectorType(t).shape[0] * _bits(ir.VectorType(t).element_type)
    return 8 * byte_width(t)


def _as_vector(v: ir.Value) -> ir.Value:
    return v if isinstance(v.type, ir.VectorType) else vector.from_elements(ir.VectorType.get([1], v.type), [v])


def _alignment(n: int, element: ir.Type) -> int:
    """A vector is aligned to its size, up to the 16 bytes of the widest access."""
    return min(n * byte_width(element), 16)


def _strides(shape: Sequence[int]) -> list[int]:
    strides, s = [], 1
    for d in reversed(shape):
        strides.append(s)
        s *= d
    return strides[::-1]


class Emitter:
    """Builds one task function's body at the current insertion point.

    Integer operands of the arithmetic helpers may be Python ints: they become
    i32 constants, so tile arithmetic on static shapes reads as written.
    """

    def __init__(self, threads: int, smem: ir.Value, smem_bytes: int, symbols: ir.Block,
                 staged: ir.Value | None = None):
        assert threads % 32 == 0
        self.symbols = symbols  # the gpu.module's body, for constant tables
        self.threads, self.warps = threads, threads // 32
        self.smem, self.smem_bytes = smem, smem_bytes  # !llvm.ptr<3>, dynamic shared memory
        self.staged = staged  # !llvm.ptr<3>: this task's weight rows, in a staged group
        self.tensor_maps: list[ir.Value] = []   # !llvm.ptr<1>: the group's TMA descriptors (kernels.TensorMap)
        self.stuck: ir.Value | None = None   # !llvm.ptr<3>: the word a flagged poll sets when it gives up
        self._constants: dict[tuple[str, str], ir.Value] = {}
        thread = gpu.thread_id(gpu.Dimension.x)
        self._top = thread.owner  # constants go above it, once per function
        self.tid = arith.index_cast(i32(), thread)
        self.lane = arith.andi(self.tid, self.int(31))
        self.warp = arith.shrui(self.tid, self.int(5))

    # ------------------------------------------------------------- integers
    def constant(self, t: ir.Type, value) -> ir.Value:
        """A constant, created once at the top of the function."""
        key = (str(t), repr(value))
        if key not in self._constants:
            with ir.InsertionPoint(self._top):
                if isinstance(t, ir.VectorType):
                    attr = ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(t.element_type, value))
                    self._constants[key] = arith.constant(t, attr)
                else:
                    self._constants[key] = arith.constant(t, value)
        return self._constants[key]

    def int(self, v, t: ir.Type | None = None) -> ir.Value:
        if isinstance(v, ir.Value):
            return v
        return self.constant(t or i32(), int(v))

    def _binary(self, op, fold, a, b, unit=None):
        """`op` on i32 values; folded in Python when both sides are ints, and
        skipped when `b` is the operation's unit."""
        if isinstance(a, int) and isinstance(b, int):
            return fold(a, b)
        if unit is not None and isinstance(b, int) and b == unit:
            return self.int(a)
        return op(self.int(a), self.int(b))

    def add(self, a, b):
        return self._binary(arith.addi, lambda x, y: x + y, a, b, unit=0)

    def sub(self, a, b):
        return self._binary(arith.subi, lambda x, y: x - y, a, b, unit=0)

    def mul(self, a, b):
        return self._binary(arith.muli, lambda x, y: x * y, a, b, unit=1)

    def div(self, a, b):  # of non-negative values
        return self._binary(arith.divui, lambda x, y: x // y, a, b, unit=1)

    def rem(self, a, b):
        return self._binary(arith.remui, lambda x, y: x % y, a, b)

    def min(self, a, b):
        return self._binary(arith.minsi, min, a, b)

    def lt(self, a, b):
        return arith.cmpi(arith.CmpIPredicate.slt, self.int(a), self.int(b))

    def eq(self, a, b):
        return arith.cmpi(arith.CmpIPredicate.eq, self.int(a), self.int(b))

    def as_i32(self, v: ir.Value) -> ir.Value:
        """An id or position stored with any integer width, as i32."""
        return self.cast_int(v, i32())

    def cast_int(self, v: ir.Value, t: ir.Type) -> ir.Value:
        """Sign-extend or truncate an integer to type `t`."""
        have, want = ir.IntegerType(v.type).width, ir.IntegerType(t).width
        if have == want:
            return v
        return arith.trunci(t, v) if have > want else arith.extsi(t, v)

    def select(self, cond, a, b):
        return arith.select(cond, a, b)

    def unravel(self, linear, shape: Sequence[int]) -> list[ir.Value]:
        """Row-major multi-index of `linear` in a static `shape`."""
        index = []
        for stride in _strides(shape)[:-1]:
            index.append(self.div(linear, stride))
            linear = self.rem(linear, stride)
        return index + [linear]

    def tile_extent(self, start, tile: int, extent: int):
        """Elements of a tile starting at `start` (clipped at the domain's end)."""
        if extent % tile == 0:
            return self.int(tile)
        return self.min(tile, self.sub(extent, start))

    def for_each_vector(self, task, grid: Sequence[int], tile: Sequence[int],
                        domain: Sequence[int], vec: int, body: Callable) -> None:
        """Spread the `vec`-wide column vectors of a 2-D task's tile over the
        CTA's threads; `body(row, col)` gets the element indices of each.
        `vec` must divide the tile's and the domain's width."""
        (tb, tn), (rows, cols) = tile, domain
        i, j = self.unravel(task, grid)
        r0, c0 = self.mul(i, tb), self.mul(j, tn)
        nr, nc = self.tile_extent(r0, tb, rows), self.tile_extent(c0, tn, cols)
        per_row = self.div(nc, vec)

        def item(k):
            r = self.add(r0, self.div(k, per_row))
            c = self.add(c0, self.mul(self.rem(k, per_row), vec))
            body(r, c)
        self.strided(self.tid, self.mul(nr, per_row), self.threads, item)

    def map(self, fn: Callable[..., ir.Value], *vectors: ir.Value) -> ir.Value:
        """Apply a scalar fp32 function element by element (for the PTX
        transcendentals, which have no vector form)."""
        columns = zip(*(self.elements(v) for v in vectors))
        return self.from_elements([fn(*xs) for xs in columns])

    # --------------------------------------------------------------- floats
    def f32(self, v: float, n: int = 1) -> ir.Value:
        """An fp32 constant, or a splat vector of `n` > 1 of them."""
        return self.constant(ir.VectorType.get([n], f32()) if n > 1 else f32(), float(v))

    def to_f32(self, v: ir.Value) -> ir.Value:
        """bf16/f16 (scalar or vector) to fp32; integers are converted by value."""
        t = v.type
        n = ir.VectorType(t).shape[0] if isinstance(t, ir.VectorType) else 0
        elt = ir.VectorType(t).element_type if n else t
        target = ir.VectorType.get([n], f32()) if n else f32()
        if elt == f32():
            return v
        if isinstance(elt, ir.IntegerType):
            return arith.sitofp(target, v)
        return arith.extf(target, v)

    def to(self, element: ir.Type, v: ir.Value) -> ir.Value:
        """fp32 (scalar or vector) to the float storage type `element`, rounding
        to nearest even."""
        if element == f32():
            return v
        t = v.type
        n = ir.VectorType(t).shape[0] if isinstance(t, ir.VectorType) else 0
        return arith.truncf(ir.VectorType.get([n], element) if n else element, v)

    # Vectors of one element are plain scalars (what `View.load(n=1)` gives),
    # so a kind written for `vec` lanes also works where only vec = 1 divides.
    def splat(self, v: ir.Value, n: int) -> ir.Value:
        return vector.broadcast(ir.VectorType.get([n], v.type), v) if n > 1 else v

    def fma(self, a, b, c):
        """a * b + c (fused; scalars or vectors)."""
        return vector.fma(a, b, c) if isinstance(a.type, ir.VectorType) else \
            llvm.intr_fma(a, b, c)

    def hsum(self, v: ir.Value) -> ir.Value:
        """Sum of a vector's elements in fp32."""
        if not isinstance(v.type, ir.VectorType):
            return v
        return vector.reduction(f32(), vector.CombiningKind.ADD, v)

    def elements(self, v: ir.Value) -> list[ir.Value]:
        if not isinstance(v.type, ir.VectorType):
            return [v]
        return [vector.extract(v, [], [i]) for i in range(ir.VectorType(v.type).shape[0])]

    def from_elements(self, xs: Sequence[ir.Value]) -> ir.Value:
        if len(xs) == 1:
            return xs[0]
        return vector.from_elements(ir.VectorType.get([len(xs)], xs[0].type), list(xs))

    def maxf(self, a, b):
        return arith.maximumf(a, b)

    # PTX approximations (see the module docstring); scalar fp32.
    def _intrinsic(self, name: str, *args) -> ir.Value:
        return llvm.call_intrinsic(f32(), name, list(args), [], [])

    def exp2(self, x):
        return self._intrinsic("llvm.nvvm.ex2.approx.f32", x)

    def silu(self, v):
        """x / (1 + exp(-x)) of fp32 values (scalar or vector)."""
        def one(x):
            t = self.exp2(arith.mulf(x, self.f32(-1 / math.log(2))))
            return arith.divf(x, arith.addf(t, self.f32(1.0)))
        return self.map(one, v)

    def rsqrt(self, x):
        return self._intrinsic("llvm.nvvm.rsqrt.approx.f", x)

    def sincos(self, x) -> tuple[ir.Value, ir.Value]:
        """sin and cos of fp32 angles (scalar or vector)."""
        pairs = [self._sincos(t) for t in self.elements(x)]
        return tuple(self.from_elements([p[k] for p in pairs]) for k in (0, 1))

    def _sincos(self, x):
        """Reduce to [-pi, pi] first, where the hardware approximations are
        accurate to ~1e-6 absolute."""
        two_pi = 2 * math.pi
        hi = float(ir.FloatAttr.get(f32(), two_pi).value)
        lo = two_pi - hi
        k = arith.sitofp(f32(), arith.fptosi(i32(), arith.mulf(x, self.f32(1 / two_pi))))
        r = self.fma(k, self.f32(-hi), x)
        r = self.fma(k, self.f32(-lo), r)
        r = self.select(arith.cmpf(arith.CmpFPredicate.OGT, r, self.f32(math.pi)),
                        arith.subf(r, self.f32(hi)), r)
        r = self.select(arith.cmpf(arith.CmpFPredicate.OLT, r, self.f32(-math.pi)),
                        arith.addf(r, self.f32(hi)), r)
        return (self._intrinsic("llvm.nvvm.sin.approx.f", r),
                self._intrinsic("llvm.nvvm.cos.approx.f", r))

    # --------------------------------------------------------------- memory
    def gep(self, base: ir.Value, element: ir.Type, index) -> ir.Value:
        if isinstance(index, int) and index == 0:
            return base
        return llvm.GEPOp(base.type, base, [self.int(index)], [_DYNAMIC], element, 0).result

    def load(self, address: ir.Value, element: ir.Type, n: int = 1,
             invariant: bool = False) -> ir.Value:
        t = ir.VectorType.get([n], element) if n > 1 else element
        return llvm.LoadOp(t, address, alignment=_alignment(n, element),
                           invariant=invariant or None).result

    def store(self, value: ir.Value, address: ir.Value) -> None:
        t = value.type
        n, elt = ((ir.VectorType(t).shape[0], ir.VectorType(t).element_type)
                  if isinstance(t, ir.VectorType) else (1, t))
        llvm.StoreOp(value, address, alignment=_alignment(n, elt))

    def shared(self, element: ir.Type, shape: Sequence[int], byte_offset: int = 0) -> View:
        """A view of the dynamic shared memory at `byte_offset`."""
        base = self.gep(self.smem, ir.IntegerType.get_signless(8), byte_offset)
        return View(self, base, element, shape)

    def copy(self, src: View, dst: View) -> None:
        """Cooperative copy of a whole tensor by all threads, in 16-byte vectors
        where the size allows."""
        n = math.prod(src.shape)
        vec = widest_vector(n, element_bytes=byte_width(src.element))
        s, d = src.flatten(), dst.flatten()

        if isinstance(s, FlaggedView):
            return self._copy_flagged(s, d, n // vec, vec)

        def move(i):
            at = self.mul(i, vec)
            d.store(s.load(at, n=vec), at)
        self.strided(self.tid, n // vec, self.threads, move)

    COPY_ROUNDS_POLLED = 8    # a flagged copy's vectors per thread polled together, at most

    def _copy_flagged(self, src: "FlaggedView", dst: View, count: int, vec: int) -> None:
        """`copy` from a flagged view: a thread's vectors polled together (one round trip
        when they are there), not one poll loop after another. Every thread polls, one
        past the end the last vector again: polling only where there is a vector made the
        0.6B's gate_up tasks 0.3 us slower (NOTES round 21)."""
        rounds = -(-count // self.threads)
        for first in range(0, rounds, self.COPY_ROUNDS_POLLED):
            chunk = range(first, min(rounds, first + self.COPY_ROUNDS_POLLED))
            items = [self.add(self.tid, r * self.threads) for r in chunk]
            at = [self.mul(self.min(i, count - 1), vec) for i in items]    # a valid load past the end
            values = src.load_many([((a,), vec) for a in at])
            for r, i, a, v in zip(chunk, items, at, values):
                if (r + 1) * self.threads <= count:
                    dst.store(v, a)
                else:
                    self.if_(self.lt(i, count), lambda a=a, v=v: dst.store(v, a))

    def constant_table(self, hint: str, values: Sequence[float]) -> View:
        """A constant f32 array in global memory (one llvm.mlir.global per
        distinct table in the gpu.module), as a read-only view."""
        data = np.asarray(values, dtype=np.float32)
        name = f"mpk_{hint}_{hashlib.sha1(data.tobytes()).hexdigest()[:12]}"
        if not any(op.name == "llvm.mlir.global" and
                   ir.StringAttr(op.attributes["sym_name"]).value == name
                   for op in self.symbols.operations):
            t = ir.RankedTensorType.get([len(data)], f32())
            with ir.InsertionPoint.at_block_begin(self.symbols):
                llvm.GlobalOp(ir.TypeAttr.get(ir.Type.parse(f"!llvm.array<{len(data)} x f32>")), name,
                              ir.Attribute.parse("#llvm.linkage<internal>"), constant=True,
                              value=ir.DenseFPElementsAttr.get(data, type=t),
                              addr_space=1, alignment=16)
        return View(self, llvm.AddressOfOp(ptr(1), name).result, f32(), [len(data)],
                    readonly=True)

    def barrier(self) -> None:
        gpu.barrier()

    def atomic_add(self, view: View, value: ir.Value, *index) -> None:
        """view[index] += value, atomically (relaxed): shared-memory histograms."""
        op = llvm.AtomicBinOp.fadd if value.type == f32() else llvm.AtomicBinOp.add
        llvm.AtomicRMWOp(op, view.address(*index), value, llvm.AtomicOrdering.monotonic)

    def fetch_add_acq_rel(self, view: View, value: int, *index) -> ir.Value:
        """view[index] += value at GPU scope, acquire-release; returns the old value.
        An arrival: what this CTA wrote before it (after a barrier) is visible to the
        CTA that arrives later, and what earlier arrivals wrote is visible after it."""
        address = llvm.PtrToIntOp(ir.IntegerType.get_signless(64), view.address(*index)).result
        return llvm.InlineAsmOp(i32(), [address, self.int(value)], "atom.acq_rel.gpu.add.u32 $0, [$1], $2;",
                                "=r,l,r", has_side_effects=True).result

    def load_gpu_scope(self, view: View, *index) -> ir.Value:
        """The i32 at view[index] (an i64's low half), loaded relaxed at GPU scope: from L2,
        never an L1 line of before the load's caller polled its flagged inputs."""
        return self._words(view.address(*index), 1)[0]

    # ------------------------------------------------------ flagged words
    # A poll that has seen a stale flag POLL_LIMIT times (seconds: each is an L2 round
    # trip) gives up: it sets the worker's stuck word (`stuck`, which the runtime
    # reports naming the task) and returns what it loaded.

    def _words(self, address: ir.Value, n: int, store: Values | None = None) -> Values:
        """n 32-bit words at `address` loaded (or `store` stored) relaxed at GPU scope, 4, 2
        or 1 to an instruction: strong accesses, each word single-copy atomic."""
        out, at = [], 0
        while at < n:
            k = 4 if n - at >= 4 else 2 if n - at >= 2 else 1
            where = llvm.PtrToIntOp(ir.IntegerType.get_signless(64), self.gep(address, i32(), at)).result
            shape = "" if k == 1 else f".v{k}"
            if store is None:
                regs = "$0" if k == 1 else "{" + ", ".join(f"${i}" for i in range(k)) + "}"
                t = i32() if k == 1 else llvm.StructType.get_literal([i32()] * k)
                asm = llvm.InlineAsmOp(t, [where], f"ld.relaxed.gpu.global{shape}.u32 {regs}, [${k}];",
                                       ",".join(["=r"] * k + ["l"]), has_side_effects=True).result
                out += [asm] if k == 1 else [llvm.ExtractValueOp(i32(), asm, [i]).result for i in range(k)]
            else:
                regs = "$1" if k == 1 else "{" + ", ".join(f"${i + 1}" for i in range(k)) + "}"
                llvm.InlineAsmOp(None, [where] + list(store[at:at + k]),
                                 f"st.relaxed.gpu.global{shape}.u32 [$0], {regs};",
                                 ",".join(["l"] + ["r"] * k), has_side_effects=True)
            at += k
        return out

    def poll_flagged(self, requests: Sequence[tuple[ir.Value, int]], flag: ir.Value,
                     element: ir.Type) -> list[ir.Value]:
        """The flagged words of every (address, n) request (FlaggedView), all loaded before
        any is looked at, and loaded again until each holds `flag`: one round trip for
        all of them when they are there. Each request's values as n `element`s."""
        total = sum(n for _, n in requests)
        loop = scf.WhileOp([i32()] * (total + 1), [self.int(0)])
        before = loop.before.blocks.append(i32())
        with ir.InsertionPoint(before):
            spins = before.arguments[0]
            words = [w for address, n in requests for w in self._words(address, n)]
            again = None
            for w in words:
                stale = arith.cmpi(arith.CmpIPredicate.ne, arith.shrui(w, self.int(16)), flag)
                again = stale if again is None else arith.ori(again, stale)
            give_up = self.lt(POLL_LIMIT - 1, spins)
            self.if_(arith.andi(again, give_up), self._give_up)
            scf.ConditionOp(arith.andi(again, arith.xori(give_up, arith.constant(give_up.type, 1))),
                            words + [spins])
        after = loop.after.blocks.append(*([i32()] * (total + 1)))
        with ir.InsertionPoint(after):
            # Sleeping longer the longer it waits (up to 512 ns) measured no better (NOTES round 21).
            llvm.InlineAsmOp(None, [], "nanosleep.u32 32;", "", has_side_effects=True)
            scf.YieldOp([self.add(after.arguments[total], 1)])
        i16 = ir.IntegerType.get_signless(16)
        values = [arith.bitcast(element, arith.trunci(i16, w)) for w in list(loop.results)[:total]]
        out, at = [], 0
        for _, n in requests:
            out.append(self.from_elements(values[at:at + n]))
            at += n
        return out

    def _give_up(self) -> None:
        if self.stuck is None:      # no stuck word to report through (not a task function)
            llvm.InlineAsmOp(None, [], "trap;", "", has_side_effects=True)
        else:
            llvm.StoreOp(self.int(1), self.stuck, alignment=4)

    def store_flagged(self, value: ir.Value, address: ir.Value, flag: ir.Value) -> None:
        """`value` (n 16-bit elements) into the flagged words at `address`, each with `flag`."""
        i16 = ir.IntegerType.get_signless(16)
        high = arith.shli(flag, self.int(16))
        words = [arith.ori(arith.extui(i32(), arith.bitcast(i16, v)), high) for v in self.elements(value)]
        self._words(address, len(words), store=words)

    # --------------------------------------------------------- control flow
    def loop(self, lo, hi, step, init: Values,
             body: Callable[[ir.Value, Values], Values | None]) -> Values:
        """`for i in range(lo, hi, step)` carrying `init`; `body` returns the
        next carried values. Bounds are i32, so the loop is signed i32 too."""
        op = scf.ForOp(self.int(lo), self.int(hi), self.int(step), list(init))
        with ir.InsertionPoint(op.body):
            out = body(op.induction_variable, list(op.inner_iter_args))
            scf.YieldOp(list(out or []))
        return list(op.results)

    def strided(self, start, stop, step, body: Callable[[ir.Value], None]) -> None:
        """A loop without carried values (each thread/warp takes every step-th)."""
        self.loop(start, stop, step, [], lambda i, _: body(i))

    def if_(self, cond: ir.Value, then: Callable[[], Values | None],
            otherwise: Callable[[], Values] | None = None,
            types: Sequence[ir.Type] = ()) -> Values:
        op = scf.IfOp(cond, list(types), has_else=otherwise is not None)
        with ir.InsertionPoint(op.then_block):
            scf.YieldOp(list(then() or []))
        if otherwise is not None:
            with ir.InsertionPoint(op.else_block):
                scf.YieldOp(list(otherwise()))
        return list(op.results)

    # ---------------------------------------------------------- tensor cores
    def words(self, view: View, *index, volatile: bool = False) -> list[ir.Value]:
        """8 bf16 at `index`, loaded as the four 32-bit registers of mma fragments
        (`volatile`: loaded where written, not hoisted out of a loop)."""
        t = ir.VectorType.get([4], i32())
        v = llvm.LoadOp(t, view.address(*index), alignment=16, volatile_=volatile or None,
                        invariant=view.readonly or None).result
        return [vector.extract(v, [], [k]) for k in range(4)]

    def pinned(self, values: Values) -> Values:
        """`values` (loaded, say), as they are, through one side-effecting asm: what
        uses the result cannot start before all of them arrived, and the loads
        cannot be sunk into a later branch: loads issued together wait together
        (one round trip), which LLVM's scheduling does not promise."""
        i16 = ir.IntegerType.get_signless(16)
        words, layout = [], []
        for v in values:
            vt = _as_vector(v)
            bits = _bits(vt.type)
            assert bits == 16 or bits % 32 == 0, f"cannot pin a {v.type}"
            if bits == 16:   # in the low half of a word
                half = vector.extract(vector.bitcast(ir.VectorType.get([1], i16), vt), [], [0])
                words.append(arith.extui(i32(), half))
            else:
                as_words = vector.bitcast(ir.VectorType.get([bits // 32], i32()), vt)
                words += [vector.extract(as_words, [], [k]) for k in range(bits // 32)]
            layout.append((v.type, vt.type, max(bits // 32, 1)))
        n = len(words)
        asm = llvm.InlineAsmOp(llvm.StructType.get_literal([i32()] * n), words,
                               " ".join(f"mov.b32 ${k}, ${k + n};" for k in range(n)),
                               ",".join(["=r"] * n + ["r"] * n), has_side_effects=True).result
        out, k = [], 0
        for t, vt, m in layout:
            got = [llvm.extractvalue(i32(), asm, [k + j]) for j in range(m)]
            k += m
            if _bits(vt) == 16:
                half = arith.trunci(i16, got[0])
                back = vector.bitcast(vt, vector.from_elements(ir.VectorType.get([1], i16), [half]))
            else:
                back = vector.bitcast(vt, vector.from_elements(ir.VectorType.get([m], i32()), got))
            out.append(back if isinstance(t, ir.VectorType) else vector.extract(back, [], [0]))
        return out

    def pack_bf16(self, lo: ir.Value, hi: ir.Value) -> ir.Value:
        """Two fp32 values rounded to bf16, as one 32-bit fragment register (lo first)."""
        pair = self.to(ir.BF16Type.get(), self.from_elements([lo, hi]))
        return vector.extract(vector.bitcast(ir.VectorType.get([1], i32()), pair), [], [0])

    def mma_bf16(self, acc: Values, a: Values, b: Values, k: int = 16) -> Values:
        """acc += A (16 x k bf16, row) @ B (k x 8 bf16, col), fp32 accumulators
        (`mma.sync.m16n8k16` or `m16n8k8`; fragments as the PTX ISA lays them out)."""
        attr = ir.Attribute.parse
        struct = ir.Type.parse("!llvm.struct<(f32, f32, f32, f32)>")
        d = nvvm.MmaOp(struct, attr(f"#nvvm.shape<m = 16, n = 8, k = {k}>"), attr("#nvvm.mma_layout<row>"),
                       attr("#nvvm.mma_layout<col>"), a, b, acc,
                       multiplicandAPtxType=attr("#nvvm.mma_type<bf16>"),
                       multiplicandBPtxType=attr("#nvvm.mma_type<bf16>")).result
        return [llvm.extractvalue(f32(), d, [k]) for k in range(4)]

    # ----------------------------------------------------------- reductions
    def shuffle_xor(self, v: ir.Value, mask: int, width: int = 32) -> ir.Value:
        return gpu.ShuffleOp(v, self.int(mask), self.int(width),
                             gpu.ShuffleMode.XOR).results[0]

    def shuffle_idx(self, v: ir.Value, lane) -> ir.Value:
        """`v` of lane `lane` of the warp."""
        return gpu.ShuffleOp(v, self.int(lane), self.int(32), gpu.ShuffleMode.IDX).results[0]

    def inclusive_scan(self, v: ir.Value) -> ir.Value:
        """Sum of `v` over lanes 0..lane of the warp (Hillis-Steele with shuffles)."""
        offset = 1
        while offset < 32:
            up = gpu.ShuffleOp(v, self.int(offset), self.int(32), gpu.ShuffleMode.UP).results[0]
            took = self.lt(offset - 1, self.lane)
            add = arith.addf if v.type == f32() else arith.addi
            v = self.select(took, add(v, up), v)
            offset *= 2
        return v

    def warp_reduce(self, vs: Values, combine: Callable[[Values, Values], Values],
                    lanes: int = 32) -> Values:
        """Butterfly reduction of a tuple over groups of `lanes` adjacent lanes
        (a power of two <= 32); every lane of a group gets the result."""
        mask = lanes // 2
        while mask:
            vs = combine(vs, [self.shuffle_xor(v, mask) for v in vs])
            mask //= 2
        return vs

    def block_reduce(self, vs: Values, combine: Callable[[Values, Values], Values],
                     identity: Values, byte_offset: int = 0) -> Values:
        """Reduction over the CTA; every thread gets the result. Uses
        `4 * len(vs) * warps` bytes of shared memory at `byte_offset`."""
        vs = self.warp_reduce(vs, combine)
        slots = [self.shared(v.type, [self.warps], byte_offset + 4 * self.warps * k)
                 for k, v in enumerate(vs)]

        def publish():
            for s, v in zip(slots, vs):
                s.store(v, self.warp)
        self.if_(self.eq(self.lane, 0), publish)
        self.barrier()
        # Every warp reduces the per-warp partials itself: no second barrier
        # round-trip to broadcast the result.
        live = self.lt(self.lane, self.warps)
        idx = self.min(self.lane, self.warps - 1)
        partial = [self.select(live, s.load(idx), i) for s, i in zip(slots, identity)]
        out = self.warp_reduce(partial, combine)
        self.barrier()  # the slots may be reused right after
        return out

    def sum(self, a: Values, b: Values) -> Values:
        return [arith.addf(x, y) for x, y in zip(a, b)]


"""torch-to-mpk: torch dialect (generic form) -> mpk graph ops.

Input: the decode step imported by torch-mlir's FX importer (mpk.frontend),
printed in generic form and parsed here with unregistered dialects allowed,
so torch types are opaque (`!torch.vtensor<[2,64],f32>`). Lifted parameters
and KV caches arrive as `torch.mpk.weight` / `torch.mpk.state` placeholders
carrying their names.

How it works. Activations in mpk are 2-D `[B, N]`; in torch they are views of
that ([B, H, D], [B, H, 1, D], ...). A torch value is *mapped* to an mpk value
when both hold the same elements in the same row-major order with the batch
first, so order-preserving layout ops (view, unsqueeze, a transpose that only
moves size-1 dims, ...) need no conversion at all. Each pattern is anchored
on one torch op (the last op of the subgraph it matches; a rewrite pattern for
upstream's walk driver, `mlir.rewrite`), looks at producers
to match the rest, builds one mpk op and records which torch ops it
*absorbed*. Every torch op must end up converted, absorbed or neutral
(constants, lists, layout); any other is reported as unsupported at its
location (torch-mlir records the Python file:line of each FX node). At the
end all torch ops are erased and the function takes builtin tensor types.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Callable

from mlir import ir, rewrite

from mpk import dialects as mpk
from mpk.lowering import ModulePass, PassFailure

WEIGHT_OP, STATE_OP = "torch.mpk.weight", "torch.mpk.state"  # see mpk.frontend

# Ops that carry no computation of their own.
_CONSTANT_OPS = {"torch.constant.int", "torch.constant.float", "torch.constant.bool",
                 "torch.constant.none", "torch.constant.str", "torch.constant.device",
                 "torch.prim.ListConstruct", "torch.vtensor.literal",
                 "torch.aten._assert_tensor_metadata"}
# Ops that only reinterpret the layout (mapped through when they keep row-major order).
_LAYOUT_OPS = {"torch.aten.view", "torch.aten.reshape", "torch.aten._unsafe_view",
               "torch.aten.unsqueeze", "torch.aten.squeeze", "torch.aten.squeeze.dim",
               "torch.aten.flatten.using_ints", "torch.aten.transpose.int", "torch.aten.permute",
               "torch.aten.contiguous", "torch.aten.clone", "torch.aten.alias",
               "torch.aten.detach", "torch.aten._to_copy"}

_DTYPES = {"f32": "f32", "f16": "f16", "bf16": "bf16", "f64": "f64", "si64": "i64",
           "si32": "i32", "i1": "i1", "ui8": "i8", "si8": "i8"}

_VTENSOR = re.compile(r"!torch\.vtensor<\[([-0-9,]*)\],(\w+)>")


def torch_tensor_type(t: ir.Type) -> tuple[list[int], str] | None:
    """`!torch.vtensor<[2,64],f32>` -> ([2, 64], "f32"); None for other types."""
    m = _VTENSOR.fullmatch(str(t))
    if not m:
        return None
    shape = [int(d) for d in m.group(1).split(",")] if m.group(1) else []
    return shape, _DTYPES.get(m.group(2), m.group(2))


def _tensor_info(v: ir.Value) -> tuple[list[int], str] | None:
    """(shape, element type) of a torch value tensor or an already converted builtin tensor."""
    if isinstance(v.type, ir.RankedTensorType):
        return list(v.type.shape), str(v.type.element_type)
    return torch_tensor_type(v.type)


def _shape(v: ir.Value) -> list[int]:
    info = _tensor_info(v)
    if info is None:
        raise _NoMatch(f"not a tensor: {v.type}")
    return info[0]


def builtin_type(t: ir.Type) -> ir.Type:
    parsed = torch_tensor_type(t)
    if parsed is None:
        raise ValueError(f"not a value tensor type: {t}")
    shape, dtype = parsed
    return ir.RankedTensorType.get(shape, ir.Type.parse(dtype))


class _NoMatch(Exception):
    """A pattern does not apply (not an error by itself)."""


# What reading a torch op that lacks an operand or attribute of its signature, or
# has one of another kind, raises (hand-edited input): no pattern matches it, and
# it is reported as an unsupported use, located.
_MALFORMED = (IndexError, KeyError, ValueError)


def _owner(v: ir.Value):
    """The op producing `v`, or None for a block argument."""
    owner = v.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def _name(op) -> str:
    return op.operation.name if op is not None else "<block argument>"


def _keeps_row_major_order(in_shape: list[int], op) -> bool:
    """True when a layout op's result lists its input's elements in the same order."""
    name = _name(op)
    if name == "torch.aten.transpose.int":
        d0, d1 = (_const(op.operands[i]) % len(in_shape) for i in (1, 2))
        perm = list(range(len(in_shape)))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    elif name == "torch.aten.permute":
        perm = [d % len(in_shape) for d in _const_list(op.operands[1])]
    else:
        return True  # views, reshapes, copies keep the order by definition
    moved = [p for p in perm if in_shape[p] != 1]
    return moved == sorted(moved)


def _const(v: ir.Value):
    """Python value of a torch.constant.* operand."""
    op = _owner(v)
    if op is None or not _name(op).startswith("torch.constant."):
        raise _NoMatch(f"expected a constant, got {_name(op)}")
    if _name(op) == "torch.constant.none":
        return None
    attr = op.attributes["value"]
    if isinstance(attr, ir.BoolAttr):
        return bool(attr.value)
    if isinstance(attr, ir.IntegerAttr):
        return int(attr.value)
    if isinstance(attr, ir.FloatAttr):
        return float(attr.value)
    return str(attr)


def _list_operands(v: ir.Value) -> list[ir.Value]:
    op = _owner(v)
    if op is None or _name(op) != "torch.prim.ListConstruct":
        raise _NoMatch("expected a list")
    return list(op.operands)


def _const_list(v: ir.Value) -> list:
    return [_const(x) for x in _list_operands(v)]


@dataclasses.dataclass
class TorchToMpk(ModulePass):
    """Convert the torch-dialect decode step into mpk graph ops."""

    name = "torch-to-mpk"
    summary = "torch dialect (generic form, from mpk.frontend) to mpk graph IR"

    def run(self, module: ir.Operation) -> None:
        for func in module.regions[0].blocks[0].operations:
            if func.operation.name == "func.func":
                with func.location:
                    _FunctionConversion(self, func.operation).run()


# Patterns: anchor op name -> method name of _FunctionConversion.
_PATTERNS: dict[str, list[str]] = {}


def pattern(*anchors: str) -> Callable:
    def register(method):
        for anchor in anchors:
            _PATTERNS.setdefault(anchor, []).append(method.__name__)
        return method
    return register


class _FunctionConversion:
    def __init__(self, pass_: TorchToMpk, func: ir.Operation):
        self.pass_ = pass_
        self.func = func
        self.block = func.regions[0].blocks[0]
        self.mapped: dict[ir.Value, ir.Value] = {}    # torch value -> mpk value
        self.accounted: set[ir.Operation] = set()     # converted, absorbed or neutral
        self.absorbed: list[ir.Operation] = []        # by the pattern being tried

    # ----------------------------------------------------------- driver

    def run(self) -> None:
        for arg in self.block.arguments:
            if torch_tensor_type(arg.type) is not None:
                arg.set_type(builtin_type(arg.type))
            self.mapped[arg] = arg

        ops = [op.operation for op in self.block.operations]
        returns = [op for op in ops if op.name == "func.return"]
        if not returns:
            self.pass_.fail(self.func, "the function does not end with a 'func.return'")
        rewrite.walk_and_apply_patterns(self.func, self.patterns().freeze())

        # Any other op left would keep a torch value alive when the torch ops are erased.
        self._report_unconverted([op for op in ops if op not in self.accounted and op.name != "func.return"])

        ret = returns[0]
        for i, v in enumerate(list(ret.operands)):
            if v not in self.mapped:
                self.pass_.fail(ret, f"result #{i} is not produced by a converted op "
                                     f"(its producer is {_name(_owner(v))})")
            ret.operands[i] = self.mapped[v]

        for op in reversed(ops):
            if op.name.startswith("torch."):
                op.erase()
        # Drop mpk ops left without users (e.g. an argmax re-emitted with another index type).
        for op in reversed([op.operation for op in self.block.operations]):
            if op.name.startswith("mpk.") and all(not list(r.uses) for r in op.results):
                op.erase()
        ftype = ir.FunctionType.get([a.type for a in self.block.arguments],
                                    [v.type for v in ret.operands])
        self.func.attributes["function_type"] = ir.TypeAttr.get(ftype)
        if "torch.assume_strict_symbolic_shapes" in self.func.attributes:
            del self.func.attributes["torch.assume_strict_symbolic_shapes"]

    def _report_unconverted(self, unconverted: list[ir.Operation]) -> None:
        """Errors for ops left over; raises PassFailure if there are any.

        An op no pattern knows is the cause; ops that patterns know but could
        not match are usually its victims (their inputs were never converted),
        so they are reported only when there is no unknown op to blame.
        """
        if not unconverted:
            return
        unknown = [op for op in unconverted if op.name not in _KNOWN_OPS]
        for op in unknown:
            self.pass_.error(op, f"unsupported op {op.name} (no torch-to-mpk pattern)")
        if not unknown:
            op = unconverted[0]
            self.pass_.error(op, f"unsupported use of {op.name}: no torch-to-mpk pattern matches "
                                 "it with its operands and users")
        raise PassFailure("unconverted torch ops")

    def patterns(self) -> rewrite.RewritePatternSet:
        """One rewrite pattern per torch op (`@pattern` below), for upstream's walk
        driver, which visits the ops in order; constants are neutral, and a layout
        op that keeps row-major order maps its result to its input's mpk value."""
        patterns = rewrite.RewritePatternSet()
        for name in _CONSTANT_OPS:
            patterns.add(name, lambda op, rewriter: self.accounted.add(op.operation))
        for name in _LAYOUT_OPS:   # tried before a converting pattern of the same op (_to_copy)
            patterns.add(name, lambda op, rewriter: not self._map_layout(op.operation), benefit=2)
        for name, methods in _PATTERNS.items():
            for method in methods:
                patterns.add(name, functools.partial(self._convert, getattr(self, method)))
        return patterns

    def _convert(self, pattern, op, rewriter) -> bool:
        """Apply one pattern anchored on `op`; True (no match) if it does not apply. An op
        no pattern matches is left for a consumer's pattern to absorb, or reported."""
        op = op.operation
        if op in self.accounted:
            return True
        self.absorbed = []  # committed only if the whole pattern matches
        try:
            with ir.InsertionPoint(op), op.location:
                result = pattern(op)
        except (_NoMatch, *_MALFORMED):
            return True
        if math.prod(_shape(op.results[0])) != math.prod(_shape(result)):
            # A broadcasting torch op is not the mpk op of the same name: erase and move on.
            rewriter.erase_op(_owner(result))
            return True
        self.mapped[op.results[0]] = result
        self.accounted.update(self.absorbed)
        self.accounted.add(op)
        return None

    def _map_layout(self, op: ir.Operation) -> bool:
        try:
            if self._layout_source(op):
                self.accounted.add(op)
                return True
            return False
        except (_NoMatch, *_MALFORMED):
            return False

    def _layout_source(self, op: ir.Operation) -> bool:
        source = op.operands[0]
        if source not in self.mapped or len(op.results) != 1:
            return False
        in_t, out_t = _tensor_info(source), _tensor_info(op.results[0])
        if in_t is None or out_t is None or in_t[1] != out_t[1]:
            return False  # a dtype change is a computation
        if not _keeps_row_major_order(in_t[0], op):
            return False
        if in_t[0][:1] != out_t[0][:1]:
            return False  # the batch must stay the leading dimension
        self.mapped[op.results[0]] = self.mapped[source]
        return True

    # ----------------------------------------------------------- helpers

    def absorb(self, *values_or_ops) -> None:
        for x in values_or_ops:
            op = _owner(x) if isinstance(x, ir.Value) else x
            if op is not None:
                self.absorbed.append(op.operation)

    def value(self, v: ir.Value) -> ir.Value:
        """The mpk value of a torch value (through layout ops)."""
        if v in self.mapped:
            return self.mapped[v]
        raise _NoMatch(f"operand produced by {_name(_owner(v))} is not converted")

    def producer(self, v: ir.Value, *names: str) -> ir.Operation:
        """The op producing v, which must be one of `names` (absorbed)."""
        op = _owner(v)
        if op is None or op.name not in names:
            raise _NoMatch(f"expected {' or '.join(names)}, got {_name(op)}")
        self.absorb(op)
        return op

    def strip_layout(self, v: ir.Value) -> ir.Value:
        """Follow layout ops (and dtype casts) up to the value they reinterpret; absorb them."""
        while v not in self.mapped:
            op = _owner(v)
            if op is None or op.name not in _LAYOUT_OPS:
                break
            self.absorb(op)
            v = op.operands[0]
        return v

    def positions(self, v: ir.Value) -> ir.Value:
        """An integer [B] value reached through layout ops and casts (the positions)."""
        source = self.strip_layout(v)
        mapped = self.value(source)
        t = ir.RankedTensorType(mapped.type)
        if t.rank != 1 or not isinstance(t.element_type, ir.IntegerType):
            raise _NoMatch("positions must be a 1-D integer tensor")
        return mapped

    def weight(self, v: ir.Value) -> ir.Value:
        mapped = self.value(self.strip_layout(v))
        owner = _owner(mapped)
        if owner is None or owner.name != "mpk.weight":
            raise _NoMatch("expected a weight")
        return mapped

    # ----------------------------------------------------------- patterns

    @pattern(WEIGHT_OP, STATE_OP)
    def convert_named(self, op):
        build = mpk.weight if op.name == WEIGHT_OP else mpk.state
        name = op.attributes["name"] if "name" in op.attributes else None
        if not isinstance(name, ir.StringAttr):
            self.pass_.fail(op, f"'{op.name}' needs a string 'name' (the parameter it binds), got {name}")
        return build(name.value, builtin_type(op.results[0].type))

    @pattern("torch.aten.embedding")
    def convert_embedding(self, op):
        # embedding(weight, indices, padding_idx, scale_grad_by_freq, sparse)
        return mpk.embedding(self.positions(op.operands[1]), self.weight(op.operands[0]))

    @pattern("torch.aten.rms_norm")
    def convert_rms_norm(self, op):
        # rms_norm(input, normalized_shape, weight, eps)
        shape = _const_list(op.operands[1])
        weight = self.weight(op.operands[2])
        eps = _const(op.operands[3])
        if len(shape) != 1 or ir.RankedTensorType(weight.type).shape != shape:
            raise _NoMatch("rms_norm over more than the last dimension")
        return mpk.rmsnorm(self.value(op.operands[0]), weight, 1e-6 if eps is None else eps)

    @pattern("torch.aten.mul.Tensor")
    def convert_decomposed_rms_norm(self, op):
        # weight * (x * rsqrt(mean(x^2, -1, keepdim) + eps)), either operand order,
        # possibly with dtype casts around the normalization.
        for norm_v, w_v in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])):
            try:
                weight = self.weight(w_v)
            except _NoMatch:
                continue
            normalized = self.producer(self.strip_layout(norm_v), "torch.aten.mul.Tensor")
            for x_v, r_v in ((normalized.operands[0], normalized.operands[1]),
                             (normalized.operands[1], normalized.operands[0])):
                if _owner(r_v) is not None and _owner(r_v).name == "torch.aten.rsqrt":
                    break
            else:
                raise _NoMatch("not x * rsqrt(...)")
            rsqrt = self.producer(r_v, "torch.aten.rsqrt")
            plus_eps = self.producer(rsqrt.operands[0], "torch.aten.add.Scalar")
            mean = self.producer(plus_eps.operands[0], "torch.aten.mean.dim")
            square = self.producer(mean.operands[0], "torch.aten.pow.Tensor_Scalar", "torch.aten.mul.Tensor")
            x = self.strip_layout(x_v)
            rank = len(_shape(x_v))
            if _const_list(mean.operands[1]) not in ([-1], [rank - 1]) or not _const(mean.operands[2]):
                raise _NoMatch("mean over other than the last dimension")
            squared = ([square.operands[0]] * 2 if square.name.endswith("Tensor_Scalar")
                       else list(square.operands))
            if square.name.endswith("Tensor_Scalar") and _const(square.operands[1]) != 2:
                raise _NoMatch("not a square")
            if any(self.strip_layout(v) != x for v in squared):
                raise _NoMatch("mean of squares of another tensor")
            eps = _const(plus_eps.operands[1])
            if ir.RankedTensorType(weight.type).shape[0] != _shape(x_v)[-1]:
                raise _NoMatch("weight does not cover the last dimension")
            return mpk.rmsnorm(self.value(x), weight, eps)
        raise _NoMatch("no weight operand")

    @pattern("torch.aten.linear")
    def convert_linear(self, op):
        if _const(op.operands[2]) is not None if len(op.operands) > 2 else False:
            raise _NoMatch("linear with bias")
        return self._linear(op.operands[0], self.weight(op.operands[1]))

    @pattern("torch.aten.mm", "torch.aten.matmul")
    def convert_matmul(self, op):
        # x @ w.t() with w a weight [N, K]
        transposed = self.producer(op.operands[1], "torch.aten.t", "torch.aten.transpose.int",
                                   "torch.aten.permute")
        return self._linear(op.operands[0], self.weight(transposed.operands[0]))

    def _linear(self, x_v: ir.Value, weight: ir.Value) -> ir.Value:
        x = self.value(x_v)
        k = ir.RankedTensorType(weight.type).shape[1]
        if _shape(x_v)[-1] != k or ir.RankedTensorType(x.type).shape[1] != k:
            raise _NoMatch("a linear over other than whole rows")
        return mpk.linear(x, weight)

    @pattern("torch.aten.mul.Tensor")
    def convert_silu_mul(self, op):
        for gate_v, up_v in ((op.operands[0], op.operands[1]), (op.operands[1], op.operands[0])):
            silu = _owner(gate_v)
            if silu is not None and silu.name == "torch.aten.silu":
                up = self.value(up_v)
                gate = self.value(silu.operands[0])
                if gate.type != up.type:
                    raise _NoMatch("broadcasting multiply")
                self.absorb(silu)
                return mpk.silu_mul(gate, up)
        raise _NoMatch("no silu operand")

    @pattern("torch.aten.add.Tensor")
    def convert_add(self, op):
        if _const(op.operands[2]) != 1:
            raise _NoMatch("add with alpha")
        a, b = self.value(op.operands[0]), self.value(op.operands[1])
        if a.type != b.type:
            raise _NoMatch("broadcasting add")
        return mpk.add(a, b)

    @pattern("torch.aten.cat")
    def convert_rope(self, op):
        # cat([x1*cos - x2*sin, x2*cos + x1*sin], -1) with x1, x2 the halves of
        # each head of x, cos/sin of angle = positions * inv_freq.
        rotated_lo, rotated_hi = _list_operands(op.operands[0])
        sub = self.producer(rotated_lo, "torch.aten.sub.Tensor")
        add = self.producer(rotated_hi, "torch.aten.add.Tensor")
        x1_cos, x2_sin = (self.producer(v, "torch.aten.mul.Tensor") for v in sub.operands[:2])
        x2_cos, x1_sin = (self.producer(v, "torch.aten.mul.Tensor") for v in add.operands[:2])
        lo = self.producer(x1_cos.operands[0], "torch.aten.slice.Tensor")
        hi = self.producer(x2_sin.operands[0], "torch.aten.slice.Tensor")
        if (x1_sin.operands[0] != lo.result or x2_cos.operands[0] != hi.result
                or x1_cos.operands[1] != x2_cos.operands[1] or x2_sin.operands[1] != x1_sin.operands[1]
                or lo.operands[0] != hi.operands[0]):
            raise _NoMatch("not a rotate-half rotation")
        cos = self.producer(self.strip_layout(x1_cos.operands[1]), "torch.aten.cos")
        sin = self.producer(self.strip_layout(x2_sin.operands[1]), "torch.aten.sin")
        if self.strip_layout(cos.operands[0]) != self.strip_layout(sin.operands[0]):
            raise _NoMatch("cos and sin of different angles")
        angle = self.producer(self.strip_layout(cos.operands[0]), "torch.aten.mul.Tensor")
        inv_freq, positions = None, None
        for a, b in ((angle.operands[0], angle.operands[1]), (angle.operands[1], angle.operands[0])):
            literal = _owner(self.strip_layout(a))
            if literal is not None and literal.name == "torch.vtensor.literal":
                inv_freq = [float(f) for f in ir.DenseFPElementsAttr(literal.attributes["value"])]
                positions = self.positions(b)
                break
        if inv_freq is None:
            raise _NoMatch("the angle is not positions * constant frequencies")
        x = lo.operands[0]
        half = _shape(x)[-1] // 2
        if (_const(lo.operands[2]), _const(lo.operands[3])) != (0, half) or _const(hi.operands[2]) != half \
                or len(inv_freq) != half or _const(op.operands[1]) not in (-1, len(_shape(x)) - 1):
            raise _NoMatch("halves do not split the last dimension")
        return mpk.rope(self.value(x), positions, inv_freq)

    @pattern("torch.aten.index_put", "torch.aten.index_put.hacked_twin")
    def convert_kv_append(self, op):
        # cache[arange(B), positions] = new  (accumulate = false)
        cache = self.value(op.operands[0])
        rows, positions = _list_operands(op.operands[1])
        arange = self.producer(self.strip_layout(rows), "torch.aten.arange")
        if _const(op.operands[3]) or _const(arange.operands[0]) != _shape(op.operands[0])[0]:
            raise _NoMatch("not one row per sequence (rows must be arange(B), accumulate false)")
        if _owner(cache) is None or _owner(cache).name not in ("mpk.state", "mpk.kv_append"):
            raise _NoMatch("index_put into something that is not a KV cache")
        # The new rows may arrive reshaped (at batch 1 export drops the batch dim).
        new = self.value(self.strip_layout(op.operands[2]))
        cache_shape, new_shape = (ir.RankedTensorType(v.type).shape for v in (cache, new))
        if new_shape != [cache_shape[0], cache_shape[2]]:
            raise _NoMatch("new rows do not match the cache")
        return mpk.kv_append(cache, new, self.positions(positions))

    @pattern("torch.aten.scaled_dot_product_attention")
    def convert_attention(self, op):
        # sdpa(q [B,Hq,1,D], k [B,Hkv,S,D], v, mask [B,1,1,S] = arange(S) <= pos,
        #      dropout, is_causal, scale, enable_gqa)
        q_v, k_v, v_v, mask_v = op.operands[:4]
        if _const(op.operands[4]) not in (0.0, 0) or _const(op.operands[5]):
            raise _NoMatch("dropout or is_causal attention")
        q_shape = _shape(q_v)
        head_dim = q_shape[-1]
        if q_shape[2] != 1:
            raise _NoMatch("more than one query per sequence")
        caches = []
        for kv in (k_v, v_v):
            # [B, S, Hkv*D] cache viewed as [B, S, Hkv, D] then heads moved forward.
            transpose = self.producer(kv, "torch.aten.transpose.int")
            caches.append(self.value(self.strip_layout(transpose.operands[0])))
        mask = self.producer(self.strip_layout(mask_v), "torch.aten.le.Tensor", "torch.aten.ge.Tensor")
        arange_side, pos_side = (0, 1) if mask.name == "torch.aten.le.Tensor" else (1, 0)
        self.producer(self.strip_layout(mask.operands[arange_side]), "torch.aten.arange")
        positions = self.positions(mask.operands[pos_side])
        scale = _const(op.operands[6]) if len(op.operands) > 6 else None
        return mpk.attention(self.value(q_v), caches[0], caches[1], positions, head_dim,
                             head_dim ** -0.5 if scale is None else scale)

    @pattern("torch.aten.argmax")
    def convert_argmax(self, op):
        # argmax(logits, dim=-1, keepdim=false); a following cast to int32 is folded.
        logits = self.value(op.operands[0])
        if _const(op.operands[1]) not in (-1, 1) or _const(op.operands[2]):
            raise _NoMatch("argmax over a dimension other than the vocabulary")
        index_type = builtin_type(op.results[0].type).element_type
        return mpk.argmax(logits, index_type)

    @pattern("torch.aten._to_copy")
    def convert_index_cast(self, op):
        # An integer cast of argmax's result: the argmax produces that type directly.
        source = self.value(op.operands[0])
        argmax = _owner(source)
        if argmax is None or argmax.name != "mpk.argmax":
            raise _NoMatch("only casts of argmax results are supported")
        with ir.InsertionPoint(argmax), argmax.location:
            return mpk.argmax(argmax.operands[0], builtin_type(op.results[0].type).element_type)


# Ops that patterns absorb as parts of a larger match (never converted alone).
_INTERIOR_OPS = {"torch.aten.silu", "torch.aten.cos", "torch.aten.sin", "torch.aten.slice.Tensor",
                 "torch.aten.sub.Tensor", "torch.aten.arange",
                 "torch.aten.le.Tensor", "torch.aten.ge.Tensor", "torch.aten.rsqrt",
                 "torch.aten.add.Scalar", "torch.aten.mean.dim", "torch.aten.pow.Tensor_Scalar",
                 "torch.aten.t"}
_KNOWN_OPS = set(_PATTERNS) | _INTERIOR_OPS | _LAYOUT_OPS | _CONSTANT_OPS

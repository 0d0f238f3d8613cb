"""mpk-shard: one rank's share of a tensor-parallel decode step, on graph IR.

`mpk-shard{tp=N rank=r}` rewrites the decode function into rank r's of N
(Megatron-style, by the weights' Hugging Face names):

- q_proj, k_proj, v_proj, gate_proj and up_proj are column-parallel: the rank
  keeps its rows of the weight (its query heads, KV heads, MLP columns);
- o_proj and down_proj are row-parallel: the rank keeps its columns, and an
  `mpk.allreduce` after the product sums the ranks' partial results (a
  residual fused into the product is added on rank 0 only);
- the KV caches keep the rank's KV heads. With fewer KV heads than ranks, each
  KV head is replicated on tp / Hkv ranks (those whose query heads use it);
- the embedding, the norms and the LM head are replicated.

Every sharded weight and cache gets `mpk.shard = array<i64: dim, start, size>`:
the slice of the full tensor (of the one checkpoint) the rank holds, which
the graph interpreter (and a loader) cut at load time. Shapes are rewritten
in place through the graph; heads, KV heads or MLP columns that do not split
evenly are an error at the op.
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk import dialects as mpk
from mpk.lowering import ModulePass, shape

SHARD_ATTR = "mpk.shard"
COLUMNS = ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")   # rows of the weight split
ROWS = ("o_proj", "down_proj")                                       # columns split, then allreduce
# Ops whose result has their first operand's type (an attention: q's; a kv_append: its cache's).
SAME_TYPE = ("mpk.rmsnorm", "mpk.rope", "mpk.silu_mul", "mpk.add", "mpk.allreduce", "mpk.attention",
             "mpk.kv_append")


@dataclasses.dataclass
class MpkShard(ModulePass):
    name = "mpk-shard"
    summary = "one rank's share of a tensor-parallel decode step (column/row-parallel linears, allreduce)"
    tp: int = 1
    rank: int = 0

    def run(self, module: ir.Operation) -> None:
        if self.tp < 1 or not 0 <= self.rank < self.tp:
            self.fail(module, f"expected tp >= 1 and 0 <= rank < tp, got tp={self.tp} rank={self.rank}")
        funcs = [op.operation for op in module.regions[0].blocks[0].operations if op.operation.name == "func.func"]
        if len(funcs) != 1:
            self.fail(module, f"expected one decode function, found {len(funcs)}")
        if self.tp == 1:
            return
        block = funcs[0].regions[0].blocks[0]
        ops = [op.operation for op in block.operations]
        self._heads(module, ops)
        for op in ops:
            if op.name == "mpk.weight":
                self._weight(op)
            elif op.name == "mpk.state":
                self._cache(op)
            elif op.name == "mpk.linear":
                self._linear(op)
            elif op.name in SAME_TYPE:
                op.results[0].set_type(op.operands[0].type)
        mpk.sync_function_type(funcs[0])

    # ----------------------------------------------------------------- slices

    def _heads(self, module, ops) -> None:
        """Query heads, KV heads and head_dim of the attentions (all alike)."""
        attentions = [op for op in ops if op.name == "mpk.attention"]
        if not attentions:
            self.fail(module, "mpk-shard needs the decode step's attentions (none found)")
        op = attentions[0]
        self.head_dim = ir.IntegerAttr(op.attributes["head_dim"]).value
        self.q_heads = shape(op.operands[0])[1] // self.head_dim
        self.kv_heads = shape(op.operands[1])[2] // self.head_dim
        if self.q_heads % self.tp:
            self.fail(op, f"{self.q_heads} query heads do not split over tp={self.tp} ranks")
        if self.kv_heads % self.tp and self.tp % self.kv_heads:
            self.fail(op, f"{self.kv_heads} KV heads neither split over tp={self.tp} ranks nor replicate on them")

    def _range(self, role: str, extent: int, op) -> tuple[int, int]:
        """(start, size) of the rank's share of a dimension of `extent` for `role`."""
        if role in ("q_proj", "o_proj"):
            size = self.q_heads // self.tp * self.head_dim
            return self.rank * size, size
        if role in ("k_proj", "v_proj", "cache"):
            heads = max(self.kv_heads // self.tp, 1)            # replicated: one KV head a rank
            first = self.rank * self.kv_heads // self.tp
            return first * self.head_dim, heads * self.head_dim
        if extent % self.tp:
            self.fail(op, f"{extent} MLP columns do not split over tp={self.tp} ranks")
        size = extent // self.tp
        return self.rank * size, size

    def _slice(self, op, dim: int, role: str) -> None:
        t = ir.RankedTensorType(op.results[0].type)
        dims = list(t.shape)
        start, size = self._range(role, dims[dim], op)
        dims[dim] = size
        op.results[0].set_type(ir.RankedTensorType.get(dims, t.element_type))
        op.attributes[SHARD_ATTR] = ir.DenseI64ArrayAttr.get([dim, start, size])

    def _weight(self, op) -> None:
        role = _role(ir.StringAttr(op.attributes["name"]).value)
        if role in COLUMNS:
            self._slice(op, 0, role)
        elif role in ROWS:
            self._slice(op, 1, role)

    def _cache(self, op) -> None:
        if len(shape(op.results[0])) == 3:                     # a KV cache [B, S, Hkv * D]
            self._slice(op, 2, "cache")

    def _linear(self, op) -> None:
        x, w = op.operands[0], op.operands[1]
        op.results[0].set_type(ir.RankedTensorType.get([shape(x)[0], shape(w)[0]],
                                                       ir.RankedTensorType(x.type).element_type))
        weight = w.owner
        if _role(ir.StringAttr(weight.attributes["name"]).value) not in ROWS:
            return
        partial = op
        if len(op.operands) == 3 and self.rank != 0:            # the residual: rank 0's partial adds it
            with ir.InsertionPoint(op), op.location:
                partial = mpk.linear(x, w).owner
            op.results[0].replace_all_uses_with(partial.results[0])
            op.erase()
        with ir.InsertionPoint.after(partial), partial.location:
            total = mpk.allreduce(partial.results[0])
        partial.results[0].replace_all_uses_with(total)
        total.owner.operands[0] = partial.results[0]           # the allreduce reads the partial


def _role(weight_name: str) -> str:
    """`model.layers.0.self_attn.q_proj.weight` -> `q_proj`."""
    return weight_name.removesuffix(".weight").rsplit(".", 1)[-1]

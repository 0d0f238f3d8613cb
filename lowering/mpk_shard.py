"""mpk-shard: a tensor-parallel decode step of N ranks, on graph IR.

`mpk-shard{tp=N}` rewrites the decode function into the program every rank
of N runs (Megatron-style, by the weights' Hugging Face names). The program
is the same on every rank, so one compile serves them all: what differs is
which slice of each weight and cache a rank holds, and that is data, cut at
load time from the one checkpoint.

- q_proj, k_proj, v_proj, gate_proj and up_proj are column-parallel: a rank
  keeps its rows of the weight (its query heads, KV heads, MLP columns);
- o_proj and down_proj are row-parallel: a rank keeps its columns, and an
  `mpk.allreduce` sums the ranks' partial products; the residual the linear
  had fused moves into the allreduce, which adds it once after the sum;
- the LM head is vocabulary-parallel: a rank computes its vocab / N logits
  and an `mpk.allgather` gives every rank the whole row, so every rank
  samples (or takes the argmax of) the same logits and the same token: the
  sampling parameters (top-k, top-p, min-p) need the whole row, which an
  argmax-only combine would not serve;
- the KV caches keep the rank's KV heads. With fewer KV heads than ranks, each
  KV head is replicated on N / Hkv ranks (those whose query heads use it);
- the embedding and the norms are replicated.

Every sharded weight and cache gets `mpk.shard = array<i64: dim, size,
start_0, ..., start_{N-1}>`: the dimension cut, the slice's size, and where
rank r's slice starts (mpk.interp.graph.shard, mpk.runtime.weights cut it).
Shapes are rewritten in place through the graph; heads, KV heads, MLP columns
or a vocabulary that do not split evenly are an error at the op.
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
SAMPLERS = ("mpk.argmax", "mpk.sample")


@dataclasses.dataclass
class MpkShard(ModulePass):
    name = "mpk-shard"
    summary = "the decode step of N tensor-parallel ranks (column/row-parallel linears, vocab-parallel head)"
    tp: int = 1

    def run(self, module: ir.Operation) -> None:
        if self.tp < 1:
            self.fail(module, f"expected tp >= 1, got tp={self.tp}")
        funcs = [op.operation for op in module.regions[0].blocks[0].operations if op.operation.name == "func.func"]
        if len(funcs) != 1:
            self.fail(module, f"expected one decode function, found {len(funcs)}")
        if self.tp == 1:
            return
        block = funcs[0].regions[0].blocks[0]
        ops = [op.operation for op in block.operations]
        if any(op.name in ("mpk.allreduce", "mpk.allgather") for op in ops):
            self.fail(module, "the module is sharded already (it has allreduces)")
        self._heads(module, ops)
        heads = self._lm_heads(ops)
        for op in ops:
            if op.name == "mpk.weight":
                self._weight(op)
            elif op.name == "mpk.state":
                self._cache(op)
            elif op.name == "mpk.linear":
                self._linear(op, op in heads)
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

    def _lm_heads(self, ops) -> list:
        """The linears whose logits are returned or sampled: vocabulary-parallel."""
        heads = []
        for op in ops:
            if op.name != "mpk.linear" or len(op.operands) != 2:
                continue
            users = [u.owner.name for u in op.results[0].uses]
            if users and all(u in SAMPLERS or u == "func.return" for u in users):
                heads.append(op)
        return heads

    def _slices(self, role: str, extent: int, op) -> tuple[int, list[int]]:
        """The size of a rank's share of a dimension of `extent` for `role`, and where
        each rank's starts."""
        if role in ("q_proj", "o_proj"):
            size = self.q_heads // self.tp * self.head_dim
            return size, [r * size for r in range(self.tp)]
        if role in ("k_proj", "v_proj", "cache"):
            heads = max(self.kv_heads // self.tp, 1)            # replicated: one KV head a rank
            return heads * self.head_dim, [r * self.kv_heads // self.tp * self.head_dim for r in range(self.tp)]
        if extent % self.tp:
            what = "vocabulary rows" if role == "lm_head" else "MLP columns"
            self.fail(op, f"{extent} {what} do not split over tp={self.tp} ranks")
        size = extent // self.tp
        return size, [r * size for r in range(self.tp)]

    def _slice(self, op, dim: int, role: str) -> None:
        t = ir.RankedTensorType(op.results[0].type)
        dims = list(t.shape)
        size, starts = self._slices(role, dims[dim], op)
        dims[dim] = size
        op.results[0].set_type(ir.RankedTensorType.get(dims, t.element_type))
        op.attributes[SHARD_ATTR] = ir.DenseI64ArrayAttr.get([dim, size, *starts])

    def _weight(self, op) -> None:
        role = _role(ir.StringAttr(op.attributes["name"]).value)
        if role in COLUMNS:
            self._slice(op, 0, role)
        elif role in ROWS:
            self._slice(op, 1, role)

    def _cache(self, op) -> None:
        if len(shape(op.results[0])) == 3:                     # a KV cache [B, S, Hkv * D]
            self._slice(op, 2, "cache")

    def _linear(self, op, lm_head: bool) -> None:
        x, w = op.operands[0], op.operands[1]
        if lm_head:
            w = self._own_weight(op)
            self._slice(w.owner, 0, "lm_head")
        local = ir.RankedTensorType.get([shape(x)[0], shape(w)[0]], ir.RankedTensorType(x.type).element_type)
        role = _role(ir.StringAttr(w.owner.attributes["name"]).value)
        if not lm_head and role not in ROWS:
            op.results[0].set_type(local)
            return
        residual = list(op.operands)[2:]
        with ir.InsertionPoint(op), op.location:
            partial = mpk.linear(x, w)
            total = mpk.allgather(partial, self.tp) if lm_head else mpk.allreduce(partial, self.tp, *residual)
        op.results[0].replace_all_uses_with(total)
        op.erase()

    def _own_weight(self, linear) -> ir.Value:
        """The LM head's weight as an op of its own: a tied embedding keeps the whole table."""
        w = linear.operands[1]
        if all(u.owner == linear for u in w.uses):
            return w
        with ir.InsertionPoint(linear), linear.location:
            own = ir.Operation.create("mpk.weight", results=[w.type],
                                      attributes={"name": w.owner.attributes["name"]}).results[0]
        linear.operands[1] = own
        return own


def _role(weight_name: str) -> str:
    """`model.layers.0.self_attn.q_proj.weight` -> `q_proj`."""
    return weight_name.removesuffix(".weight").rsplit(".", 1)[-1]

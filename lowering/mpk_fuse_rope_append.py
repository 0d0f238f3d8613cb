"""mpk-fuse-rope-append: the QK-norms, ropes and kv_appends feeding an attention -> one `rope_append`.

    q' = rope(rmsnorm(q)), k_cache' = kv_append(k_cache, rope(rmsnorm(k))),
    v_cache' = kv_append(v_cache, v), attention(q', k_cache', v_cache', pos)
 -> q', k_cache', v_cache' = rope_append(q, k, v, k_cache, v_cache, pos, [q_norm_w, k_norm_w])

(lowering/kinds/rope_append.py): one task per sequence and KV head instead
of three event hops; the QK-norms (Qwen3) only when both have the same eps
and a per-head weight. Each fused value must have no other user, and the two
ropes the same frequencies, equal to the attention's head_dim. mpk-partition
may take the rope_append into a split attention's tasks (`rope-in-attention`).
"""

from __future__ import annotations

import dataclasses

from mpk.dialects.taskir import python_value
from mpk.lowering import GraphRewrite, attributes, create, only_use, shape


@dataclasses.dataclass
class MpkFuseRopeAppend(GraphRewrite):
    name = "mpk-fuse-rope-append"
    summary = "fuse the QK-norms, ropes and kv_appends that feed an attention into one rope_append op"

    def patterns(self):
        return [("mpk.attention", self.fuse)]

    def fuse(self, attention, rewriter):
        attention = attention.operation
        q, kc, vc, pos = attention.operands
        rope_q, append_k, append_v = (only_use(q, "mpk.rope"), only_use(kc, "mpk.kv_append"),
                                      only_use(vc, "mpk.kv_append"))
        if rope_q is None or append_k is None or append_v is None:
            return True
        rope_k = only_use(append_k.operands[1], "mpk.rope")
        if rope_k is None or str(rope_q.attributes["inv_freq"]) != str(rope_k.attributes["inv_freq"]):
            return True
        if any(op.operands[i] != pos for op, i in ((rope_q, 1), (rope_k, 1), (append_k, 2), (append_v, 2))):
            return True
        head_dim = python_value(attention.attributes["head_dim"])
        if 2 * len(python_value(rope_q.attributes["inv_freq"])) != head_dim:
            return True
        params = {"head_dim": attention.attributes["head_dim"], "inv_freq": rope_q.attributes["inv_freq"]}
        qn, kn = (only_use(op.operands[0], "mpk.rmsnorm") for op in (rope_q, rope_k))
        norms_fuse = (qn is not None and kn is not None and str(qn.attributes["eps"]) == str(kn.attributes["eps"])
                      and shape(qn.operands[1]) == shape(kn.operands[1]) == [head_dim])
        if norms_fuse:
            params["eps"] = qn.attributes["eps"]
            sources, norms = [qn.operands[0], kn.operands[0]], [qn.operands[1], kn.operands[1]]
        else:
            sources, norms = [rope_q.operands[0], rope_k.operands[0]], []
        fused = create(attention, "mpk.rope_append",
                       [*sources, append_v.operands[1], append_k.operands[0], append_v.operands[0], pos, *norms],
                       [q.type, kc.type, vc.type], params)
        rewriter.replace_op(attention, create(attention, "mpk.attention", [*fused.results, pos], [
            attention.results[0].type], attributes(attention)))
        for op in (append_v, append_k, rope_k, rope_q) + ((kn, qn) if norms_fuse else ()):
            rewriter.erase_op(op)
        return None

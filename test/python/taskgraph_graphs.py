"""Decoder graph IR built with the mpk builders, for the task-graph tests.

`decoder_graph` writes the graph the frontend produces for Qwen3/Llama
(same ops, same weight names), without torch, so real sizes (qwen3-8b) build
in a fraction of a second. `random_weights` gives fresh random values for
every weight and a prefilled cache for every state.
"""

from __future__ import annotations

import numpy as np
from mlir import ir

from mlir.dialects import func

from mpk import dialects as mpk
from mpk import lowering
from mpk.models.config import ModelConfig, rope_inv_freq

# The graph fusions the driver runs before mpk-partition, as pipeline text.
FUSIONS = ",".join(lowering.FUSIONS)


def decoder_graph(config: ModelConfig, batch: int, max_seq: int, dtype: str = "f32",
                  return_logits: bool = True) -> ir.Module:
    c = config
    with ir.Location.unknown():
        module = ir.Module.create()
        elt = ir.Type.parse(dtype)
        i32 = ir.IntegerType.get_signless(32)
        t = lambda *shape: mpk.tensor(shape, elt)
        q_dim, kv_dim = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        results = [mpk.tensor([batch], i32)] + ([t(batch, c.vocab_size)] if return_logits else [])
        ftype = ir.FunctionType.get([mpk.tensor([batch], i32)] * 2, results)
        with ir.InsertionPoint(module.body):
            f = func.FuncOp("decode_step", ftype)
            with ir.InsertionPoint(f.add_entry_block()):
                tokens, positions = f.arguments
                w = lambda name, *shape: mpk.weight(name, t(*shape))
                inv_freq = rope_inv_freq(c)
                embed = w("model.embed_tokens.weight", c.vocab_size, c.hidden_size)
                h = mpk.embedding(tokens, embed)
                for i in range(c.num_layers):
                    p = f"model.layers.{i}."
                    x = mpk.rmsnorm(h, w(p + "input_layernorm.weight", c.hidden_size), c.rms_norm_eps)
                    q = mpk.linear(x, w(p + "self_attn.q_proj.weight", q_dim, c.hidden_size))
                    k = mpk.linear(x, w(p + "self_attn.k_proj.weight", kv_dim, c.hidden_size))
                    v = mpk.linear(x, w(p + "self_attn.v_proj.weight", kv_dim, c.hidden_size))
                    if c.qk_norm:
                        q = mpk.rmsnorm(q, w(p + "self_attn.q_norm.weight", c.head_dim), c.rms_norm_eps)
                        k = mpk.rmsnorm(k, w(p + "self_attn.k_norm.weight", c.head_dim), c.rms_norm_eps)
                    q, k = mpk.rope(q, positions, inv_freq), mpk.rope(k, positions, inv_freq)
                    kc = mpk.state(p + "self_attn.k_cache", t(batch, max_seq, kv_dim))
                    vc = mpk.state(p + "self_attn.v_cache", t(batch, max_seq, kv_dim))
                    kc, vc = mpk.kv_append(kc, k, positions), mpk.kv_append(vc, v, positions)
                    o = mpk.attention(q, kc, vc, positions, c.head_dim, c.head_dim ** -0.5)
                    h = mpk.linear(o, w(p + "self_attn.o_proj.weight", c.hidden_size, q_dim), h)
                    x = mpk.rmsnorm(h, w(p + "post_attention_layernorm.weight", c.hidden_size),
                                    c.rms_norm_eps)
                    gate = mpk.linear(x, w(p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size))
                    up = mpk.linear(x, w(p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size))
                    h = mpk.linear(mpk.silu_mul(gate, up),
                                   w(p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size), h)
                h = mpk.rmsnorm(h, w("model.norm.weight", c.hidden_size), c.rms_norm_eps)
                head = embed if c.tie_word_embeddings else w("lm_head.weight", c.vocab_size, c.hidden_size)
                logits = mpk.linear(h, head)
                func.ReturnOp([mpk.argmax(logits)] + ([logits] if return_logits else []))
    return module


def graph_arrays(module: ir.Module, seed: int, pos0: np.ndarray, scale: float = 0.5) -> dict:
    """Random values for every weight and state of a graph (caches prefilled below pos0)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for op in module.body.operations[0].regions[0].blocks[0].operations:
        op = op.operation
        if op.name in ("mpk.weight", "mpk.state"):
            name = ir.StringAttr(op.attributes["name"]).value
            shape = tuple(ir.RankedTensorType(op.results[0].type).shape)
            a = rng.standard_normal(shape).astype(np.float32)
            if op.name == "mpk.weight" and len(shape) == 2 and "embed" not in name:
                a *= scale / np.sqrt(shape[1])
            if op.name == "mpk.state":
                for b, p in enumerate(pos0):
                    a[b, p:] = np.nan     # rows the kernel must write before anyone reads them
            arrays[name] = a
    return arrays

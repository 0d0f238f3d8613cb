"""The decoder: Qwen3 and Llama 3 in one small PyTorch module (gpt-fast style).

Written for the decode step: one new token per sequence, KV caches of a fixed
batch and maximum length held as buffers and updated in place. Parameter names
are the Hugging Face ones, so a transformers checkpoint's state dict loads
as is. Activations keep heads flattened ([B, heads * head_dim]) between
operators, the layout of mpk's graph IR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, rope_inv_freq


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.weight.shape[0],), self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, q_dim, kv_dim = config, config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        self.q_proj = nn.Linear(c.hidden_size, q_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, kv_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, kv_dim, bias=False)
        self.o_proj = nn.Linear(q_dim, c.hidden_size, bias=False)
        if c.qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
            self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
        # [batch, max_seq, kv_heads * head_dim], allocated by Decoder.setup_caches.
        self.register_buffer("k_cache", None, persistent=False)
        self.register_buffer("v_cache", None, persistent=False)

    def forward(self, x, positions, inv_freq):
        c, batch = self.config, x.shape[0]
        q = self.q_proj(x).view(batch, c.num_heads, c.head_dim)
        k = self.k_proj(x).view(batch, c.num_kv_heads, c.head_dim)
        v = self.v_proj(x)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)

        # Append this step's key and value at each sequence's position.
        rows = torch.arange(batch, device=x.device)
        self.k_cache[rows, positions] = k.reshape(batch, -1)
        self.v_cache[rows, positions] = v

        # One query per sequence against cache rows 0..position (inclusive).
        max_seq = self.k_cache.shape[1]
        keys = self.k_cache.view(batch, max_seq, c.num_kv_heads, c.head_dim).transpose(1, 2)
        values = self.v_cache.view(batch, max_seq, c.num_kv_heads, c.head_dim).transpose(1, 2)
        visible = torch.arange(max_seq, device=x.device)[None, :] <= positions[:, None]
        out = F.scaled_dot_product_attention(
            q.view(batch, c.num_heads, 1, c.head_dim), keys, values,
            attn_mask=visible.view(batch, 1, 1, max_seq), scale=c.head_dim ** -0.5, enable_gqa=True)
        return self.o_proj(out.reshape(batch, -1))


def apply_rope(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate-half rotary embedding of x [B, heads, head_dim] at positions [B]."""
    angle = positions.float()[:, None, None] * inv_freq  # [B, 1, head_dim / 2], fp32
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, positions, inv_freq):
        x = x + self.self_attn(self.input_layernorm(x), positions, inv_freq)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderModel(nn.Module):
    """The `model.` prefix of Hugging Face names: embeddings, layers, final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class Decoder(nn.Module):
    """`forward(tokens [B], positions [B]) -> (next_tokens [B] int32, logits [B, V])`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = DecoderModel(config)
        # Tied models read the embedding table as LM head (no lm_head.weight).
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        # Derived from the config, not a checkpoint tensor: not in the state dict.
        self.register_buffer("inv_freq", torch.tensor(rope_inv_freq(config), dtype=torch.float32),
                             persistent=False)

    def _apply(self, fn, *args, **kwargs):
        # Keep the rope frequencies in fp32 when the model moves to bf16/f16.
        inv_freq = self.inv_freq
        super()._apply(fn, *args, **kwargs)
        self.inv_freq = inv_freq.to(device=self.inv_freq.device)
        return self

    def setup_caches(self, batch: int, max_seq: int, dtype: torch.dtype | None = None):
        """Allocate zeroed KV caches [batch, max_seq, kv_heads * head_dim] per layer."""
        c = self.config
        table = self.model.embed_tokens.weight
        dtype, device = dtype or table.dtype, table.device
        for layer in self.model.layers:
            attn = layer.self_attn
            for name in ("k_cache", "v_cache"):
                attn.register_buffer(name, torch.zeros(batch, max_seq, c.num_kv_heads * c.head_dim,
                                                       dtype=dtype, device=device), persistent=False)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor):
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x, positions, self.inv_freq)
        head = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        logits = F.linear(self.model.norm(x), head)
        return torch.argmax(logits, dim=-1).to(torch.int32), logits

"""Model configuration: one dataclass for the Qwen3 and Llama 3 decoders.

Field names follow the Hugging Face `config.json` keys where one exists, so
`from_hf_config` is a rename table, not a translation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path


class ConfigError(ValueError):
    """A config that cannot describe a supported decoder."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str                      # "qwen3" or "llama"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    qk_norm: bool = False            # Qwen3: RMSNorm over each head of q and k before rope
    # Llama 3 frequency scaling: {"factor", "low_freq_factor", "high_freq_factor",
    # "original_max_position_embeddings"}; None for plain rope.
    rope_scaling: dict | None = None
    max_position_embeddings: int = 4096

    def __post_init__(self):
        if self.family not in ("qwen3", "llama"):
            raise ConfigError(f"unknown model family {self.family!r} (expected 'qwen3' or 'llama')")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                     "num_heads", "num_kv_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads ({self.num_heads}) must be a multiple of "
                              f"num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for rotary embedding, got {self.head_dim}")
        if self.rms_norm_eps <= 0:
            raise ConfigError(f"rms_norm_eps must be positive, got {self.rms_norm_eps}")

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def num_parameters(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        q = self.num_heads * self.head_dim
        per_layer = h * q * 2 + h * kv * 2 + 3 * h * self.intermediate_size + 2 * h
        per_layer += 2 * self.head_dim if self.qk_norm else 0
        embeddings = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + embeddings + h


def rope_inv_freq(config: ModelConfig) -> list[float]:
    """Rotary inverse frequencies (float64 math, as Hugging Face computes them)."""
    d = config.head_dim
    inv_freq = [1.0 / config.rope_theta ** (2 * i / d) for i in range(d // 2)]
    s = config.rope_scaling
    if not s:
        return inv_freq
    # Llama 3: long wavelengths slowed down by `factor`, short ones kept, a smooth
    # interpolation between the two bands.
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_context = s["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
    scaled = []
    for f in inv_freq:
        wavelen = 2 * math.pi / f
        if wavelen < high_freq_wavelen:
            scaled.append(f)
        elif wavelen > low_freq_wavelen:
            scaled.append(f / factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            scaled.append((1 - smooth) * f / factor + smooth * f)
    return scaled


# ----------------------------------------------------------------- presets

def _qwen3(vocab, hidden, inter, layers, heads, kv_heads, tied, head_dim=128):
    return ModelConfig("qwen3", vocab, hidden, inter, layers, heads, kv_heads, head_dim,
                       rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=tied,
                       qk_norm=True, max_position_embeddings=40960)


_LLAMA3_SCALING = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def _llama3(hidden, inter, layers, heads, kv_heads, tied, head_dim, factor=32.0):
    return ModelConfig("llama", 128256, hidden, inter, layers, heads, kv_heads, head_dim,
                       rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=tied,
                       rope_scaling={**_LLAMA3_SCALING, "factor": factor},
                       max_position_embeddings=131072)


PRESETS: dict[str, ModelConfig] = {
    "qwen3-0.6b": _qwen3(151936, 1024, 3072, 28, 16, 8, tied=True),
    "qwen3-1.7b": _qwen3(151936, 2048, 6144, 28, 16, 8, tied=True),
    "qwen3-4b": _qwen3(151936, 2560, 9728, 36, 32, 8, tied=True),
    "qwen3-8b": _qwen3(151936, 4096, 12288, 36, 32, 8, tied=False),
    "qwen3-14b": _qwen3(151936, 5120, 17408, 40, 40, 8, tied=False),
    "llama3.2-1b": _llama3(2048, 8192, 16, 32, 8, tied=True, head_dim=64),
    "llama3.2-3b": _llama3(3072, 8192, 28, 24, 8, tied=True, head_dim=128),
    "llama3.1-8b": _llama3(4096, 14336, 32, 32, 8, tied=False, head_dim=128, factor=8.0),
    # `mpk demo`'s model: Qwen3's structure (tied embeddings, QK-norm, GQA 4:1) at a
    # size the CPU task interpreter runs in seconds (4.1M parameters).
    "qwen3-demo": _qwen3(4096, 256, 768, 4, 8, 2, tied=True, head_dim=32),
    # Tiny shapes for tests: same structure, seconds to import and interpret.
    "qwen3-tiny": ModelConfig("qwen3", 256, 64, 128, 2, 4, 2, 16, rope_theta=1e6,
                              tie_word_embeddings=True, qk_norm=True),
    "qwen3-tiny-untied": ModelConfig("qwen3", 256, 64, 128, 2, 4, 2, 16, rope_theta=1e6,
                                     qk_norm=True),
    "llama3-tiny": ModelConfig("llama", 256, 64, 160, 2, 4, 1, 16, rope_theta=500000.0,
                               rms_norm_eps=1e-5, rope_scaling={**_LLAMA3_SCALING,
                               "factor": 8.0, "original_max_position_embeddings": 64}),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


# ------------------------------------------------------- Hugging Face config

_FAMILIES = {"qwen3": "qwen3", "llama": "llama"}


def from_hf_config(path: str | Path) -> ModelConfig:
    """Read a Hugging Face `config.json` (a file, or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        hf = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read a JSON config: {e}") from None
    model_type = hf.get("model_type")
    if model_type not in _FAMILIES:
        raise ConfigError(f"{path}: model_type {model_type!r} is not supported "
                          f"(supported: {', '.join(_FAMILIES)})")
    missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size",
                           "num_hidden_layers", "num_attention_heads") if k not in hf]
    if missing:
        raise ConfigError(f"{path}: missing required keys: {', '.join(missing)}")
    scaling = hf.get("rope_scaling") or hf.get("rope_parameters")
    if scaling:
        kind = scaling.get("rope_type", scaling.get("type"))
        if kind == "default":
            scaling = None
        elif kind != "llama3":
            raise ConfigError(f"{path}: rope_scaling type {kind!r} is not supported "
                              f"(supported: llama3)")
    theta = hf.get("rope_theta", (hf.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ConfigError(f"{path}: attention_bias/mlp_bias are not supported")
    heads = hf["num_attention_heads"]
    try:
        return ModelConfig(
            family=_FAMILIES[model_type],
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            rope_theta=float(theta),
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qk_norm=model_type == "qwen3",
            rope_scaling=dict(scaling) if scaling else None,
            max_position_embeddings=hf.get("max_position_embeddings", 4096))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def to_hf_config(config: ModelConfig) -> dict:
    """The `config.json` a Hugging Face checkpoint of this shape would carry."""
    hf = {"model_type": config.family,
          "architectures": ["Qwen3ForCausalLM" if config.family == "qwen3" else "LlamaForCausalLM"],
          "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
          "intermediate_size": config.intermediate_size, "num_hidden_layers": config.num_layers,
          "num_attention_heads": config.num_heads, "num_key_value_heads": config.num_kv_heads,
          "head_dim": config.head_dim, "rope_theta": config.rope_theta,
          "rms_norm_eps": config.rms_norm_eps, "tie_word_embeddings": config.tie_word_embeddings,
          "max_position_embeddings": config.max_position_embeddings, "hidden_act": "silu",
          "attention_bias": False, "torch_dtype": "float32"}
    if config.rope_scaling:
        hf["rope_scaling"] = dict(config.rope_scaling)
    return hf

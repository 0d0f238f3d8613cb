"""Model configuration: one dataclass for the Qwen3 and Llama 3 decoders.

Field names follow the Hugging Face `config.json` keys where one exists. One
table, FIELDS, gives every field's type, range, config.json key and default;
a ModelConfig built in Python and a config.json read by `from_hf_config` are
checked by the same rows. What the two families may have in config.json but
mpk does not implement (UNSUPPORTED: another activation, sliding windows,
biases, mixture of experts; other rope types) is refused by name, never
ignored: ignoring it would compile another model. `check_lowerable` refuses,
at import, the shapes the task kernels cannot lower, with the kernel's reason.

Every refusal is a ConfigError (a ValueError) whose message names the field,
and the file for a config.json.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path
from typing import Any, Callable


class ConfigError(ValueError):
    """A config that does not describe a decoder mpk compiles; the message names
    the field (and the file it came from)."""


FAMILIES = ("qwen3", "llama")
REQUIRED = object()             # a config.json key without a default
INT32_MAX = 2**31 - 1           # task tables and the kernels' index math are 32-bit
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _show(value) -> str:
    """A value as a config author writes it (JSON), shortened."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting: its type and range, and where config.json has it."""
    name: str                       # the ModelConfig attribute (or the rope_scaling key)
    type: type                      # int, float, bool, str; or dict with `parse`
    hf_key: str | None              # its config.json key (None: not read from config.json)
    default: Any = REQUIRED         # when config.json lacks it: a value, or a function of the fields above
    positive: bool = False
    choices: tuple = ()
    parse: Callable | None = None   # the check of a structured value (rope_scaling)

    def check(self, value, label: str | None = None, where: str = ""):
        """`value` as the field holds it (a float field takes an int and keeps a float),
        or a ConfigError naming `label` (default: the field) and ending with `where`."""
        label = label or self.name
        if self.parse:
            return self.parse(value, label)
        if self.type in (int, float):   # numpy scalars are numbers; True and False are not
            fits = not isinstance(value, bool) and isinstance(
                value, numbers.Integral if self.type is int else numbers.Real)
        else:
            fits = isinstance(value, self.type)
        if not fits:
            raise ConfigError(f"{label} must be {_TYPE_NAMES[self.type]}, got {_show(value)}{where}")
        if self.type in (int, float):
            value = self.type(value)
            if self.type is float and not math.isfinite(value):
                raise ConfigError(f"{label} must be a finite number, got {_show(value)}{where}")
            if self.positive and value <= 0:
                raise ConfigError(f"{label} must be positive, got {_show(value)}{where}")
            if self.type is int and value > INT32_MAX:
                raise ConfigError(f"{label} must be at most {INT32_MAX} (the kernels index with 32-bit "
                                  f"integers), got {value}{where}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{label} {value!r} is not supported (supported: {', '.join(self.choices)}){where}")
        return value


# ------------------------------------------------------------ rope scaling

LLAMA3_ROPE = (
    Field("factor", float, "factor", positive=True),
    Field("low_freq_factor", float, "low_freq_factor", positive=True),
    Field("high_freq_factor", float, "high_freq_factor", positive=True),
    Field("original_max_position_embeddings", int, "original_max_position_embeddings", positive=True),
)
# Keys of a rope dict that are not Llama 3's parameters: its type, and transformers 5's
# rope_parameters also carry rope_theta and partial_rotary_factor.
_ROPE_OTHER_KEYS = ("rope_type", "type", "rope_theta", "partial_rotary_factor")


def rope_scaling(value, label: str = "rope_scaling") -> dict | None:
    """A rope_scaling (or transformers 5 rope_parameters) value as ModelConfig holds
    it: None for plain rope, else Llama 3's parameters, checked. Other rope types
    (linear, dynamic, yarn, longrope, ...) are refused: mpk implements llama3 only."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be an object or null, got {_show(value)}")
    given = {k: v for k, v in value.items() if v is not None}
    kind = given.get("rope_type", given.get("type", "default" if set(given) <= {"rope_theta"} else None))
    if given.get("partial_rotary_factor", 1) != 1:
        raise ConfigError(f"{label}.partial_rotary_factor {_show(given['partial_rotary_factor'])} is not "
                          "supported (mpk rotates whole heads)")
    if kind == "default":
        return None
    if kind != "llama3":
        raise ConfigError(f"{label} type {kind!r} is not supported (supported: llama3)")
    names = [f.name for f in LLAMA3_ROPE]
    unknown = sorted(set(given) - set(names) - set(_ROPE_OTHER_KEYS))
    if unknown:
        raise ConfigError(f"{label}.{unknown[0]} is not supported (llama3 rope takes {', '.join(names)})")
    missing = [name for name in names if name not in given]
    if missing:
        raise ConfigError(f"{label} of type llama3 lacks {', '.join(missing)}")
    scaling = {"rope_type": "llama3", **{f.name: f.check(given[f.name], f"{label}.{f.name}") for f in LLAMA3_ROPE}}
    if scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
        raise ConfigError(f"{label}.high_freq_factor ({scaling['high_freq_factor']}) must be greater than "
                          f"low_freq_factor ({scaling['low_freq_factor']}): they bound the band of "
                          "wavelengths that is interpolated")
    return scaling


# ------------------------------------------------------------ the fields

def _default_head_dim(fields: dict) -> int:
    # transformers' defaults: Qwen3Config has head_dim 128, LlamaConfig hidden_size // num_attention_heads
    return 128 if fields["family"] == "qwen3" else fields["hidden_size"] // fields["num_heads"]


_DEFAULT_MAX_POSITIONS = {"qwen3": 32768, "llama": 2048}   # transformers' Qwen3Config, LlamaConfig

FIELDS = (
    #     ModelConfig field          type   config.json key            config.json default
    Field("family",                  str,   "model_type",              choices=FAMILIES),
    Field("vocab_size",              int,   "vocab_size",              positive=True),
    Field("hidden_size",             int,   "hidden_size",             positive=True),
    Field("intermediate_size",       int,   "intermediate_size",       positive=True),
    Field("num_layers",              int,   "num_hidden_layers",       positive=True),
    Field("num_heads",               int,   "num_attention_heads",     positive=True),
    Field("num_kv_heads",            int,   "num_key_value_heads",     lambda f: f["num_heads"], positive=True),
    Field("head_dim",                int,   "head_dim",                _default_head_dim, positive=True),
    Field("rope_theta",              float, "rope_theta",              10000.0, positive=True),
    Field("rms_norm_eps",            float, "rms_norm_eps",            1e-6, positive=True),
    Field("tie_word_embeddings",     bool,  "tie_word_embeddings",     False),
    Field("qk_norm",                 bool,  None,                      lambda f: f["family"] == "qwen3"),
    Field("rope_scaling",            dict,  "rope_scaling",            None, parse=rope_scaling),
    Field("max_position_embeddings", int,   "max_position_embeddings",
          lambda f: _DEFAULT_MAX_POSITIONS[f["family"]], positive=True),
)


@dataclasses.dataclass(frozen=True)
class Unsupported:
    """A feature of the families that mpk does not implement, by its config.json keys:
    refused unless each key is absent, null, or says the feature is off."""
    keys: tuple[str, ...]
    off: Callable[[Any], bool]
    why: str

    def check(self, hf: dict) -> None:
        for key in self.keys:
            if hf.get(key) is not None and not self.off(hf[key]):
                raise ConfigError(f"{key} = {_show(hf[key])}: {self.why}")


UNSUPPORTED = (
    Unsupported(("hidden_act",), lambda v: v == "silu",
                "activations other than silu are not supported (the MLP is SiLU-gated)"),
    Unsupported(("attention_bias", "mlp_bias"), lambda v: v is False,
                "attention_bias/mlp_bias are not supported (mpk's linear layers have no bias)"),
    Unsupported(("use_sliding_window",), lambda v: v is False,
                "sliding-window attention is not supported (every layer attends to its whole KV cache)"),
    Unsupported(("layer_types",), lambda v: isinstance(v, list) and all(t == "full_attention" for t in v),
                "layers other than full_attention are not supported"),
    Unsupported(("num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok",
                 "moe_intermediate_size"), lambda v: v == 0 and not isinstance(v, bool),
                "mixture-of-experts layers are not supported"),
    Unsupported(("partial_rotary_factor",), lambda v: v == 1 and not isinstance(v, bool),
                "rotary embedding over part of a head is not supported (mpk rotates whole heads)"),
)


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
    # Llama 3 frequency scaling: {"rope_type": "llama3", "factor", "low_freq_factor",
    # "high_freq_factor", "original_max_position_embeddings"}; None for plain rope.
    rope_scaling: dict | None = None
    max_position_embeddings: int = 4096

    def __post_init__(self):
        for field in FIELDS:         # types and ranges (FIELDS); numbers normalized to int / float
            object.__setattr__(self, field.name, field.check(getattr(self, field.name)))
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads ({self.num_heads}) must be a multiple of "
                              f"num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for rotary embedding, got {self.head_dim}")

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


# ------------------------------------------------------------ what the kernels lower

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}   # mpk.frontend.DTYPES


def check_lowerable(config: ModelConfig, dtype: str, *, prefill: bool = False, threads: int | None = None,
                    source: str | None = None) -> None:
    """Refuse, before the import, a shape the task kernels cannot lower (mpk-lower-tasks
    would fail after the import and the partition), with the reason.

    Mirrors the `require` calls that depend on the model's shape alone: decode
    attention (lowering/kernels/attention.py; weights of `dtype`, CTAs of `threads`,
    default the compiler's) and, with `prefill`, the bf16 prefill program's
    (attention_prefill.py); the other kernels take any size. What also depends on
    the partition's choices is left to the lowering. `source`, the config's file
    or preset name, starts the message."""
    from mpk import defaults
    from mpk.lowering.mpk_lower_tasks import LowerTasks

    if dtype not in _DTYPE_BYTES:
        raise ConfigError(f"dtype must be one of {', '.join(_DTYPE_BYTES)}, got {dtype!r}")
    D, G = config.head_dim, config.num_heads // config.num_kv_heads
    warps, smem = (threads or defaults.THREADS) // 32, LowerTasks.smem_bytes
    element_bytes = _DTYPE_BYTES[dtype]
    vec = 16 // element_bytes                       # elements in one 16-byte load
    # Shared memory of a KV group's G heads: the warps' partial results (attention._merge_warps),
    # then on the tensor cores the query heads (attention._q_offset). With rope fused into
    # attention the query heads are staged on the CUDA cores too, but whether it is fused is
    # the partition's choice: such a shape is left to fail there, not refused here.
    on_tensor_cores = dtype == "bfloat16" and D % 64 == 0 and 4 <= G <= 8     # attention._mma_fits
    scratch = -(-warps * G * (D + 2) * 4 // 16) * 16 + (G * D * element_bytes if on_tensor_cores else 0)
    why = None
    if D % vec or 32 % (D // vec):
        why = (f"head_dim {D} cannot be lowered with {dtype} weights: decode attention reads a head in "
               f"16-byte vectors of {vec} elements, at most 32 lanes a row (head_dim must be one of "
               f"{', '.join(str(vec << i) for i in range(6))})")
    elif scratch > smem:
        why = (f"{G} query heads per KV head (num_heads {config.num_heads} / num_kv_heads "
               f"{config.num_kv_heads}) of head_dim {D} cannot be lowered: decode attention needs "
               f"{scratch} bytes of shared memory for a KV group on {warps} warps, a worker has {smem}")
    elif prefill and dtype == "bfloat16" and D % 16:
        why = (f"head_dim {D} cannot be lowered for prefill: its attention runs on the tensor cores in "
               "blocks of 16 columns (head_dim must be a multiple of 16; without a prefill program, "
               "prefill_chunk=0 or --prefill-chunk 0, it compiles)")
    if why:
        raise ConfigError(f"{source}: {why}" if source else why)


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

def from_hf_config(path: str | Path) -> ModelConfig:
    """Read a Hugging Face `config.json` (a file, or a folder holding one): every key of
    FIELDS checked, every feature of UNSUPPORTED refused by name."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        hf = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:   # ValueError: bad JSON, or not UTF-8
        raise ConfigError(f"{path}: cannot read a JSON config: {e}") from None
    try:
        return _read_hf(hf, path.name)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def _read_hf(hf, file_name: str) -> ModelConfig:
    if not isinstance(hf, dict):
        raise ConfigError(f"the top level must be a JSON object, got {_show(hf)}")
    if hf.get("model_type") not in FAMILIES:
        raise ConfigError(f"model_type {hf.get('model_type')!r} is not supported (supported: {', '.join(FAMILIES)})")
    for feature in UNSUPPORTED:
        feature.check(hf)
    missing = [f.hf_key for f in FIELDS if f.default is REQUIRED and hf.get(f.hf_key) is None]
    if missing:
        raise ConfigError(f"missing required keys: {', '.join(missing)}")
    # transformers 5 writes rope_parameters (rope_type, rope_theta, scaling) for rope_theta + rope_scaling.
    rope_key = "rope_scaling" if hf.get("rope_scaling") is not None else "rope_parameters"
    rope = hf.get(rope_key)
    if hf.get("rope_theta") is None and isinstance(rope, dict):
        hf = {**hf, "rope_theta": rope.get("rope_theta")}
    values = {}
    for field in FIELDS:
        key = rope_key if field.name == "rope_scaling" else field.hf_key
        value = hf.get(key) if key else None
        if value is None:            # absent or null: transformers' default
            default = field.default
            value = default(values) if callable(default) else default
            where = f" (no {key} in {file_name}: transformers' default)" if key else ""
        else:
            where = f" ({key} in {file_name})" if key != field.name else ""
        values[field.name] = field.check(value, key if field.parse else None, where)
    return ModelConfig(**values)


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

"""Issue 16, configs and weights: bad input is one clean error naming the field or
the weight (and the file), never a traceback, and never silently accepted.

Configs: one schema (mpk.models.config.FIELDS, UNSUPPORTED, check_lowerable)
checks types, ranges, features mpk does not implement and shapes the kernels
cannot lower, at import. Weights: mpk.runtime.weights.check_weights checks
name, shape and dtype on every backend before anything is bound."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from mpk.models import PRESETS, ConfigError, ModelConfig, check_lowerable, from_hf_config, to_hf_config

# A valid tiny Llama config.json; each case below changes or removes keys.
BASE = {"model_type": "llama", "vocab_size": 64, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2}
DROP = object()
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}

# (case, changes to BASE, what the message must say: the field and why)
BAD_CONFIGS = [
    ("string-size", {"hidden_size": "64"}, 'hidden_size must be an integer, got "64"'),
    ("float-size", {"hidden_size": 64.0}, "hidden_size must be an integer, got 64.0"),
    ("bool-size", {"vocab_size": True}, "vocab_size must be an integer, got true"),
    ("zero-heads-no-head-dim", {"num_attention_heads": 0, "num_key_value_heads": DROP},
     "num_heads must be positive, got 0 (num_attention_heads in"),
    ("zero-kv-heads", {"num_key_value_heads": 0}, "num_kv_heads must be positive, got 0 (num_key_value_heads in"),
    ("zero-head-dim", {"head_dim": 0}, "head_dim must be positive, got 0"),
    ("huge-vocab", {"vocab_size": 2**40}, "vocab_size must be at most 2147483647"),
    ("nan-theta", {"rope_theta": float("nan")}, "rope_theta must be a finite number, got NaN"),
    ("llama3-rope-without-factor", {"rope_scaling": {k: v for k, v in LLAMA3.items() if k != "factor"}},
     "rope_scaling of type llama3 lacks factor"),
    ("string-rope", {"rope_scaling": "llama3"}, 'rope_scaling must be an object or null, got "llama3"'),
    ("string-rope-factor", {"rope_scaling": {**LLAMA3, "factor": "8"}},
     'rope_scaling.factor must be a number, got "8"'),
    ("empty-rope-band", {"rope_scaling": {**LLAMA3, "high_freq_factor": 1.0}},
     "rope_scaling.high_freq_factor (1.0) must be greater than low_freq_factor (1.0)"),
    ("yarn-rope", {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
     "rope_scaling type 'yarn' is not supported (supported: llama3)"),
    ("v5-yarn-rope", {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}},
     "rope_parameters type 'yarn' is not supported"),
    ("gelu", {"hidden_act": "gelu"}, 'hidden_act = "gelu": activations other than silu are not supported'),
    ("sliding-window", {"use_sliding_window": True, "sliding_window": 64},
     "use_sliding_window = true: sliding-window attention is not supported"),
    ("sliding-layer-types", {"layer_types": ["sliding_attention"]},
     "layer_types = [\"sliding_attention\"]: layers other than full_attention are not supported"),
    ("attention-bias", {"attention_bias": True}, "attention_bias = true: attention_bias/mlp_bias are not supported"),
    ("mlp-bias", {"mlp_bias": True}, "mlp_bias = true: attention_bias/mlp_bias are not supported"),
    ("moe", {"num_experts": 8, "num_experts_per_tok": 2},
     "num_experts = 8: mixture-of-experts layers are not supported"),
    ("partial-rope", {"partial_rotary_factor": 0.5}, "partial_rotary_factor = 0.5: rotary embedding over part"),
    ("missing-vocab", {"vocab_size": DROP}, "missing required keys: vocab_size"),
]


def write_config(tmp_path, changes: dict, name: str = "config.json"):
    hf = {k: v for k, v in {**BASE, **changes}.items() if v is not DROP}
    path = tmp_path / name
    path.write_text(json.dumps(hf))
    return path


def cli(capsys, *argv) -> tuple[int, str]:
    from mpk.cli import main
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, command: str, *parts: str) -> None:
    assert code == 1, err
    assert err.startswith(f"mpk {command}: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


# ------------------------------------------------------------ configs

@pytest.mark.parametrize("case, changes, message", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_a_config_error_naming_field_and_file(tmp_path, case, changes, message):
    path = write_config(tmp_path, changes, f"{case}.json")
    with pytest.raises(ConfigError) as error:
        from_hf_config(path)
    assert error.type is ConfigError and isinstance(error.value, ValueError)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


@pytest.mark.parametrize("case, changes, message", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_mpk_import_says_it_in_one_line(tmp_path, capsys, case, changes, message):
    path = write_config(tmp_path, changes, f"{case}.json")
    code, err = cli(capsys, "import", "--config", str(path), "-o", str(tmp_path / "x.mlir"))
    assert_one_line_error(code, err, "import", f"{case}.json: ", message)
    assert not (tmp_path / "x.mlir").exists()


@pytest.mark.parametrize("top", [[1, 2], "qwen3", None])
def test_top_level_that_is_not_an_object(tmp_path, capsys, top):
    path = tmp_path / "top.json"
    path.write_text(json.dumps(top))
    with pytest.raises(ConfigError, match="the top level must be a JSON object"):
        from_hf_config(path)
    code, err = cli(capsys, "import", "--config", str(path), "-o", str(tmp_path / "x.mlir"))
    assert_one_line_error(code, err, "import", "top.json: the top level must be a JSON object")


def test_config_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"model_type": "llama\xe9"}')
    code, err = cli(capsys, "import", "--config", str(path), "-o", str(tmp_path / "x.mlir"))
    assert_one_line_error(code, err, "import", "latin1.json: cannot read a JSON config")


def test_head_dim_the_kernels_cannot_lower_is_refused_at_import(tmp_path, capsys):
    path = write_config(tmp_path, {"head_dim": 12}, "hd12.json")
    assert from_hf_config(path).head_dim == 12            # a valid decoder, one mpk cannot lower
    code, err = cli(capsys, "import", "--config", str(path), "-o", str(tmp_path / "x.mlir"))
    assert_one_line_error(code, err, "import", "hd12.json: head_dim 12 cannot be lowered with float32 weights",
                          "must be one of 4, 8, 16, 32, 64, 128")
    code, err = cli(capsys, "compile", "--config", str(path), "-o", str(tmp_path / "x.mpk"), "--quiet")
    assert_one_line_error(code, err, "compile", "hd12.json: head_dim 12 cannot be lowered with bfloat16 weights")
    assert not (tmp_path / "x.mpk").exists()


def test_mpk_compile_api_refuses_before_compiling(tmp_path):
    import mpk
    path = write_config(tmp_path, {"head_dim": 12}, "hd12.json")
    with pytest.raises(ConfigError, match="head_dim 12 cannot be lowered with bfloat16 weights") as error:
        mpk.compile(path, max_seq=16, num_sms=8, arch="sm_90", path=tmp_path / "x.mpk")
    assert error.type is ConfigError
    with pytest.raises(ConfigError, match="hidden_act"):
        mpk.compile(write_config(tmp_path, {"hidden_act": "gelu"}), num_sms=8, arch="sm_90")


@pytest.mark.parametrize("dtype, prefill, head_dim, heads, kv_heads, reason", [
    ("bfloat16", True, 8, 4, 2, "head_dim 8 cannot be lowered for prefill"),
    ("float32", False, 256, 4, 2, "head_dim 256 cannot be lowered with float32 weights"),
    ("bfloat16", False, 4, 4, 2, "head_dim 4 cannot be lowered with bfloat16 weights"),
    ("bfloat16", False, 128, 32, 2, "16 query heads per KV head (num_heads 32 / num_kv_heads 2) of head_dim 128"),
])
def test_shapes_the_kernels_cannot_lower(dtype, prefill, head_dim, heads, kv_heads, reason):
    # Each verified against mpk-lower-tasks: these fail there, and the neighbours below lower.
    config = PRESETS["qwen3-tiny"].replace(head_dim=head_dim, num_heads=heads, num_kv_heads=kv_heads)
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_lowerable(config, dtype, prefill=prefill)


@pytest.mark.parametrize("dtype, prefill, head_dim, heads, kv_heads", [
    ("bfloat16", False, 8, 4, 2), ("float32", False, 4, 4, 2), ("bfloat16", True, 256, 4, 1),
    ("bfloat16", True, 128, 8, 1), ("float32", False, 64, 23, 1),
])
def test_shapes_the_kernels_lower_pass(dtype, prefill, head_dim, heads, kv_heads):
    config = PRESETS["qwen3-tiny"].replace(head_dim=head_dim, num_heads=heads, num_kv_heads=kv_heads)
    check_lowerable(config, dtype, prefill=prefill)


def test_model_config_in_python_is_checked_by_the_same_schema():
    with pytest.raises(ConfigError, match='hidden_size must be an integer, got "64"'):
        ModelConfig("llama", 64, "64", 128, 1, 4, 2, 16)
    with pytest.raises(ConfigError, match="num_kv_heads must be positive, got 0"):
        ModelConfig("llama", 64, 64, 128, 1, 4, 0, 16)
    with pytest.raises(ConfigError, match="rope_scaling of type llama3 lacks factor"):
        ModelConfig("llama", 64, 64, 128, 1, 4, 2, 16, rope_scaling={"rope_type": "llama3"})
    config = ModelConfig("llama", np.int64(64), 64, 128, 1, 4, 2, 16, rope_theta=500000)
    assert type(config.vocab_size) is int and type(config.rope_theta) is float   # numbers normalized


# Real config.json files, as published (Qwen/Qwen3-0.6B, meta-llama/Llama-3.2-1B).
QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936}
LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256}
# The same as transformers 5 writes it: rope_parameters in place of rope_theta and rope_scaling.
LLAMA32_1B_V5 = {**{k: v for k, v in LLAMA32_1B.items() if k not in ("rope_scaling", "rope_theta")},
                 "rope_parameters": {**LLAMA32_1B["rope_scaling"], "rope_theta": 500000.0}}


@pytest.mark.parametrize("hf, preset_name", [(QWEN3_06B, "qwen3-0.6b"), (LLAMA32_1B, "llama3.2-1b"),
                                             (LLAMA32_1B_V5, "llama3.2-1b")],
                         ids=["qwen3-0.6b", "llama3.2-1b", "llama3.2-1b-transformers5"])
def test_real_hf_configs_read_as_their_presets(tmp_path, hf, preset_name):
    (tmp_path / "config.json").write_text(json.dumps(hf))
    config = from_hf_config(tmp_path)
    assert config == PRESETS[preset_name]
    for dtype in ("bfloat16", "float32"):
        check_lowerable(config, dtype, prefill=True)


def test_qwen3_head_dim_defaults_as_in_transformers(tmp_path):
    # Qwen3Config's head_dim defaults to 128, not hidden_size // heads (64 here).
    hf = {k: v for k, v in QWEN3_06B.items() if k != "head_dim"}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    assert from_hf_config(tmp_path).head_dim == 128


@pytest.mark.parametrize("name", ["qwen3-tiny", "llama3-tiny"])
def test_tiny_preset_configs_still_import(tmp_path, capsys, name):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(to_hf_config(PRESETS[name])))
    code, err = cli(capsys, "import", "--quiet", "--config", str(path), "--max-seq", "8",
                    "-o", str(tmp_path / "x.mlir"))
    assert code == 0, err
    assert '"mpk.attention"' in (tmp_path / "x.mlir").read_text()


# ------------------------------------------------------------ weights

from mpk.runtime.loader import BF16, LoaderError, Session, as_float32  # noqa: E402
from mpk.runtime.weights import (WeightError, check_weights, load_safetensors, random_weights,  # noqa: E402
                                 weight_array)

NORM = "model.norm.weight"
SPECS = {NORM: {"shape": [64], "dtype": "bf16"}, "model.embed_tokens.weight": {"shape": [8, 64], "dtype": "f32"}}


@pytest.mark.parametrize("value, message", [
    (np.ones((64, 1), np.float32), "model.norm.weight: shape [64, 1] given where the bundle needs bf16 [64]"),
    (np.ones(65, np.float32), "model.norm.weight: shape [65] given where the bundle needs bf16 [64]"),
    (np.ones(64, np.int32), "model.norm.weight: int32 values given where the bundle needs floating-point bf16 [64]"),
    (np.ones(64, np.int8), "model.norm.weight: int8 values given where the bundle needs floating-point bf16 [64]"),
    (np.ones(64, bool), "model.norm.weight: bool values given"),
    ([[1.0], [2.0, 3.0]], "model.norm.weight: not an array of numbers"),
])
def test_bad_weight_is_a_weight_error_naming_it(value, message):
    with pytest.raises(WeightError) as error:
        check_weights({NORM: value, "model.embed_tokens.weight": np.zeros((8, 64), np.float32)}, SPECS)
    assert error.type is WeightError and isinstance(error.value, ValueError) and isinstance(error.value, LoaderError)
    assert message in str(error.value)


def test_float_weights_are_cast_to_the_bundles_dtype():
    torch = pytest.importorskip("torch")
    x = np.linspace(-2, 2, 64, dtype=np.float64)
    rounded = x.astype(BF16)                                    # to nearest even
    for value in (x, x.astype(np.float32), x.astype(np.float16), x.astype(BF16),
                  torch.from_numpy(x).to(torch.bfloat16), torch.from_numpy(x).float()):
        got = weight_array(NORM, value, SPECS[NORM])
        assert got.dtype == BF16
        want = (value.float().numpy() if hasattr(value, "detach") else value).astype(BF16)
        np.testing.assert_array_equal(got, want)
        assert np.abs(as_float32(got) - x).max() <= 2 ** -7     # within half a bf16 step of the values in [-2, 2]
    wide = weight_array("model.embed_tokens.weight", np.tile(rounded, (8, 1)), SPECS["model.embed_tokens.weight"])
    assert wide.dtype == np.float32
    np.testing.assert_array_equal(wide, np.tile(as_float32(rounded), (8, 1)))    # bf16 widened exactly
    with pytest.raises(WeightError, match="int64 values given"):
        weight_array(NORM, torch.ones(64, dtype=torch.int64), SPECS[NORM])
    with pytest.raises(WeightError, match="uint16 values given.*view them as ml_dtypes.bfloat16"):
        weight_array(NORM, rounded.view(np.uint16), SPECS[NORM])            # bits are not taken for bf16


def test_gpu_session_checks_every_weight_before_uploading_any():
    # Session.bind_weights without a GPU: its uploads (write) recorded on a stand-in session.
    uploads = []
    fake = types.SimpleNamespace(bundle=types.SimpleNamespace(weights=lambda: SPECS), bound_weights=set(),
                                 write=lambda name, value: uploads.append(name))
    good = {"model.embed_tokens.weight": np.zeros((8, 64), np.float32)}
    with pytest.raises(WeightError, match="model.norm.weight: int32 values given"):
        Session.bind_weights(fake, {**good, NORM: np.ones(64, np.int32)})
    with pytest.raises(WeightError, match=r"no value for weight\(s\) model.norm.weight"):
        Session.bind_weights(fake, good)
    assert uploads == []
    Session.bind_weights(fake, good, strict=False)
    Session.bind_weights(fake, {NORM: np.ones(64, np.float32)})          # the rest bound earlier
    assert uploads == ["model.embed_tokens.weight", NORM]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("mlir")
    import mpk
    return mpk.compile("qwen3-tiny", max_seq=16, steps_per_launch=2, num_sms=8, arch="sm_90", prefill_chunk=0,
                       path=tmp_path_factory.mktemp("hardening") / "tiny.mpk")


def test_interpreter_refuses_misshapen_and_integer_weights(tiny_bundle):
    import mpk
    weights = random_weights(tiny_bundle.weights(), seed=0)
    for bad, message in ((weights[NORM].reshape(64, 1), "shape [64, 1] given where the bundle needs bf16 [64]"),
                         (weights[NORM][:32], "shape [32] given"),
                         (np.ones(64, np.int32), "int32 values given")):
        with pytest.raises(WeightError, match=message.replace("[", r"\[").replace("]", r"\]")) as error:
            mpk.load(tiny_bundle, {**weights, NORM: bad}, backend="interp")
        assert error.type is WeightError and NORM in str(error.value)
    float32 = {name: as_float32(value) for name, value in weights.items()}     # cast back to bf16
    with mpk.load(tiny_bundle, float32, backend="interp") as session:
        np.testing.assert_array_equal(session.runner.weights[NORM], as_float32(weights[NORM]))


def test_mpk_run_weights_folder_with_a_wrong_tensor(tiny_bundle, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    weights = {name: torch.from_numpy(as_float32(v)).to(torch.bfloat16)
               for name, v in random_weights(tiny_bundle.weights(), seed=0).items()}
    for bad, message in ((weights[NORM].reshape(64, 1), "model.norm.weight: shape [64, 1] given where the bundle "
                                                        "needs bf16 [64]"),
                         (torch.ones(64, dtype=torch.int32), "model.norm.weight: int32 values given"),
                         (torch.ones(64, dtype=torch.int8), "model.norm.weight: int8 values given")):
        save_file({**weights, NORM: bad}, str(tmp_path / "model.safetensors"))
        with pytest.raises(WeightError, match="model.safetensors: model.norm.weight: "):
            load_safetensors(tmp_path, tiny_bundle.weights())
        code, err = cli(capsys, "run", str(tiny_bundle.path), "--weights", str(tmp_path), "--backend", "interp",
                        "--steps", "1", "--quiet")
        assert_one_line_error(code, err, "run", "model.safetensors: ", message)


def test_damaged_safetensors_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(WeightError, match="model.safetensors: not a safetensors file"):
        load_safetensors(tmp_path, SPECS)
    header = json.dumps({NORM: {"dtype": "F32", "shape": [64], "data_offsets": [0, 16]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    with pytest.raises(WeightError, match="model.safetensors: not a safetensors file, or a damaged one .*offset"):
        load_safetensors(tmp_path, SPECS)

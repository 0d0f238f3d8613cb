"""The frontend end to end: PyTorch decoder -> torch-mlir -> torch-to-mpk -> mpk
graph IR, checked by running the graph in the CPU interpreter against the
PyTorch module's logits over several decode steps (fp32, relative error)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mpk.frontend import FrontendError, import_model
from mpk.interp.graph import run_graph
from mpk.models import (ModelConfig, from_hf_config, load_checkpoint, preset, random_model,
                        save_checkpoint, weight_shapes)
from mpk.models import model as model_code

TOLERANCE = 1e-5
STEPS = 3


def random_config(seed: int) -> ModelConfig:
    """A config of either family with shapes no preset has."""
    rng = np.random.default_rng(seed)
    family = ["qwen3", "llama"][seed % 2]
    kv_heads = int(rng.choice([1, 2, 3]))
    heads = kv_heads * int(rng.choice([1, 2, 4]))
    head_dim = int(rng.choice([8, 16, 32]))
    scaling = None
    if family == "llama" and rng.random() < 0.7:
        scaling = {"rope_type": "llama3", "factor": float(rng.choice([4.0, 8.0, 32.0])),
                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": int(rng.choice([16, 64, 256]))}
    return ModelConfig(family, vocab_size=int(rng.integers(50, 300)),
                       hidden_size=int(rng.choice([24, 32, 48, 80])),
                       intermediate_size=int(rng.integers(16, 160)), num_layers=int(rng.integers(1, 4)),
                       num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
                       rope_theta=float(rng.choice([1e4, 5e5, 1e6])), rms_norm_eps=float(rng.choice([1e-6, 1e-5])),
                       tie_word_embeddings=bool(rng.random() < 0.5), qk_norm=family == "qwen3",
                       rope_scaling=scaling)


def check_against_pytorch(model: torch.nn.Module, batch: int, max_seq: int, seed: int = 0,
                          module=None) -> float:
    """Import the model's decode step, interpret it, return the worst logits error."""
    config = model.config
    module = module or import_model(config, batch, max_seq)
    module.operation.verify()
    generator = torch.Generator().manual_seed(seed)
    model.setup_caches(batch, max_seq)
    # Caches start random (never zeros), the same in both.
    state = {}
    for i, layer in enumerate(model.model.layers):
        for kind in ("k", "v"):
            cache = getattr(layer.self_attn, f"{kind}_cache")
            cache.copy_(torch.randn(cache.shape, generator=generator))
            state[f"layers.{i}.{kind}_cache"] = cache.numpy().copy()
    weights = {name: t.detach().numpy() for name, t in model.state_dict().items()}
    tokens = torch.randint(0, config.vocab_size, (batch,), generator=generator)
    positions = torch.randint(0, max_seq - STEPS, (batch,), generator=generator)
    worst = 0.0
    for _ in range(STEPS):
        with torch.no_grad():
            expected_tokens, expected_logits = model(tokens, positions)
        next_tokens, logits = run_graph(module, weights, tokens.numpy(), positions.numpy(), state=state)
        expected = expected_logits.numpy()
        error = float(np.abs(logits - expected).max() / np.abs(expected).max())
        worst = max(worst, error)
        assert next_tokens.dtype == np.int32
        np.testing.assert_array_equal(next_tokens, expected_tokens.numpy())
        tokens, positions = expected_tokens.long(), positions + 1
    for i, layer in enumerate(model.model.layers):  # the caches were updated alike
        np.testing.assert_allclose(state[f"layers.{i}.k_cache"], layer.self_attn.k_cache.numpy(),
                                   rtol=1e-5, atol=1e-5)
    return worst


@pytest.mark.parametrize("name", ["qwen3-tiny", "qwen3-tiny-untied", "llama3-tiny"])
def test_tiny_presets_match_pytorch(name):
    error = check_against_pytorch(random_model(preset(name), seed=1), batch=2, max_seq=16)
    assert error < TOLERANCE


@pytest.mark.parametrize("seed", range(6))
def test_random_configs_match_pytorch(seed):
    config = random_config(seed)
    batch = 1 + seed % 3
    error = check_against_pytorch(random_model(config, seed=seed), batch=batch, max_seq=12, seed=seed)
    assert error < TOLERANCE, config


def test_unseen_config_json_imports_and_interprets(tmp_path):
    """A new config.json of either family, through a checkpoint folder, no code changes."""
    hf = {"model_type": "llama", "vocab_size": 211, "hidden_size": 56, "intermediate_size": 90,
          "num_hidden_layers": 2, "num_attention_heads": 7, "num_key_value_heads": 7,
          "rms_norm_eps": 1e-5, "rope_theta": 250000.0, "tie_word_embeddings": False,
          "rope_scaling": {"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
                           "high_freq_factor": 2.0, "original_max_position_embeddings": 32}}
    (tmp_path / "config.json").write_text(json.dumps(hf))
    config = from_hf_config(tmp_path / "config.json")
    assert config.head_dim == 8  # hidden_size / heads when head_dim is absent
    folder = save_checkpoint(random_model(config, seed=3), tmp_path / "ckpt")
    error = check_against_pytorch(load_checkpoint(folder), batch=2, max_seq=10)
    assert error < TOLERANCE


def test_weights_are_named_ops_with_checkpoint_shapes():
    config = preset("qwen3-tiny-untied")
    module = import_model(config, batch=1, max_seq=8)
    text = str(module)
    for name, shape in weight_shapes(config).items():
        dims = "x".join(map(str, shape))
        assert f'"mpk.weight"() {{name = "{name}"}} : () -> tensor<{dims}xf32>' in text
    assert "dense" not in text  # no weight became a literal
    assert '"mpk.state"() {name = "layers.1.v_cache"} : () -> tensor<1x8x32xf32>' in text


def test_tied_model_reads_the_embedding_table_as_lm_head():
    text = str(import_model(preset("qwen3-tiny"), batch=1, max_seq=8))
    assert "lm_head" not in text
    assert text.count('name = "model.embed_tokens.weight"') == 1


def test_decomposed_rms_norm_is_recognized(monkeypatch):
    """The Hugging Face way of writing RMSNorm (pow, mean, rsqrt) becomes mpk.rmsnorm."""
    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))
    monkeypatch.setattr(model_code.RMSNorm, "forward", forward)
    model = random_model(preset("qwen3-tiny"), seed=2)
    module = import_model(model.config, batch=2, max_seq=8)
    assert str(module).count('"mpk.rmsnorm"') == 2 * 4 + 1
    assert check_against_pytorch(model, batch=2, max_seq=8, module=module) < TOLERANCE


def test_unsupported_op_names_the_aten_op_and_source_line(monkeypatch):
    def forward(self, x):
        return self.down_proj(torch.nn.functional.gelu(self.gate_proj(x)) * self.up_proj(x))
    monkeypatch.setattr(model_code.MLP, "forward", forward)
    with pytest.raises(FrontendError) as failure:
        import_model(preset("llama3-tiny"), batch=1, max_seq=8)
    errors = [d for d in failure.value.diagnostics if d.severity == "error"]
    assert errors and all(d.message == "unsupported op torch.aten.gelu (no torch-to-mpk pattern)"
                          for d in errors)
    assert errors[0].file == __file__
    assert errors[0].line == forward.__code__.co_firstlineno + 1


def test_bfloat16_import_keeps_rope_frequencies_in_float32():
    text = str(import_model(preset("llama3-tiny"), batch=1, max_seq=8, dtype="bfloat16"))
    assert '"mpk.weight"() {name = "lm_head.weight"} : () -> tensor<256x64xbf16>' in text
    assert '"mpk.state"() {name = "layers.0.k_cache"} : () -> tensor<1x8x16xbf16>' in text
    assert "inv_freq = array<f32: 1.000000e+00" in text
    assert "f32>" not in text.replace("array<f32:", "")  # every tensor is bf16

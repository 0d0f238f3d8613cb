"""Model zoo: presets, Hugging Face config.json and checkpoint folders, and the
reference semantics of mpk graph ops (mpk.interp.ops) against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mpk.interp import ops
from mpk.models import (PRESETS, ConfigError, Decoder, from_hf_config, load_checkpoint,
                        preset, random_model, rope_inv_freq, save_checkpoint, to_hf_config, weight_shapes)

# Published parameter counts (billions, embeddings included once when tied).
PUBLISHED = {"qwen3-0.6b": 0.60, "qwen3-1.7b": 1.72, "qwen3-4b": 4.02, "qwen3-8b": 8.19,
             "qwen3-14b": 14.77, "llama3.2-1b": 1.24, "llama3.2-3b": 3.21, "llama3.1-8b": 8.03}


@pytest.mark.parametrize("name", PUBLISHED)
def test_preset_sizes(name):
    assert preset(name).num_parameters / 1e9 == pytest.approx(PUBLISHED[name], abs=0.01)


@pytest.mark.parametrize("name", PRESETS)
def test_hf_config_round_trip(tmp_path, name):
    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(preset(name))))
    assert from_hf_config(tmp_path) == preset(name)


def test_llama3_rope_scaling_matches_the_published_rule():
    config = preset("llama3.1-8b")
    inv_freq = np.array(rope_inv_freq(config))
    plain = 1.0 / 500000.0 ** (np.arange(0, 128, 2) / 128)
    wavelen = 2 * np.pi / plain
    assert np.allclose(inv_freq[wavelen < 8192 / 4], plain[wavelen < 8192 / 4])   # high: kept
    assert np.allclose(inv_freq[wavelen > 8192], plain[wavelen > 8192] / 8.0)     # low: / factor
    middle = (wavelen >= 8192 / 4) & (wavelen <= 8192)
    assert middle.any() and np.all(inv_freq[middle] <= plain[middle])
    assert np.all(inv_freq[middle] >= plain[middle] / 8.0)


@pytest.mark.parametrize("hf, message", [
    ({"model_type": "gpt2"}, "model_type 'gpt2' is not supported"),
    ({"model_type": "llama", "hidden_size": 8}, "missing required keys: vocab_size"),
    ({"model_type": "qwen3", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 2},
     "num_heads (3) must be a multiple of num_kv_heads (2)"),
    ({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 0, "num_attention_heads": 2}, "num_layers must be positive"),
    ({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"rope_type": "dynamic"}},
     "rope_scaling type 'dynamic' is not supported"),
    ({"model_type": "llama", "vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 2, "attention_bias": True},
     "attention_bias/mlp_bias are not supported"),
])
def test_bad_configs_are_clear_errors(tmp_path, hf, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(hf))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_hf_config(path)


@pytest.mark.parametrize("name", ["qwen3-tiny", "llama3-tiny"])
def test_checkpoint_folder_round_trip(tmp_path, name):
    model = random_model(preset(name), seed=4)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path))
    assert loaded.config == model.config
    for m in (model, loaded):
        m.setup_caches(2, 8)
    tokens, positions = torch.tensor([1, 2]), torch.tensor([0, 5])
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens, positions)[1], model(tokens, positions)[1],
                                   rtol=0, atol=0)


def test_checkpoint_uses_hugging_face_names():
    names = set(weight_shapes(preset("qwen3-tiny-untied")))
    assert {"model.embed_tokens.weight", "model.layers.1.self_attn.q_norm.weight",
            "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"} <= names
    assert "lm_head.weight" not in weight_shapes(preset("qwen3-tiny"))  # tied


def test_checkpoint_errors(tmp_path):
    model = random_model(preset("llama3-tiny"))
    save_checkpoint(model, tmp_path)
    state = {k: v for k, v in model.state_dict().items() if k != "model.norm.weight"}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match="missing tensors: model.norm.weight"):
        load_checkpoint(tmp_path)
    state["model.norm.weight"] = torch.ones(3)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match=r"model.norm.weight has shape \(3,\), expected \(64,\)"):
        load_checkpoint(tmp_path)


def test_meta_model_allocates_nothing():
    with torch.device("meta"):
        model = Decoder(preset("qwen3-14b"))
        model.setup_caches(8, 4096)
    assert all(t.is_meta for t in model.state_dict().values())


# ------------------------------------------------- ops.py against PyTorch (float64)

def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("group", [64, 16])
def test_rmsnorm_matches_torch(group):
    x, w = rand(3, 64), rand(group, seed=1)
    expected = F.rms_norm(torch.from_numpy(x).view(3, -1, group), (group,), torch.from_numpy(w), 1e-6)
    np.testing.assert_allclose(ops.rmsnorm(x, w, 1e-6), expected.reshape(3, 64).numpy(), rtol=1e-12)


def test_linear_with_residual():
    x, w, r = rand(2, 8), rand(5, 8, seed=1), rand(2, 5, seed=2)
    np.testing.assert_allclose(ops.linear(x, w, r), x @ w.T + r, rtol=1e-12)


def test_rope_rotates_each_head_and_keeps_norms():
    config = preset("llama3-tiny")
    inv_freq = np.array(rope_inv_freq(config), dtype=np.float32)
    x, positions = rand(2, 4 * 16), np.array([0, 7])
    y = ops.rope(x, positions, inv_freq)
    np.testing.assert_allclose(y[0], x[0], rtol=1e-12)  # position 0: identity
    np.testing.assert_allclose(np.linalg.norm(y.reshape(2, 4, 2, 8), axis=2),
                               np.linalg.norm(x.reshape(2, 4, 2, 8), axis=2), rtol=1e-12)
    from mpk.models.model import apply_rope
    expected = apply_rope(torch.from_numpy(x).view(2, 4, 16), torch.from_numpy(positions),
                          torch.from_numpy(inv_freq).double())
    np.testing.assert_allclose(y, expected.reshape(2, -1).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_q, n_kv", [(4, 4), (6, 2), (8, 1)])
def test_attention_matches_sdpa_with_gqa(n_q, n_kv):
    batch, seq, d = 3, 10, 8
    q, kc, vc = rand(batch, n_q * d), rand(batch, seq, n_kv * d, seed=1), rand(batch, seq, n_kv * d, seed=2)
    positions = np.array([0, 4, 9])
    out = ops.attention(q, kc, vc, positions, d, d ** -0.5)
    mask = torch.arange(seq)[None, :] <= torch.from_numpy(positions)[:, None]
    expected = F.scaled_dot_product_attention(
        torch.from_numpy(q).view(batch, n_q, 1, d),
        torch.from_numpy(kc).view(batch, seq, n_kv, d).transpose(1, 2),
        torch.from_numpy(vc).view(batch, seq, n_kv, d).transpose(1, 2),
        attn_mask=mask.view(batch, 1, 1, seq), enable_gqa=True)
    np.testing.assert_allclose(out, expected.reshape(batch, -1).numpy(), rtol=1e-10, atol=1e-12)


def test_kv_append_is_functional_unless_in_place():
    cache, new = rand(2, 4, 3), rand(2, 3, seed=1)
    out = ops.kv_append(cache, new, np.array([1, 3]))
    assert not np.shares_memory(out, cache)
    np.testing.assert_array_equal(out[0, 1], new[0])
    np.testing.assert_array_equal(out[1, 3], new[1])
    np.testing.assert_array_equal(out[0, 0], cache[0, 0])
    assert ops.kv_append(cache, new, np.array([0, 0]), in_place=True) is cache


def test_silu_mul_add_argmax_embedding():
    g, u = rand(2, 6), rand(2, 6, seed=1)
    expected = F.silu(torch.from_numpy(g)) * torch.from_numpy(u)
    np.testing.assert_allclose(ops.silu_mul(g, u), expected.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(ops.add(g, u), g + u)
    logits = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])
    assert ops.argmax(logits).tolist() == [1, 0] and ops.argmax(logits).dtype == np.int32
    table = rand(5, 3)
    np.testing.assert_array_equal(ops.embedding(np.array([4, 0]), table), table[[4, 0]])
    with pytest.raises(IndexError):
        ops.embedding(np.array([5]), table)


def test_ops_keep_float32_inputs_in_float32():
    x = rand(2, 8).astype(np.float32)
    assert ops.rmsnorm(x, np.ones(8, np.float32), 1e-6).dtype == np.float32
    assert ops.linear(x, x).dtype == np.float32

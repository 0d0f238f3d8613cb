"""Weights by name without torch: seeded random, and safetensors folders."""

from __future__ import annotations

import numpy as np
import pytest

from mpk.runtime.loader import LoaderError, as_device_array, from_bf16_bits, to_bf16_bits
from mpk.runtime.weights import load_safetensors, random_weights

SPECS = {"model.norm.weight": {"shape": [64], "dtype": "bf16"},
         "model.layers.0.mlp.up_proj.weight": {"shape": [128, 64], "dtype": "bf16"},
         "scale": {"shape": [3], "dtype": "f32"}}


def test_random_weights_depend_only_on_seed_and_name():
    a = random_weights(SPECS, seed=1)
    b = random_weights({"scale": SPECS["scale"], **SPECS}, seed=1)
    for name in SPECS:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["scale"], random_weights(SPECS, seed=2)["scale"])
    norm = from_bf16_bits(a["model.norm.weight"])
    assert a["model.norm.weight"].dtype == np.uint16 and abs(norm.mean() - 1) < 0.1
    up = from_bf16_bits(a["model.layers.0.mlp.up_proj.weight"])
    assert 0.08 < up.std() < 0.17   # 1/sqrt(64)


def test_bf16_rounding():
    x = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0], np.float32)
    back = from_bf16_bits(to_bf16_bits(x))
    assert np.all(np.abs(back - x) <= np.abs(x) * 2 ** -8)
    assert to_bf16_bits(np.array([1.0 + 2 ** -8], np.float32))[0] == to_bf16_bits(np.array([1.0], np.float32))[0]


def test_safetensors_folder(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    tensors = {"model.norm.weight": torch.randn(64, dtype=torch.bfloat16),
               "model.layers.0.mlp.up_proj.weight": torch.randn(128, 64),
               "scale": torch.randn(3), "unused": torch.zeros(2)}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    loaded = load_safetensors(tmp_path, SPECS)
    assert set(loaded) == set(SPECS)
    np.testing.assert_array_equal(loaded["model.norm.weight"],
                                  as_device_array(tensors["model.norm.weight"], "bf16", [64]))
    np.testing.assert_array_equal(from_bf16_bits(loaded["model.layers.0.mlp.up_proj.weight"]),
                                  from_bf16_bits(to_bf16_bits(tensors["model.layers.0.mlp.up_proj.weight"].numpy())))
    np.testing.assert_array_equal(loaded["scale"], tensors["scale"].numpy())
    with pytest.raises(LoaderError, match="no tensor for extra"):
        load_safetensors(tmp_path, {**SPECS, "extra": {"shape": [1], "dtype": "f32"}})


def test_shape_mismatch_is_an_error():
    with pytest.raises(LoaderError, match=r"shape \[2\] given where the bundle needs \[3\]"):
        as_device_array(np.zeros(2), "f32", [3])

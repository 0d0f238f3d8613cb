"""Weights by name without torch: seeded random, and safetensors folders."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from mpk.runtime.loader import BF16, NUMPY_DTYPES, LoaderError, as_device_array, as_float32, host_array, is_float
from mpk.runtime.weights import WeightError, load_safetensors, random_weights

SPECS = {"model.norm.weight": {"shape": [64], "dtype": "bf16"},
         "model.layers.0.mlp.up_proj.weight": {"shape": [128, 64], "dtype": "bf16"},
         "scale": {"shape": [3], "dtype": "f32"}}


def test_random_weights_depend_only_on_seed_and_name():
    a = random_weights(SPECS, seed=1)
    b = random_weights({"scale": SPECS["scale"], **SPECS}, seed=1)
    for name in SPECS:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["scale"], random_weights(SPECS, seed=2)["scale"])
    norm = as_float32(a["model.norm.weight"])
    assert a["model.norm.weight"].dtype == BF16 and abs(norm.mean() - 1) < 0.1
    up = as_float32(a["model.layers.0.mlp.up_proj.weight"])
    assert 0.08 < up.std() < 0.17   # 1/sqrt(64)
    assert a["scale"].dtype == np.float32


def test_bf16_is_ml_dtypes_bfloat16():
    assert NUMPY_DTYPES["bf16"] == BF16 == np.dtype(ml_dtypes.bfloat16) and BF16.itemsize == 2
    assert is_float(BF16) and is_float(np.float16) and not is_float(np.uint16) and not is_float(np.int32)


def test_bf16_rounding():
    x = np.array([1.0, -2.5, 3.14159, 1e-3, 65504.0], np.float32)
    back = as_float32(as_device_array(x, "bf16", [5]))
    assert np.all(np.abs(back - x) <= np.abs(x) * 2 ** -8)
    # To nearest, ties to even: 1 + 2**-8 lies halfway between 1 and 1 + 2**-7.
    halfway = as_device_array(np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8], np.float32), "bf16", [2])
    np.testing.assert_array_equal(as_float32(halfway), [1.0, 1.0 + 2 ** -6])
    # The bytes are bf16's: the upper half of the float32 (the device's format).
    assert halfway.view(np.uint16)[0] == np.float32(1.0).view(np.uint32) >> 16


def test_torch_bf16_round_trips_through_numpy():
    torch = pytest.importorskip("torch")
    tensor = torch.randn(3, 5, dtype=torch.bfloat16)
    array = host_array(tensor)
    assert array.dtype == BF16 and array.shape == (3, 5)
    np.testing.assert_array_equal(as_float32(array), tensor.float().numpy())
    back = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    assert torch.equal(back, tensor)


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
    assert loaded["model.norm.weight"].dtype == BF16
    np.testing.assert_array_equal(loaded["model.layers.0.mlp.up_proj.weight"],
                                  tensors["model.layers.0.mlp.up_proj.weight"].to(torch.bfloat16).float().numpy()
                                  .astype(BF16))
    np.testing.assert_array_equal(loaded["scale"], tensors["scale"].numpy())
    with pytest.raises(LoaderError, match="no tensor for extra"):
        load_safetensors(tmp_path, {**SPECS, "extra": {"shape": [1], "dtype": "f32"}})


def test_shape_mismatch_is_an_error():
    with pytest.raises(LoaderError, match=r"shape \[2\] given where the bundle needs \[3\]"):
        as_device_array(np.zeros(2), "f32", [3])


def test_safetensors_written_by_numpy_without_torch(tmp_path):
    """bf16 tensors saved from numpy (ml_dtypes) read back bit for bit; a dtype numpy has
    no type for is refused by name; a uint16 array is not taken for bf16 bits."""
    from safetensors.numpy import save_file
    norm = np.linspace(-1, 1, 64).astype(BF16)
    up = np.random.default_rng(0).standard_normal((128, 64)).astype(np.float32)
    save_file({"model.norm.weight": norm, "model.layers.0.mlp.up_proj.weight": up,
               "scale": np.ones(3, np.float16)}, str(tmp_path / "model.safetensors"))
    loaded = load_safetensors(tmp_path, SPECS)
    np.testing.assert_array_equal(loaded["model.norm.weight"].view(np.uint16), norm.view(np.uint16))
    np.testing.assert_array_equal(loaded["model.layers.0.mlp.up_proj.weight"], up.astype(BF16))
    assert loaded["scale"].dtype == np.float32
    save_file({"model.norm.weight": norm.view(np.uint16)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightError, match=r"model.safetensors: model.norm.weight: uint16 values given .*"
                                          r"view them as ml_dtypes.bfloat16"):
        load_safetensors(tmp_path, SPECS)


def test_safetensors_dtype_numpy_cannot_hold(tmp_path):
    import json
    header = json.dumps({"model.norm.weight": {"dtype": "F8_E4M3", "shape": [64], "data_offsets": [0, 64]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    with pytest.raises(WeightError, match="model.safetensors: model.norm.weight has unsupported dtype F8_E4M3"):
        load_safetensors(tmp_path, SPECS)

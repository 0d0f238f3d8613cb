"""Weights for a bundle, by name, without torch: random from a seed, or read
from a folder of `*.safetensors` files. Values are numpy arrays (float32 or
raw bf16 bits as uint16, which `Session.bind_weights` uploads as they are).

Every backend binds weights through `check_weights` and `weight_array`: each
weight is checked by name, shape and dtype before anything is uploaded or run.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np

from mpk.runtime.loader import LoaderError, as_device_array, from_bf16_bits

# safetensors dtype -> numpy storage dtype (BF16 as its bits); other dtypes are refused by name.
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
                       "I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64,
                       "BOOL": np.bool_}
_TORCH_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "bf16": "bfloat16"}


class WeightError(LoaderError, ValueError):
    """A weight that does not fit the bundle: missing, of another shape, or not floating
    point; the message names it. Raised before anything is uploaded or run."""


def check_weight(name: str, value, spec: dict) -> None:
    """Refuse (WeightError) a `value` that cannot be weight `name` of the bundle (spec:
    {"shape", "dtype"}): it needs the shape exactly (no reshaping: [64, 1] is not [64])
    and floating-point values.

    Any float dtype is cast to the bundle's (float16/32/64, bfloat16; a uint16 numpy
    array is bf16 bits, numpy has no bfloat16); integers are refused, not cast: an
    integer tensor is a quantized weight or another tensor, mpk has no kernel for either."""
    want, shape = spec["dtype"], list(spec["shape"])
    if hasattr(value, "detach"):                     # a torch tensor, wherever it lies
        got_shape, floating = list(value.shape), value.dtype.is_floating_point
        got = str(value.dtype).removeprefix("torch.")
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as e:          # ragged lists, ...
            raise WeightError(f"{name}: not an array of numbers ({e})") from None
        got_shape, floating = list(array.shape), array.dtype.kind == "f" or array.dtype == np.uint16
        got = "uint16 (bf16 bits)" if array.dtype == np.uint16 else str(array.dtype)
    if not floating:
        raise WeightError(f"{name}: {got} values given where the bundle needs floating-point {want} {shape} "
                          "(non-float tensors are not cast: mpk has no quantized kernels)")
    if got_shape != shape:
        raise WeightError(f"{name}: shape {got_shape} given where the bundle needs {want} {shape}")


def weight_array(name: str, value, spec: dict):
    """`value` checked (check_weight) and cast to the bundle's dtype (round to nearest):
    a numpy array as the bundle stores it (bf16 as uint16 bits), or, for a CUDA tensor,
    a tensor on its GPU (the upload is a device copy)."""
    check_weight(name, value, spec)
    want = spec["dtype"]
    if hasattr(value, "detach"):
        import torch
        tensor = value.detach().to(getattr(torch, _TORCH_DTYPES[want])).contiguous()
        if tensor.is_cuda:
            return tensor
        tensor = tensor.cpu()
        return tensor.view(torch.int16).numpy().view(np.uint16) if want == "bf16" else tensor.numpy()
    array = np.asarray(value)
    if array.dtype == np.uint16 and want != "bf16":   # bf16 bits for a wider weight
        array = from_bf16_bits(array)
    return as_device_array(array, want, spec["shape"])


def check_weights(weights: Mapping, specs: dict[str, dict], strict: bool = True,
                  bound=frozenset()) -> list[str]:
    """The names of `weights` that the bundle has (`specs`, Bundle.weights()), each value
    checked (check_weight) before any is bound; names the bundle does not have are
    ignored (a state dict may hold more). With `strict`, every weight of the bundle
    must be given here or be in `bound` (bound by an earlier call)."""
    if not isinstance(weights, Mapping):
        raise WeightError(f"weights must be a mapping from weight names to arrays, not {type(weights).__name__}")
    names = [name for name in weights if name in specs]
    for name in names:
        check_weight(name, weights[name], specs[name])
    missing = sorted(set(specs) - set(names) - set(bound))
    if strict and missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise WeightError(f"no value for weight(s) {', '.join(missing[:3])}{more}")
    return names


def random_weights(specs: dict[str, dict], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded weights at a scale that keeps activations O(1): norm weights
    near 1, matrices of variance 1/fan_in. Each tensor's values depend only
    on (seed, name), not on which other weights exist.

    Uniform, not normal: drawn as 16-bit integers, about 3x faster, which
    matters at billions of parameters (and tensors are drawn on all cores:
    numpy lets go of the GIL). bf16 values are truncated, not rounded: the
    bits are the weights, whatever they are.
    """
    def draw(name: str, spec: dict) -> np.ndarray:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        shape = tuple(spec["shape"])
        value = rng.integers(-2**15, 2**15, shape, dtype=np.int16).astype(np.float32)
        value *= np.float32(np.sqrt(3) / 2**15)          # uniform on [-sqrt(3), sqrt(3)): variance 1
        if name.endswith("norm.weight"):
            value = 1 + np.float32(0.1) * value
        else:
            value *= np.float32(1 / np.sqrt(shape[-1]))
        return (value.view(np.uint32) >> 16).astype(np.uint16) if spec["dtype"] == "bf16" else value

    with ThreadPoolExecutor() as pool:
        return dict(zip(specs, pool.map(draw, specs, specs.values())))


def load_safetensors(folder: str | Path, specs: dict[str, dict]) -> dict[str, np.ndarray]:
    """The tensors `specs` names, from `folder/*.safetensors` (memory-mapped), each
    checked and cast to its spec's dtype (weight_array)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightError(f"{folder}: no *.safetensors files")
    found = {}
    for file in files:
        for name, array in _tensors(file, specs):
            try:
                found[name] = weight_array(name, array, specs[name])
            except WeightError as e:
                raise WeightError(f"{file}: {e}") from None
    missing = sorted(set(specs) - set(found))
    if missing:
        raise WeightError(f"{folder}: no tensor for {', '.join(missing[:3])}"
                          + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return found


def _tensors(file: Path, names):
    """(name, array) of the tensors in one safetensors file that `names` has, memory-mapped;
    a file that is not safetensors, or a tensor of a dtype numpy cannot hold, is a WeightError."""
    try:
        raw = np.memmap(file, np.uint8, mode="r")
        header_len, = struct.unpack("<Q", raw[:8].tobytes())
        header = json.loads(raw[8:8 + header_len].tobytes())
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
    except (struct.error, ValueError) as e:           # too short, empty, a header that is not JSON
        raise WeightError(f"{file}: not a safetensors file ({e})") from None
    data = raw[8 + header_len:]
    for name, entry in header.items():
        if name == "__metadata__" or name not in names:
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype") if isinstance(entry, dict) else None)
        if dtype is None:
            raise WeightError(f"{file}: {name} has unsupported dtype {entry.get('dtype')}"
                              if isinstance(entry, dict) else f"{file}: {name} has no valid header entry")
        try:
            begin, end = entry["data_offsets"]
            shape = [int(n) for n in entry["shape"]]
            if not 0 <= begin <= end <= len(data) or end - begin != math.prod(shape) * np.dtype(dtype).itemsize:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise WeightError(f"{file}: the data_offsets of {name} do not fit its shape and dtype "
                              "(a damaged file)") from None
        yield name, data[begin:end].view(dtype).reshape(shape)

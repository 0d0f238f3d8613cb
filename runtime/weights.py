"""Weights for a bundle, by name, without torch: random from a seed, or read
from a folder of `*.safetensors` files. Values are numpy arrays of the
bundle's dtypes (bf16: ml_dtypes' bfloat16, loader.BF16), which
`Session.bind_weights` uploads as they are.

Every backend binds weights through `check_weights` and `weight_array`: each
weight is checked by name, shape and dtype before anything is uploaded or run.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np

from mpk.runtime.loader import NUMPY_DTYPES, LoaderError, as_device_array, is_float


class WeightError(LoaderError, ValueError):
    """A weight that does not fit the bundle: missing, of another shape, or not floating
    point; the message names it. Raised before anything is uploaded or run."""


def check_weight(name: str, value, spec: dict) -> None:
    """Refuse (WeightError) a `value` that cannot be weight `name` of the bundle (spec:
    {"shape", "dtype"}): it needs the shape exactly (no reshaping: [64, 1] is not [64])
    and floating-point values.

    Any float dtype is cast to the bundle's (float16/32/64, bfloat16: torch's, or
    ml_dtypes' in numpy); integers are refused, not cast: an integer tensor is a
    quantized weight or another tensor, mpk has no kernel for either."""
    want, shape = spec["dtype"], list(spec["shape"])
    if hasattr(value, "detach"):                     # a torch tensor, wherever it lies
        got_shape, floating = list(value.shape), value.dtype.is_floating_point
        got = str(value.dtype).removeprefix("torch.")
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as e:          # ragged lists, ...
            raise WeightError(f"{name}: not an array of numbers ({e})") from None
        got_shape, floating, got = list(array.shape), is_float(array.dtype), str(array.dtype)
    if not floating:
        hint = " (bf16 bits? view them as ml_dtypes.bfloat16)" if got == "uint16" else ""
        raise WeightError(f"{name}: {got} values given where the bundle needs floating-point {want} {shape} "
                          f"(non-float tensors are not cast: mpk has no quantized kernels){hint}")
    if got_shape != shape:
        raise WeightError(f"{name}: shape {got_shape} given where the bundle needs {want} {shape}")


def weight_array(name: str, value, spec: dict):
    """`value` checked (check_weight) and cast to the bundle's dtype (round to nearest even):
    a numpy array as the bundle stores it (loader.as_device_array), or, for a CUDA tensor,
    a tensor on its GPU (the upload is a device copy)."""
    check_weight(name, value, spec)
    if getattr(value, "is_cuda", False):             # cast on its GPU (numpy's dtype names are torch's)
        import torch
        return value.detach().to(getattr(torch, NUMPY_DTYPES[spec["dtype"]].name)).contiguous()
    return as_device_array(value, spec["dtype"], spec["shape"])


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
    numpy lets go of the GIL), then cast to the spec's dtype (bf16: rounded
    to nearest even).
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
        return value.astype(NUMPY_DTYPES[spec["dtype"]], copy=False)

    with ThreadPoolExecutor() as pool:
        return dict(zip(specs, pool.map(draw, specs, specs.values())))


def load_safetensors(folder: str | Path, specs: dict[str, dict]) -> dict[str, np.ndarray]:
    """The tensors `specs` names, from `folder/*.safetensors`, each checked and cast to
    its spec's dtype (weight_array).

    Read by the safetensors package, which parses and checks each file's header
    (a file that is not safetensors, or whose offsets do not fit, is a WeightError);
    ml_dtypes gives its BF16 tensors a numpy dtype. Its numpy tensors are copies
    in memory, not memory-mapped."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise WeightError(f"{folder}: no *.safetensors files")
    found = {}
    for file in files:
        try:
            with safe_open(file, framework="numpy") as tensors:
                for name in tensors.keys():
                    if name in specs:
                        found[name] = weight_array(name, _tensor(tensors, name), specs[name])
        except SafetensorError as e:
            raise WeightError(f"{file}: not a safetensors file, or a damaged one ({e})") from None
        except WeightError as e:
            raise WeightError(f"{file}: {e}") from None
    missing = sorted(set(specs) - set(found))
    if missing:
        raise WeightError(f"{folder}: no tensor for {', '.join(missing[:3])}"
                          + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return found


def _tensor(tensors, name: str) -> np.ndarray:
    """Tensor `name` of an open safetensors file as a numpy array; one of a dtype numpy
    (with ml_dtypes) has no type for, as safetensors looks it up (F8_*, F4, ...), is a WeightError."""
    try:
        return tensors.get_tensor(name)
    except (TypeError, AttributeError):
        raise WeightError(f"{name} has unsupported dtype {tensors.get_slice(name).get_dtype()}") from None


def slice_of(spec: list[int], full, rank: int):
    """Rank `rank`'s slice of a whole tensor: `spec` is an `mpk.shard` value (dim, size,
    each rank's start: mpk.lowering.mpk_shard)."""
    dim, size, starts = spec[0], spec[1], spec[2:]
    if not 0 <= rank < len(starts):
        raise ValueError(f"rank {rank} of a {len(starts)}-rank shard")
    return full[(slice(None),) * dim + (slice(starts[rank], starts[rank] + size),)]

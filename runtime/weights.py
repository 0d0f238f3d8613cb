"""Weights for a bundle, by name, without torch: random from a seed, or read
from a folder of `*.safetensors` files. Values are numpy arrays (float32 or
raw bf16 bits as uint16, which `Session.bind_weights` uploads as they are).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from mpk.runtime.loader import LoaderError, to_bf16_bits

# safetensors dtype -> (numpy storage dtype, is raw bf16 bits)
_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
                       "I32": np.int32, "I64": np.int64}


def random_weights(specs: dict[str, dict], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded weights at a scale that keeps activations O(1): norm weights
    near 1, matrices N(0, 1/fan_in). Each tensor's values depend only on
    (seed, name), not on which other weights exist."""
    out = {}
    for name, spec in specs.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        shape = tuple(spec["shape"])
        if name.endswith("norm.weight"):
            value = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
        else:
            value = rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])
        out[name] = to_bf16_bits(value) if spec["dtype"] == "bf16" else value.astype(np.float32)
    return out


def load_safetensors(folder: str | Path, specs: dict[str, dict]) -> dict[str, np.ndarray]:
    """The tensors `specs` names, from `folder/*.safetensors` (memory-mapped)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise LoaderError(f"{folder}: no *.safetensors files")
    found = {}
    for file in files:
        raw = np.memmap(file, np.uint8, mode="r")
        header_len, = struct.unpack("<Q", raw[:8].tobytes())
        header = json.loads(raw[8:8 + header_len].tobytes())
        data = raw[8 + header_len:]
        for name, entry in header.items():
            if name == "__metadata__" or name not in specs:
                continue
            if entry["dtype"] not in _SAFETENSORS_DTYPES:
                raise LoaderError(f"{file}: {name} has unsupported dtype {entry['dtype']}")
            begin, end = entry["data_offsets"]
            array = data[begin:end].view(_SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])
            want = specs[name]["dtype"]
            if want == "bf16" and entry["dtype"] != "BF16":
                array = to_bf16_bits(array.astype(np.float32))
            elif want != "bf16" and entry["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            found[name] = array
    missing = sorted(set(specs) - set(found))
    if missing:
        raise LoaderError(f"{folder}: no tensor for {', '.join(missing[:3])}"
                          + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
    return found

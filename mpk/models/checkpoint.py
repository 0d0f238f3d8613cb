"""Weights in Hugging Face checkpoint folders (`*.safetensors`, HF parameter names)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import ConfigError, ModelConfig, from_hf_config, rope_inv_freq, to_hf_config
from .model import Decoder


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every checkpoint tensor's name and shape (tied models have no lm_head.weight)."""
    with torch.device("meta"):
        model = Decoder(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def load_checkpoint(folder: str | Path, dtype: torch.dtype = torch.float32) -> Decoder:
    """A `Decoder` from a folder with `config.json` and `*.safetensors`."""
    folder = Path(folder)
    config = from_hf_config(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{folder}: no *.safetensors files")
    with torch.device("meta"):
        model = Decoder(config)
    expected = weight_shapes(config)
    state: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():
                if name in expected:
                    state[name] = _checked(f.get_tensor(name), name, expected[name], folder).to(dtype)
                elif name.endswith("rotary_emb.inv_freq"):
                    continue  # older checkpoints store it; we derive it from the config
                elif not (config.tie_word_embeddings and name == "lm_head.weight"):
                    raise ConfigError(f"{file}: unexpected tensor {name!r}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ConfigError(f"{folder}: missing tensors: {', '.join(missing[:5])}"
                          + (" ..." if len(missing) > 5 else ""))
    model.load_state_dict(state, assign=True)
    # The derived buffer is recomputed on the CPU, not read from the checkpoint.
    model.inv_freq = torch.tensor(rope_inv_freq(config), dtype=torch.float32)
    return model


def _checked(tensor: torch.Tensor, name: str, shape: tuple[int, ...], folder: Path) -> torch.Tensor:
    """A checkpoint tensor of the shape the config gives and of floating-point values: an integer
    tensor is a quantized weight or another tensor, never cast (as mpk.runtime.weights.check_weight)."""
    if tuple(tensor.shape) != shape:
        raise ConfigError(f"{folder}: {name} has shape {tuple(tensor.shape)}, expected {shape}")
    if not tensor.dtype.is_floating_point:
        raise ConfigError(f"{folder}: {name} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                          "expected floating point (integer weights are not converted)")
    return tensor


def save_checkpoint(model: Decoder, folder: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` the way transformers does."""
    import json
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(to_hf_config(model.config), indent=2))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def random_model(config: ModelConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> Decoder:
    """A model with random weights at a scale that keeps activations O(1)."""
    generator = torch.Generator().manual_seed(seed)
    model = Decoder(config).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5)
    return model

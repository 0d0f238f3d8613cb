"""Model zoo: the Qwen3 / Llama 3 decoder, its configs and checkpoint loading."""

from .config import (PRESETS, ConfigError, ModelConfig, check_lowerable, from_hf_config, preset, rope_inv_freq,
                     to_hf_config)
from .model import Decoder
from .checkpoint import load_checkpoint, random_model, save_checkpoint, weight_shapes

__all__ = ["PRESETS", "ConfigError", "ModelConfig", "check_lowerable", "from_hf_config", "preset", "rope_inv_freq",
           "to_hf_config", "Decoder", "load_checkpoint", "random_model", "save_checkpoint",
           "weight_shapes"]

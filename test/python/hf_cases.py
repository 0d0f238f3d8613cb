"""Hugging Face folders and their bundles for the GPU's comparison with transformers.

The GPU machine has transformers but no MLIR: build here, carry `.bundles/hf`:

    python test/python/hf_cases.py .bundles/hf          # <name>/model (the folder), <name>/model.mpk

The shapes (unlike the presets) serve test_hf_reference.py (the CPU task
interpreter) and test_gpu_prefill.py; the bundles return every prompt row's
logits, scheduled for 132 SMs (an H100 or H200).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hf_folder import make_hf_folder

MAX_SEQ, CHUNK = 512, 128
SHAPES = {
    # vocab 1000 (not a multiple of 64), 6 query heads over 2 KV heads (G = 3), tied
    "qwen3-g3-tied": dict(family="qwen3", vocab_size=1000, hidden_size=96, num_heads=6, num_kv_heads=2,
                          head_dim=16, intermediate_size=160, tie_word_embeddings=True),
    # untied, one KV head (G = 4), Llama 3 rope scaling, vocab 997
    "llama-g4-untied": dict(family="llama", vocab_size=997, hidden_size=64, num_heads=4, num_kv_heads=1,
                            head_dim=16, intermediate_size=176, tie_word_embeddings=False),
}
PROMPTS = (1, 37, 300)      # no prefill (one token), one chunk, three chunks


def build(root: Path, num_sms: int = 132) -> list[Path]:
    import mpk
    out = []
    for name, shape in SHAPES.items():
        folder = make_hf_folder(root / name / "model", dtype="bfloat16", seed=3, **shape)
        mpk.compile(folder, max_seq=MAX_SEQ, num_sms=num_sms, arch="sm_90", prefill_chunk=CHUNK,
                    prefill_logits="all", path=root / name / "model.mpk")
        out.append(root / name)
    return out


if __name__ == "__main__":
    for path in build(Path(sys.argv[1] if len(sys.argv) > 1 else ".bundles/hf")):
        print(path)

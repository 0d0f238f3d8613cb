"""mpk against Hugging Face `transformers` itself, on a folder transformers saved.

Tiny Qwen3 and Llama checkpoints of shapes unlike the presets (a vocabulary
that is not a multiple of 64, 3 query heads per KV head, tied and untied
embeddings, Llama 3 rope scaling), bf16 weights, compiled with the prefill
program returning every prompt row's logits (`prefill_logits="all"`), run on
the CPU task interpreter. For prompts of 1 token (no prefill: the decode
kernel), 37 tokens (one chunk) and 300 tokens (three chunks of 128) the
logits of every prompt position and of every generated position, fed mpk's own tokens
(teacher forcing), match transformers' float32 forward pass on the same
weights by relative error, and mpk's greedy tokens are transformers' greedy
`generate` tokens wherever the reference's top-2 margin is clear.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mlir")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import mpk  # noqa: E402
from hf_cases import CHUNK, MAX_SEQ, PROMPTS, SHAPES  # noqa: E402
from hf_folder import make_hf_folder  # noqa: E402

NEW = 6
TOLERANCE = 2e-3      # the interpreter computes in float32 on the same bf16 weights as the reference


@pytest.fixture(scope="module", params=sorted(SHAPES))
def model(request, tmp_path_factory):
    folder = make_hf_folder(tmp_path_factory.mktemp(request.param) / "model", dtype="bfloat16", seed=3,
                            **SHAPES[request.param])
    bundle = mpk.compile(folder, max_seq=MAX_SEQ, num_sms=8, arch="sm_90", steps_per_launch=4,
                         prefill_chunk=CHUNK, prefill_logits="all",
                         path=tmp_path_factory.mktemp("bundle") / "model.mpk")
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, bundle, reference


def _relative(x, ref) -> float:
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("prompt_len", PROMPTS)
def test_logits_and_greedy_tokens_match_transformers(model, prompt_len):
    folder, bundle, reference = model
    vocab = bundle.plan["model"]["vocab_size"]
    prompt = np.random.default_rng(prompt_len).integers(0, vocab, prompt_len)
    with mpk.load(bundle, weights=folder, backend="interp") as session:
        out = session.generate(prompt.tolist(), max_new_tokens=NEW)
    tokens = out.tokens[0]
    ours = np.concatenate([out.prompt_logits[:, 0] if prompt_len > 1 else np.zeros((0, vocab)),
                           out.logits[:, 0]])                       # positions 0 .. prompt_len + NEW - 2
    fed = np.concatenate([prompt, tokens[:-1]])
    with torch.no_grad():
        theirs = reference(torch.from_numpy(fed)[None]).logits[0].double().numpy()
    assert ours.shape == theirs.shape == (prompt_len + NEW - 1, vocab)
    errors = [_relative(o, t) for o, t in zip(ours, theirs)]
    worst = int(np.argmax(errors))
    assert max(errors) < TOLERANCE, f"position {worst}: relative logit error {errors[worst]:.2e}"

    with torch.no_grad():
        greedy = reference.generate(torch.from_numpy(prompt)[None], max_new_tokens=NEW, do_sample=False,
                                    eos_token_id=None, pad_token_id=0)[0, prompt_len:].numpy()
    for step in range(NEW):
        if tokens[step] != greedy[step]:
            top2 = np.sort(theirs[prompt_len - 1 + step])[-2:]
            assert top2[1] - top2[0] < 1e-2, (f"step {step}: mpk {tokens[step]}, transformers {greedy[step]} "
                                              f"at a clear margin {top2[1] - top2[0]:.3g}")
            break                                                   # the continuations differ from here

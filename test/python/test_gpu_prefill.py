"""Prefill and sampling on the GPU, against Hugging Face `transformers` on the same card.

Prebuilt (`python test/python/hf_cases.py .bundles/hf`: the GPU machine has
no MLIR): tiny Qwen3 and Llama folders saved by transformers (bf16, shapes
unlike the presets) and their bundles, whose prefill kernel returns every
prompt row's logits. For prompts of 1, 37 and 300 tokens (no prefill, one
chunk, three chunks), every prompt and generated position's logits, fed
mpk's tokens, are within the bf16 tolerance of transformers' float32
forward pass, and no worse than 1.5x transformers' own bf16 run against
that reference. Sampling in the kernel is reproducible for a seed, and
different seeds draw different continuations.

    python -m pytest test/python/test_gpu_prefill.py -s
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.gpu

from hf_cases import PROMPTS, SHAPES  # noqa: E402

ROOT = Path(os.environ.get("MPK_TEST_BUNDLES", Path(__file__).resolve().parents[2] / ".bundles")) / "hf"
NEW = 8
TOLERANCE = 2e-2

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def case(request):
    import mpk
    from mpk.runtime import bundle as bundles
    folder, path = ROOT / request.param / "model", ROOT / request.param / "model.mpk"
    if not path.is_dir():
        pytest.skip(f"no prebuilt {path} (python test/python/hf_cases.py {ROOT})")
    b = bundles.read(path)
    if b.kernel["num_sms"] != torch.cuda.get_device_properties(0).multi_processor_count:
        pytest.skip(f"{path} is scheduled for {b.kernel['num_sms']} SMs")
    session = mpk.load(b, weights=folder, backend="gpu")
    load = lambda dtype: transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).cuda().eval()
    yield request.param, session, load(torch.float32), load(torch.bfloat16)
    session.close()


def _forward(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ids)[None].cuda()).logits[0].double().cpu().numpy()


def _relative(x, ref) -> np.ndarray:
    return np.linalg.norm(x - ref, axis=-1) / np.linalg.norm(ref, axis=-1)


@pytest.mark.parametrize("prompt_len", PROMPTS)
def test_every_position_matches_transformers(case, prompt_len):
    name, session, reference, same_dtype = case
    seed = int(np.random.SeedSequence().entropy % 2**31)
    prompt = np.random.default_rng(seed).integers(0, session.vocab_size, prompt_len)
    out = session.generate(prompt.tolist(), max_new_tokens=NEW)
    tokens = out.tokens[0]
    ours = np.concatenate([out.prompt_logits[:, 0] if prompt_len > 1 else np.zeros((0, session.vocab_size)),
                           out.logits[:, 0]]).astype(np.float64)
    fed = np.concatenate([prompt, tokens[:-1]])
    theirs, bf16 = _forward(reference, fed), _forward(same_dtype, fed)
    errors, yardstick = _relative(ours, theirs), _relative(bf16, theirs)
    worst = int(np.argmax(errors))
    print(f"\n{name} prompt {prompt_len} (seed {seed}): worst relative logit error {errors.max():.2e} at "
          f"position {worst} (prefill {'none' if prompt_len == 1 else f'{out.prefill_seconds * 1e3:.1f} ms'}); "
          f"transformers bf16: {yardstick.max():.2e}")
    assert errors.max() < max(TOLERANCE, 1.5 * yardstick.max())
    # Greedy tokens: transformers' argmax of the logits mpk's tokens were fed, where the margin is clear.
    top2 = np.sort(theirs, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * np.abs(ours - theirs).max(axis=-1)
    generated = slice(prompt_len - 1, prompt_len - 1 + NEW)
    agree = tokens == theirs[generated].argmax(-1)
    assert agree[clear[generated]].all(), f"tokens {tokens} vs {theirs[generated].argmax(-1)}"


def test_sampling_is_reproducible(case):
    name, session, _, _ = case
    prompt = np.random.default_rng(1).integers(0, session.vocab_size, 37).tolist()
    draw = lambda seed: session.generate(prompt, max_new_tokens=16, sampling=dict(
        temperature=1.0, top_k=50, top_p=0.95, min_p=0.01, seed=seed)).tokens[0]
    a, b, c = draw(7), draw(7), draw(8)
    print(f"\n{name}: seed 7 {a.tolist()}, seed 8 {c.tolist()}")
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    greedy = session.generate(prompt, max_new_tokens=16).tokens[0]
    cold = session.generate(prompt, max_new_tokens=16, sampling=dict(temperature=0.0, seed=3)).tokens[0]
    np.testing.assert_array_equal(greedy, cold)

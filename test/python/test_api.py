"""The Python API (mpk.compile, mpk.load, Session.generate) on the CPU task
interpreter: greedy tokens equal PyTorch's greedy decoding (float64, same
weights) for one and for three sequences with different random prompts,
EOS stops rows, and bad input is a clear error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mlir")
torch = pytest.importorskip("torch")

import mpk  # noqa: E402
from mpk.models import Decoder, preset  # noqa: E402
from mpk.runtime.loader import LoaderError, as_float32  # noqa: E402
from mpk.runtime.weights import random_weights  # noqa: E402

MODEL, MAX_SEQ, STEPS_PER_LAUNCH = "qwen3-tiny", 32, 4


@pytest.fixture(scope="module", params=[1, 3], ids=["batch1", "batch3"])
def bundle(request, tmp_path_factory):
    return mpk.compile(MODEL, batch=request.param, max_seq=MAX_SEQ, steps_per_launch=STEPS_PER_LAUNCH,
                       num_sms=8, arch="sm_90", path=tmp_path_factory.mktemp("api") / "model.mpk")


def pytorch_greedy(weights: dict, prompt: np.ndarray, new_tokens: int) -> np.ndarray:
    """Greedy decoding by the PyTorch model in float64, one token per call: [B, new_tokens]."""
    model = Decoder(preset(MODEL)).double()
    model.load_state_dict({k: torch.from_numpy(as_float32(v)).double() for k, v in weights.items()})
    model.setup_caches(prompt.shape[0], MAX_SEQ)
    tokens, out = torch.from_numpy(prompt[:, 0]), []
    with torch.no_grad():
        for position in range(prompt.shape[1] + new_tokens - 1):
            next_tokens, _ = model(tokens, torch.full((prompt.shape[0],), position))
            fed_prompt = position + 1 < prompt.shape[1]
            tokens = torch.from_numpy(prompt[:, position + 1]) if fed_prompt else next_tokens.long()
            if not fed_prompt:
                out.append(next_tokens.numpy())
    return np.stack(out, axis=1)


def test_greedy_tokens_equal_pytorch(bundle):
    batch = bundle.plan["batch"]
    rng = np.random.default_rng(batch)
    prompt = rng.integers(0, preset(MODEL).vocab_size, (batch, 3))       # a different prompt per row
    weights = random_weights(bundle.weights(), seed=11)
    new_tokens = 2 * STEPS_PER_LAUNCH + 1                                  # three launches, the last partial
    with mpk.load(bundle, weights, backend="interp") as session:
        assert (session.backend, session.batch) == ("interp", batch)
        out = session.generate(prompt, max_new_tokens=new_tokens)
    assert out.tokens.shape == (batch, new_tokens) and out.tokens.dtype == np.int64
    assert out.logits.shape == (new_tokens, batch, preset(MODEL).vocab_size)
    np.testing.assert_array_equal(out.tokens, pytorch_greedy(weights, prompt, new_tokens))
    if batch > 1:
        assert len({tuple(row) for row in out.tokens}) > 1     # the rows really are different sequences


def test_prompts_of_different_lengths(bundle):
    """Each row gets its own prompt length and the same number of new tokens: every
    row's tokens and logits are PyTorch's greedy decoding of that row alone."""
    batch = bundle.plan["batch"]
    if batch == 1:
        pytest.skip("one row has one length")
    rng = np.random.default_rng(7)
    prompts = [rng.integers(0, preset(MODEL).vocab_size, n) for n in (1, 5, 3)[:batch]]
    weights = random_weights(bundle.weights(), seed=13)
    new_tokens = STEPS_PER_LAUNCH + 2
    with mpk.load(bundle, weights, backend="interp") as session:
        out = session.generate([p.tolist() for p in prompts], max_new_tokens=new_tokens)
        alone = [session.generate([p.tolist()] * batch, max_new_tokens=new_tokens) for p in prompts]
        with pytest.raises(ValueError, match="non-empty"):
            session.generate([[1, 2], [], [3]][:batch], max_new_tokens=2)
    assert out.tokens.shape == (batch, new_tokens)
    assert out.prompt_logits is None          # the prefill kernel returns each prompt's last logits only
    for i, (p, single) in enumerate(zip(prompts, alone)):
        np.testing.assert_array_equal(out.tokens[i], pytorch_greedy(weights, p[None], new_tokens)[0])
        np.testing.assert_array_equal(out.tokens[i], single.tokens[i])
        np.testing.assert_allclose(out.logits[:, i], single.logits[:, i], rtol=1e-5, atol=1e-5)


def test_one_prompt_row_for_every_sequence(bundle):
    with mpk.load(bundle, weights=3) as session:                # "auto": no GPU here, the interpreter
        assert session.backend == "interp"
        out = session.generate([5, 17, 2], max_new_tokens=3)
    assert out.tokens.shape == (bundle.plan["batch"], 3)
    assert (out.tokens == out.tokens[0]).all()


def test_eos_stops_each_row(bundle):
    batch = bundle.plan["batch"]
    prompt = np.random.default_rng(5).integers(0, 256, (batch, 2))
    with mpk.load(bundle, weights=5) as session:
        free = session.generate(prompt, max_new_tokens=10).tokens
        eos = int(free[0, 1])                                   # row 0 emits it at step 1
        stopped = session.generate(prompt, max_new_tokens=10, eos_token_id=eos).tokens
    for row, tokens in zip(free, stopped):
        hits = np.flatnonzero(row == eos)
        end = hits[0] if len(hits) else len(row)
        np.testing.assert_array_equal(tokens[:end], row[:end])  # the same tokens up to the row's EOS
        assert (tokens[end:] == eos).all()                      # then EOS
    if (free == eos).any(axis=1).all():                         # every row finished: the output ends there
        assert stopped.shape[1] == max(np.flatnonzero(row == eos)[0] for row in free) + 1
    else:
        assert stopped.shape[1] == 10


@pytest.mark.parametrize("prompt, tokens, eos, message", [
    ([[1, 2], [3]], 4, None, "has 2 rows"),
    ([], 4, None, "non-empty"),
    ([1.5, 2.0], 4, None, "int token ids"),
    ([[[1]]], 4, None, "int token ids"),
    ([1, 999], 4, None, r"token ids in \[0, 256\)"),
    ([1, -1], 4, None, r"token ids in \[0, 256\)"),
    ([1, 2], 0, None, "max_new_tokens must be a positive int"),
    ([1, 2], 31, None, "exceed the bundle's max_seq"),
    ([1, 2], 4, 256, "eos_token_id must be a token id"),
])
def test_bad_generate_arguments(bundle, prompt, tokens, eos, message):
    with mpk.load(bundle, weights=0) as session:
        with pytest.raises(ValueError, match=message):
            session.generate(prompt, max_new_tokens=tokens, eos_token_id=eos)


def test_bad_row_count(bundle):
    if bundle.plan["batch"] == 1:
        pytest.skip("one row is always accepted")
    with mpk.load(bundle, weights=0) as session, pytest.raises(ValueError, match="has 2 rows"):
        session.generate([[1, 2], [3, 4]], max_new_tokens=2)


def test_bad_load_and_compile_arguments(bundle, tmp_path):
    with pytest.raises(ValueError, match="backend must be one of"):
        mpk.load(bundle, backend="tpu")
    with pytest.raises(TypeError, match="weights must be"):
        mpk.load(bundle, weights=1.5)
    with pytest.raises(LoaderError, match="no value for weight"):
        mpk.load(bundle, weights={"model.norm.weight": np.ones(64, np.float32)})
    with pytest.raises(ValueError, match="not an mpk bundle"):
        mpk.load(tmp_path)
    with pytest.raises(ValueError, match="neither a preset"):
        mpk.compile("qwen3-huge")
    with pytest.raises(ValueError, match="dtype must be one of"):
        mpk.compile(MODEL, dtype="int8")
    with pytest.raises(ValueError, match="batch must be a positive int"):
        mpk.compile(MODEL, batch=0)


def test_weights_of_a_module_and_of_its_checkpoint(bundle, tmp_path):
    """A PyTorch module's own weights run as they are, and so does the checkpoint folder it saves."""
    from mpk.models import random_model, save_checkpoint
    model = random_model(preset(MODEL), seed=2, dtype=torch.bfloat16)
    with mpk.load(bundle, model, backend="interp") as session:
        from_module = session.generate([3, 1], max_new_tokens=3).tokens
    with mpk.load(bundle, save_checkpoint(model, tmp_path / "ckpt"), backend="interp") as session:
        from_folder = session.generate([3, 1], max_new_tokens=3).tokens
    np.testing.assert_array_equal(from_module, from_folder)
    assert from_module.shape == (bundle.plan["batch"], 3)


def test_import_mpk_is_light():
    code = "import sys, mpk; mpk.load; print(sorted({'torch', 'mlir'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_a_temporary_bundle_goes_with_its_bundle():
    import gc
    b = mpk.compile(MODEL, max_seq=MAX_SEQ, steps_per_launch=STEPS_PER_LAUNCH, num_sms=8, arch="sm_90")
    folder = b.path.parent
    assert (b.path / "plan.json").is_file()
    del b
    gc.collect()
    assert not folder.exists()

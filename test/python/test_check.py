"""mpk.check's verdicts on made-up logits: the logit tolerance, poisoned
(NaN) logits, and tokens that may differ only at a near-tie."""

from __future__ import annotations

import types

import numpy as np
import pytest

from mpk.check import check_generation, compare, logits_ok, relative_error
from mpk.errors import InputError

V = 50


def logits(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, 1, V))


def test_rounding_noise_passes_and_tokens_agree():
    ref = logits(4, 0)
    ours = ref + 1e-3 * logits(4, 1)
    report = compare(ours, ref, ours[1:].argmax(-1), prompt_len=2)
    assert report.ok and report.worst < 2e-3
    assert [s.tokens is None for s in report.steps] == [True, False, False, False]


def test_error_over_tolerance_fails():
    ref = logits(3, 0)
    ours = ref.copy()
    ours[2] += 0.1 * logits(1, 1)[0]
    report = compare(ours, ref, ours.argmax(-1), prompt_len=1, tolerance=2e-2)
    assert not report.ok and report.steps[2].verdict == "FAIL: logit error"
    assert "check FAILED" in report.table()


def test_unwritten_logits_fail():
    ref = logits(2, 0)
    ours = ref.copy()
    ours[1, 0, 7] = np.nan
    report = compare(ours, ref, ref.argmax(-1), prompt_len=1)
    assert report.steps[1].verdict == "FAIL: NaN/inf logits"


def test_unwritten_tokens_fail():
    ref = logits(2, 0)
    report = compare(ref, ref, np.array([[-1]]), prompt_len=2)
    assert report.steps[1].verdict == "FAIL: token not written"


def test_tokens_may_differ_only_at_a_near_tie():
    ref = logits(2, 0)
    top = ref[:, 0].argmax(-1)
    second = np.argsort(ref[:, 0], -1)[:, -2]
    ref[0, 0, second[0]] = ref[0, 0, top[0]] - 1e-4      # step 0: a near-tie
    ours = ref + 1e-3 * logits(2, 1)
    swapped = second[:, None]                            # mpk picked the runner-up at both steps
    report = compare(ours, ref, swapped, prompt_len=1)
    assert report.steps[0].verdict == "ok (near-tie)"
    assert report.steps[0].margin < report.steps[0].threshold
    assert report.steps[1].verdict == "FAIL: token at a clear margin"
    assert not report.ok


def test_relative_error_and_the_slack_of_the_bundles_dtype():
    ref = logits(1, 0)
    assert relative_error(ref, ref) == 0 and relative_error(np.full_like(ref, np.nan), ref) == np.inf
    assert logits_ok(0.01) and not logits_ok(0.03) and not logits_ok(np.inf, 1.0, slack=2.0)
    assert logits_ok(0.03, torch_error=0.025, slack=1.25) and not logits_ok(0.04, torch_error=0.025, slack=1.25)
    # bench.decode's rule through compare: PyTorch in bf16 errs as much, so mpk's 3% passes with a slack only.
    ours, torch_bf16 = ref + 0.03 * logits(1, 1), ref + 0.03 * logits(1, 2)
    assert not compare(ours, ref, ref.argmax(-1), prompt_len=2, torch_same_dtype=torch_bf16).ok
    report = compare(ours, ref, ref.argmax(-1), prompt_len=2, torch_same_dtype=torch_bf16, slack=1.25)
    assert report.ok and report.steps[0].torch_error == pytest.approx(relative_error(torch_bf16[0], ref[0]))


def test_check_generation_says_what_it_needs():
    out = types.SimpleNamespace(logits=None)
    model_bundle = types.SimpleNamespace(plan={"model": {"vocab_size": 50}, "max_seq": 8})
    with pytest.raises(InputError, match="^--check needs a per-step 'logits' io buffer in the bundle$"):
        check_generation(model_bundle, {}, [1], out, what="--check")
    out.logits = np.zeros((1, 1, V))
    with pytest.raises(InputError, match="^the check against PyTorch needs the model config; this bundle was "
                                         "compiled from a graph file$"):
        check_generation(types.SimpleNamespace(plan={"max_seq": 8}), {}, [1], out)

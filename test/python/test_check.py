"""mpk.check's verdicts on made-up logits: the logit tolerance, poisoned
(NaN) logits, and tokens that may differ only at a near-tie."""

from __future__ import annotations

import numpy as np

from mpk.check import compare

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

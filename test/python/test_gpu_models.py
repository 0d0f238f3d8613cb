"""Whole models on the GPU against PyTorch: bf16 bundles, 32 decode steps in
one launch, random weights from a fresh seed (printed), a fresh random prompt.

Every step's logits must be within 2e-2 relative error of the float64 PyTorch
model on the same weights, and the greedy token the same wherever the
reference's top-two margin is clear of the measured error (mpk.check says why
and how). Outputs are poisoned before every launch (Session.launch).

The GPU machine has no MLIR: bundles come prebuilt from $MPK_TEST_BUNDLES
(default .bundles/), named `<model>-bf16-s32`:

    mpk compile --model qwen3-0.6b --max-seq 1024 --steps 32 -o .bundles/qwen3-0.6b-bf16-s32
"""

from __future__ import annotations

import numpy as np
import pytest

from mpk.check import check_run
from mpk.runtime import bundle, loader
from mpk.runtime.weights import random_weights
from runtime_stub import PREBUILT

pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

STEPS = 32
# qwen3-0.6b-staged: compiled with --ring-bytes 114688 (weight tiles streamed through the weight ring);
# -counters: with --data-flags 0 (every event a counter; by default the activations of the
# linears and the attention carry their flags: mpk-data-flags)
MODELS = ("qwen3-tiny", "llama3-tiny", "qwen3-0.6b", "qwen3-0.6b-staged",
          "qwen3-tiny-counters", "llama3-tiny-counters", "qwen3-0.6b-counters")


@pytest.fixture(scope="module")
def gpu():
    if loader.gpu_count() == 0:
        pytest.skip("no CUDA GPU (cuInit/cuDeviceGetCount found none)")
    return loader.device_properties(0)


def prebuilt(model: str, gpu: dict) -> bundle.Bundle:
    path = PREBUILT / f"{model}-bf16-s32"
    if not path.is_dir():
        pytest.skip(f"no prebuilt bundle {path} (mpk compile --model {model} --max-seq 1024 "
                    f"--steps {STEPS} -o {path})")
    b = bundle.read(path)
    if b.kernel["num_sms"] != gpu["num_sms"]:
        pytest.skip(f"{path} is scheduled for {b.kernel['num_sms']} SMs, this GPU has {gpu['num_sms']}")
    assert b.kernel["steps"] >= STEPS and {w["dtype"] for w in b.weights().values()} == {"bf16"}
    return b


def run_and_check(b: bundle.Bundle, steps: int) -> list:
    """generate() on fresh random weights and prompt; returns the steps of each launch."""
    seed = int(np.random.SeedSequence().entropy % 2**31)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, b.plan["model"]["vocab_size"], 3)
    print(f"\n{b.path.name}: seed {seed}, prompt {prompt.tolist()}")
    weights = random_weights(b.weights(), seed)
    launches = []
    with loader.Session(b) as session:
        session.bind_weights(weights)
        launch = session.launch        # count generate()'s launches and their steps
        session.launch = lambda n=None, **kw: (launches.append(n), launch(n, **kw))[1]
        result = loader.generate(session, prompt, steps)
    report = check_run(b.plan["model"], weights, prompt, result, b.plan["max_seq"])
    print(report.table())
    assert report.ok, f"{b.path.name} (seed {seed}) differs from PyTorch: see the table above"
    return launches


@pytest.mark.parametrize("model", MODELS)
def test_32_steps_in_one_launch_match_pytorch(gpu, model):
    b = prebuilt(model, gpu)
    assert (b.kernel.get("ring_bytes", 0) > 0) == model.endswith("-staged")
    assert any(x.get("flagged") for x in b.plan["buffers"]) != model.endswith("-counters")
    launches = run_and_check(b, STEPS)
    # The prompt in one launch of the prefill kernel (its first new token), then the
    # other 31 steps in one launch of the decode kernel.
    assert launches == [STEPS - 1]


def test_more_steps_than_a_launch_holds_loop_launches(gpu):
    b = prebuilt("qwen3-tiny", gpu)
    per_launch = b.kernel["steps"]
    launches = run_and_check(b, per_launch + 8)
    assert launches == [per_launch, 7]   # the KV cache and positions carry over between launches


def test_prompts_of_different_lengths_decode_each_row_as_alone(gpu):
    """Batch 3, prompts of 1, 5 and 3 tokens: every row's tokens and logits are those
    of its prompt decoded alone (on every row), and that matches PyTorch."""
    b = prebuilt("qwen3-tiny-b3", gpu)
    seed = int(np.random.SeedSequence().entropy % 2**31)
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, b.plan["model"]["vocab_size"], n) for n in (1, 5, 3)]
    print(f"\n{b.path.name}: seed {seed}, prompts {[p.tolist() for p in prompts]}")
    weights = random_weights(b.weights(), seed)
    with loader.Session(b) as session:
        session.bind_weights(weights)
        out = loader.generate(session, [p.tolist() for p in prompts], STEPS)
        alone = [loader.generate(session, [p.tolist()] * 3, STEPS) for p in prompts]
    for i, (prompt, single) in enumerate(zip(prompts, alone)):
        np.testing.assert_array_equal(out["tokens"][:, i], single["tokens"][:, i])
        # The same logits up to bf16 rounding: a one-token prompt alone needs no prefill
        # kernel (the decode kernel takes it), in the batch the prefill kernel does.
        diff = np.linalg.norm(out["logits"][:, i] - single["logits"][:, i]) / np.linalg.norm(single["logits"][:, i])
        assert diff < 1e-2, f"row {i}: relative logit difference {diff:.2e}"
        report = check_run(b.plan["model"], weights, prompt, single, b.plan["max_seq"])
        print(report.table())
        assert report.ok, f"prompt {i} (seed {seed}) differs from PyTorch: see the table above"


def test_a_launch_refuses_more_steps_than_the_bundle_holds(gpu):
    b = prebuilt("qwen3-tiny", gpu)
    with loader.Session(b) as session:
        with pytest.raises(loader.LoaderError, match=f"a launch runs 1..{b.kernel['steps']} steps"):
            session.launch(b.kernel["steps"] + 1)


def test_a_flagged_input_never_written_stops_naming_the_waiting_task(gpu, tmp_path):
    """The producer of a flagged buffer never runs (its tasks' function id matches no
    function): its readers' polls give up and the launch ends with a timeout that names
    one of them, instead of hanging."""
    import shutil
    from mpk.runtime import tables
    source = prebuilt("qwen3-tiny", gpu)
    broken = shutil.copytree(source.path, tmp_path / "broken.mpk")
    plan = source.plan
    flagged = {x["name"] for x in plan["buffers"] if x.get("flagged")}
    producer = next(g for g in plan["groups"] if set(g["outputs"]) & flagged)
    t = tables.load(broken / bundle.TABLES)
    t["tasks"][producer["first_task"]:producer["first_task"] + producer["num_tasks"], tables.task_field("fn")] = 999
    tables.save(broken / bundle.TABLES, t)
    b = bundle.read(broken)
    with loader.Session(b, timeout_s=120) as session:
        session.bind_weights(random_weights(b.weights(), 0))
        with pytest.raises(loader.RuntimeTimeout) as failure:
            session.launch()
    message = str(failure.value)
    print(message)
    assert "polled its flagged inputs" in message and "step 0" in message

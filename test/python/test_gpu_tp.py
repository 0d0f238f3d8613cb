"""Tensor-parallel bundles on one GPU: N ranks emulated side by side (N kernels on
their own streams, each with 1/N of the SMs, "peer" memory on the same device),
against PyTorch and against the one-rank bundle, and a dead peer.

The GPU machine has no MLIR: the bundles come prebuilt (test/runtime/build_bundles.sh):

    mpk compile --model qwen3-tiny --tp 2 --num-sms 66 --max-seq 1024 --steps 32 -o .bundles/qwen3-tiny-tp2
"""

from __future__ import annotations

import numpy as np
import pytest

from mpk.check import check_run, relative_error
from mpk.runtime import bundle, loader
from mpk.runtime.weights import random_weights
from runtime_stub import PREBUILT

pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

STEPS = 32
CASES = [("qwen3-tiny", 2), ("qwen3-tiny", 4), ("llama3-tiny", 2), ("llama3-tiny", 4)]


@pytest.fixture(scope="module")
def gpu():
    if loader.gpu_count() == 0:
        pytest.skip("no CUDA GPU (cuInit/cuDeviceGetCount found none)")
    return loader.device_properties(0)


def prebuilt(name: str, gpu: dict, sms: int) -> bundle.Bundle:
    path = PREBUILT / name
    if not path.is_dir():
        pytest.skip(f"no prebuilt bundle {path} (test/runtime/build_bundles.sh)")
    b = bundle.read(path)
    if b.kernel["num_sms"] != sms:
        pytest.skip(f"{path} is scheduled for {b.kernel['num_sms']} SMs, not {sms} of this GPU's {gpu['num_sms']}")
    return b


@pytest.mark.parametrize("model,tp", CASES)
def test_ranks_match_pytorch_and_one_rank(gpu, model, tp):
    from mpk.runtime.ranks import RankSet
    b = prebuilt(f"{model}-tp{tp}", gpu, gpu["num_sms"] // tp)
    one = prebuilt(f"{model}-bf16-s32", gpu, gpu["num_sms"])
    seed = int(np.random.SeedSequence().entropy % 2**31)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, b.plan["model"]["vocab_size"], 3)
    print(f"\n{b.path.name}: seed {seed}, prompt {prompt.tolist()}")
    weights = random_weights(b.weights(), seed)
    with RankSet(b) as ranks:
        assert ranks.emulated or loader.gpu_count() >= tp
        ranks.bind_weights(weights)
        out = loader.generate(ranks, prompt, STEPS)
        # Every rank sums the same slots in the same order and gathers the same logits.
        for r in range(1, tp):
            np.testing.assert_array_equal(ranks.read("logits", rank=r), ranks.read("logits", rank=0))
    report = check_run(b.plan["model"], weights, prompt, out, b.plan["max_seq"])
    print(report.table())
    assert report.ok, f"{b.path.name} (seed {seed}) differs from PyTorch: see the table above"
    with loader.Session(one) as session:
        session.bind_weights(weights)
        single = loader.generate(session, prompt, STEPS)
    same = out["tokens"][:, 0] == single["tokens"][:, 0]
    first = int(np.argmin(same)) if not same.all() else STEPS      # compare logits while the tokens agree
    error = max(relative_error(out["logits"][s, 0], single["logits"][s, 0]) for s in range(max(first, 1)))
    print(f"TP={tp} against one rank: tokens equal for {first} of {STEPS} steps, worst relative logit error {error:.2e}")
    assert error < 2e-2


def test_a_dead_peer_times_out_on_every_survivor(gpu):
    from mpk.runtime.ranks import RankSet
    b = prebuilt("qwen3-tiny-tp4", gpu, gpu["num_sms"] // 4)
    with RankSet(b, timeout_s=0.5) as ranks:
        ranks.bind_weights(random_weights(b.weights(), 0))
        ranks.write("tokens", np.array([1], np.int32))
        ranks.write("positions", np.array([0], np.int32))
        ranks.write("sample_params", np.zeros((1, 4), np.float32))
        ranks.write("sample_seeds", np.zeros(1, np.int32))
        with pytest.raises(loader.RuntimeTimeout) as e:
            ranks.launch(1, ranks=[0, 1, 3])          # rank 2 never runs
        message = str(e.value)
        print(message)
        assert message.startswith("ranks 2 did not run; 3 of 3 ranks timed out")
        for r in (0, 1, 3):
            assert f"rank {r} of 4:" in message
        assert "a peer rank died, stopped or never started" in message and "allreduce" in message
        ranks.launch(1)                               # the ranks recover: the next launch runs

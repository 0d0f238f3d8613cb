"""bench.tp on the CPU: the tensor-parallel PyTorch decoder (gloo, 2 and 4 ranks in
processes, fp32) gives every rank the unsharded model's logits, KV heads are cut as
mpk-shard cuts them, and without a GPU a run records its rows as skipped and exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))                  # bench/ is not an installed package
from bench import tp  # noqa: E402
from mpk.models import Decoder, preset  # noqa: E402

# qwen3-tiny: 4 query heads, 2 KV heads (split at TP=2, replicated at TP=4);
# llama3-tiny: 1 KV head (replicated at both); qwen3-tiny-untied: its own LM head.
PRESETS = ("qwen3-tiny", "qwen3-tiny-untied", "llama3-tiny")
BATCH, MAX_SEQ, STEPS = 3, 12, 5


def _rank(rank: int, world: int, port: int, torn_down) -> None:
    """One gloo rank: every preset's sharded decoder against the full one, step by step."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for name in PRESETS:
            config = preset(name)
            torch.manual_seed(0)                       # the same full weights on every rank
            full = Decoder(config).eval()
            sharded = tp.TPDecoder(config, full.state_dict(), rank, world).eval()
            full.setup_caches(BATCH, MAX_SEQ)
            sharded.setup_caches(BATCH, MAX_SEQ)
            g = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for step in range(STEPS):
                    tokens = torch.randint(0, config.vocab_size, (BATCH,), generator=g)
                    positions = torch.randint(0, MAX_SEQ, (BATCH,), generator=g)
                    want_tokens, want = full(tokens, positions)
                    got_tokens, got = sharded(tokens, positions)
                    err = float((got - want).norm() / want.norm())
                    assert err < 1e-5, f"{name} tp={world} rank {rank} step {step}: relative logit error {err:.2e}"
                    assert torch.equal(got_tokens, want_tokens), f"{name} tp={world} rank {rank} step {step}"
        dist.barrier()            # no rank leaves (taking the store with it) while another still talks
    finally:
        dist.destroy_process_group()
    # Nor while another still tears its group down: once in a CI run a rank aborted in
    # its teardown ("terminate called without an active exception") after the barrier.
    torn_down.wait(timeout=120)


@pytest.mark.parametrize("world", [2, 4])
def test_sharded_logits_equal_the_full_model(world):
    torn_down = torch.multiprocessing.get_context("spawn").Barrier(world)
    torch.multiprocessing.spawn(_rank, args=(world, tp.free_port(), torn_down), nprocs=world, join=True)


def test_kv_heads_split_or_replicated_as_mpk_shard_cuts_them():
    qwen, llama = preset("qwen3-tiny"), preset("llama3-tiny")          # 2 KV heads, 1 KV head; head_dim 16
    k = "model.layers.0.self_attn.k_proj.weight"
    assert [tp.shard_range(k, qwen, r, 2) for r in range(2)] == [(0, 0, 16), (0, 16, 16)]
    assert [tp.shard_range(k, qwen, r, 4) for r in range(4)] == [(0, 0, 16), (0, 0, 16), (0, 16, 16), (0, 16, 16)]
    assert {tp.shard_range(k, llama, r, 4) for r in range(4)} == {(0, 0, 16)}
    assert tp.shard_range("model.layers.1.self_attn.o_proj.weight", qwen, 1, 2) == (1, 32, 32)
    assert tp.shard_range("model.layers.1.mlp.down_proj.weight", llama, 3, 4) == (1, 120, 40)
    assert tp.shard_range("lm_head.weight", qwen, 1, 4) == (0, 64, 64)
    assert tp.shard_range("model.norm.weight", qwen, 1, 4) is None
    with pytest.raises(ValueError, match="query heads"):
        tp.check_tp(qwen, 8)
    with pytest.raises(ValueError, match="KV heads"):
        tp.check_tp(qwen.replace(num_heads=6, num_kv_heads=3), 2)


def test_tp_bundle_path():
    assert tp.tp_bundle_path("qwen3-8b", 8, 2, Path("b")) == Path("b/qwen3-8b-b8-tp2")


def test_mpk_row_is_skipped_without_ranks_bundle_or_gpu(tmp_path):
    row = tp.mpk_tp_row("qwen3-tiny", 2, 1, 64, tmp_path)
    if torch.cuda.is_available() and "no bundle" not in row.get("skipped", ""):
        pytest.skip("a GPU and mpk.runtime.ranks are here")
    assert set(row) == {"skipped"}


def test_bad_arguments_are_refused(capsys):
    for argv in (["--tp", "0"], ["--models", "qwen3-tiny", "--tp", "3"], ["--models", "nope"]):
        with pytest.raises(SystemExit) as e:
            tp.main(argv)
        assert e.value.code == 2, argv
    assert "do not split over tp=3" in capsys.readouterr().err


def test_without_a_gpu_every_row_is_skipped_and_the_run_exits_0(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "bench.tp", "--models", "qwen3-tiny", "--tp", "2", "4",
                           "--batches", "1", "2", "--contexts", "64", "--bundles", str(tmp_path / "none"),
                           "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "cpu-tp.json").read_text())
    assert result["gpus"] == 0 and result["nccl_nvls_enable"] == "0"
    rows = result["results"]
    assert [(r["tp"], r["batch"]) for r in rows] == [(1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2)]
    for r in rows:
        assert r["model"] == "qwen3-tiny" and r["ctx"] == 64
        assert "needs" in r["systems"]["eager"]["skipped"] and "needs" in r["systems"]["cuda_graph"]["skipped"]
        if r["tp"] > 1:
            assert r["systems"]["eager"]["skipped"].startswith(f"needs {r['tp']} GPUs, this machine has 0")
            assert r["nccl"] == r["systems"]["eager"]
            assert "skipped" in r["systems"]["mpk"]
    assert "allreduce" in done.stdout.splitlines()[-len(rows) - 2]     # the table comes last

"""The whole compiler front half against PyTorch: a tiny Qwen3 and a tiny Llama
go torch.export -> graph IR -> tasks -> events -> schedule -> memory plan, and
the task interpreter (random valid orders, then the per-SM queues) reproduces
the PyTorch logits, tokens and caches over several decode steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpk import pipeline
from mpk.frontend import import_model
from mpk.interp.tasks import run_tasks
from mpk.models import preset, random_model

BATCH, MAX_SEQ, STEPS = 2, 16, 4
PIPELINE = "builtin.module({fuse}mpk-fuse-gate-up{{decode={gate_up}}},mpk-fuse-norm,mpk-fuse-silu," \
           "mpk-fuse-rope-append,mpk-partition{{min-split-rows={rows} rope-in-attention={rope} " \
           "merge-in-attention={merge}}}," \
           "mpk-build-events{{report=false}}," \
           "mpk-schedule{{report=false}},mpk-plan-memory{{report=false}},mpk-verify)"


def _pytorch_steps(model, caches, tokens, positions):
    model.setup_caches(BATCH, MAX_SEQ)
    for i, layer in enumerate(model.model.layers):
        layer.self_attn.k_cache.copy_(torch.from_numpy(caches[f"layers.{i}.k_cache"]))
        layer.self_attn.v_cache.copy_(torch.from_numpy(caches[f"layers.{i}.v_cache"]))
    steps = []
    tokens, positions = torch.from_numpy(tokens), torch.from_numpy(positions)
    for _ in range(STEPS):
        with torch.no_grad():
            next_tokens, logits = model(tokens, positions)
        steps.append((next_tokens.numpy(), logits.numpy()))
        tokens, positions = next_tokens.long(), positions + 1
    return steps


@pytest.mark.parametrize("name", ["qwen3-tiny", "llama3-tiny"])
@pytest.mark.parametrize("split_rows,fuse,rope,merge,gate_up",
                         [(MAX_SEQ, False, True, True, True), (4, True, True, True, True),
                          (4, True, True, False, False), (4, True, False, True, False)],
                         ids=["one-pass-attention", "split-kv,fused-residual,rope-in-attention,merged,gate_up",
                              "split-kv,rope-in-attention,combine-group,silu_mul",
                              "split-kv,rope_append,merged,silu_mul"])
def test_scheduled_tasks_match_pytorch(name, split_rows, fuse, rope, merge, gate_up):
    config = preset(name)
    model = random_model(config, seed=7)
    module = import_model(config, BATCH, MAX_SEQ)
    pipeline.run(module, PIPELINE.format(rows=split_rows, fuse="mpk-fuse-residual," if fuse else "",
                                         rope=str(rope).lower(), merge=str(merge).lower(),
                                         gate_up=str(gate_up).lower()))
    kinds = {op.operation.attributes["kind"].value for op in module.body.operations
             if op.operation.name == "mpk.tasks"}
    split = split_rows < MAX_SEQ
    assert ("attention_split" in kinds) == (split and merge), kinds         # the last split merges
    assert ("attention_partial" in kinds) == ("attention_combine" in kinds) == (split and not merge), kinds
    assert ("rope_append" in kinds) == (not split or not rope), kinds   # split: fused into the partials
    assert ("gate_up" in kinds) == gate_up and not (gate_up and "silu_mul" in kinds), kinds
    assert ("add" in kinds) != fuse, kinds
    rng = np.random.default_rng(11)
    kv_dim = config.num_kv_heads * config.head_dim
    caches = {f"layers.{i}.{kind}_cache": rng.standard_normal((BATCH, MAX_SEQ, kv_dim)).astype(np.float32)
              for i in range(config.num_layers) for kind in "kv"}
    tokens = rng.integers(0, config.vocab_size, BATCH)
    positions = rng.integers(0, MAX_SEQ - STEPS, BATCH)
    expected = _pytorch_steps(model, caches, tokens, positions)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for seed, queues in ((0, False), (1, False), (2, True)):
        state = {k: v.copy() for k, v in caches.items()}
        out = run_tasks(module, weights, state, {"tokens": tokens, "positions": positions},
                        steps=STEPS, seed=seed, queues=queues)
        for s, (next_tokens, logits) in enumerate(expected):
            error = np.abs(out["logits"][s] - logits).max() / np.abs(logits).max()
            assert error < 1e-5, (seed, s, error)
            np.testing.assert_array_equal(out["next_tokens"][s], next_tokens)
        for i, layer in enumerate(model.model.layers):
            np.testing.assert_allclose(state[f"layers.{i}.k_cache"], layer.self_attn.k_cache.numpy(),
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(state[f"layers.{i}.v_cache"], layer.self_attn.v_cache.numpy(),
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("splits", [1, 3], ids=["sample", "sample_split"])
def test_sampled_steps_follow_the_spec(splits):
    """mpk-sample's draw in the task interpreter, one task per row or in splits of
    each row (`sample_split`, whose last split merges): every step's tokens are
    mpk.sampling's draw from that step's logits (a plain temperature row, a
    filtered one, a greedy one), positions advance once a step, and the tokens
    feed the next step."""
    from mlir import ir
    from mpk import sampling
    batch = 3
    config = preset("qwen3-tiny")
    model = random_model(config, seed=3)
    module = import_model(config, batch, MAX_SEQ)
    pipeline.run(module, "builtin.module(mpk-sample)")
    func = next(op for op in module.body.operations if op.operation.name == "func.func")
    draw = next(op for op in func.regions[0].blocks[0].operations if op.operation.name == "mpk.sample")
    with module.context:
        draw.attributes["mpk.splits"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), splits)
    pipeline.run(module, PIPELINE.format(rows=MAX_SEQ, fuse="", rope="true", merge="true", gate_up="true"))
    kinds = {op.operation.attributes["kind"].value for op in module.body.operations
             if op.operation.name == "mpk.tasks"}
    assert ("sample_split" in kinds) == (splits > 1) and ("sample" in kinds) == (splits == 1), kinds
    rng = np.random.default_rng(5)
    params = sampling.pack_params(temperature=[0.8, 1.2, 0.0], top_k=[0, 20, 0], top_p=[1.0, 0.9, 1.0])
    seeds = np.array([11, 12, 13], np.int32)
    positions = rng.integers(0, MAX_SEQ - STEPS, batch)
    inputs = {"tokens": rng.integers(0, config.vocab_size, batch), "positions": positions,
              "sample_params": params, "sample_seeds": seeds}
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    kv_dim = config.num_kv_heads * config.head_dim
    for seed, queues in ((0, False), (1, True)):
        state = {f"layers.{i}.{kind}_cache": np.zeros((batch, MAX_SEQ, kv_dim), np.float32)
                 for i in range(config.num_layers) for kind in "kv"}
        out = run_tasks(module, weights, state, dict(inputs), steps=STEPS, seed=seed, queues=queues)
        for s in range(STEPS):
            want = sampling.sample(out["logits"][s], params, seeds.astype(np.uint32), positions + s)
            np.testing.assert_array_equal(out["next_tokens"][s], want)
        np.testing.assert_array_equal(out["positions"], positions + STEPS)

"""mpk-shard: the N ranks of a tensor-parallel decode step, run together by the graph
interpreter (their allreduces summing across them), equal one rank over several
steps, on Qwen3 and Llama shapes: KV heads split over the ranks, and replicated
where there are fewer than ranks (qwen3-tiny at tp=4, llama3-tiny at tp=2 and 4)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mlir import ir

from mpk import dialects as mpk
from mpk import pipeline
from mpk.interp.graph import run_graph, run_graph_ranks, shard_state
from mpk.interp.tasks import TaskInterpreterError, rank_state, run_tasks_ranks
from mpk.models.config import PRESETS

from taskgraph_graphs import FUSIONS, decoder_graph, graph_arrays

BATCH, MAX_SEQ, STEPS = 2, 16, 3


def _sharded(graph, tp: int) -> ir.Module:
    module = ir.Module.parse(str(graph))
    pipeline.run(module, f"builtin.module(mpk-shard{{tp={tp}}},mpk-verify)")
    return module


@pytest.mark.parametrize("preset", ["qwen3-tiny", "llama3-tiny"])
@pytest.mark.parametrize("tp", [2, 4])
def test_ranks_together_equal_one_rank(preset, tp):
    with mpk.context():
        graph = decoder_graph(PRESETS[preset], BATCH, MAX_SEQ)
        rng = np.random.default_rng(tp)
        pos0 = rng.integers(0, MAX_SEQ - STEPS, BATCH)
        arrays = graph_arrays(graph, tp, pos0)
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        caches = {k: v for k, v in arrays.items() if k.endswith("_cache")}
        module = _sharded(graph, tp)
        state = {k: v.copy() for k, v in caches.items()}
        states = [shard_state(module, caches, rank) for rank in range(tp)]
        tokens = rng.integers(0, PRESETS[preset].vocab_size, BATCH).astype(np.int32)
        positions = pos0.astype(np.int32)
        for step in range(STEPS):
            want_tokens, want_logits = run_graph(graph, weights, tokens, positions, state=state)
            ranks = run_graph_ranks(module, weights, tokens, positions, states=states)
            for rank, (got_tokens, got_logits) in enumerate(ranks):
                error = np.abs(got_logits - want_logits).max() / np.abs(want_logits).max()
                assert error < 1e-5, (step, rank, error)
                np.testing.assert_array_equal(got_tokens, want_tokens)
            tokens, positions = want_tokens, positions + 1
        # Each rank's caches hold its KV heads of the one-rank caches, rows written by every step.
        for rank, local in enumerate(states):
            np.testing.assert_allclose(local["model.layers.0.self_attn.k_cache"],
                                       shard_state(module, state, rank)["model.layers.0.self_attn.k_cache"],
                                       rtol=1e-5, atol=1e-6)


def test_a_failing_rank_stops_the_others():
    with mpk.context():
        graph = decoder_graph(PRESETS["qwen3-tiny"], BATCH, MAX_SEQ)
        module = _sharded(graph, 2)
        arrays = graph_arrays(graph, 0, np.zeros(BATCH, int))
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        states = [shard_state(module, arrays, rank) for rank in range(2)]
        del states[1]["model.layers.0.self_attn.k_cache"]
        with pytest.raises(KeyError, match="k_cache"):
            run_graph_ranks(module, weights, np.zeros(BATCH, np.int32), np.zeros(BATCH, np.int32),
                            states=states)


# ------------------------------------------------------------- task level

TASKS = f"builtin.module(mpk-shard{{tp={{tp}}}},{FUSIONS},mpk-partition{{num-sms=8 {{partition}}}}," \
        "mpk-build-events{report=false},mpk-schedule{report=false},mpk-plan-memory{report=false},mpk-verify)"
# A shape no preset has: 8 query heads of 16 over 4 KV heads, 3 layers, an untied-width MLP.
HELD_OUT = dataclasses.replace(PRESETS["qwen3-tiny"], num_heads=8, num_kv_heads=4, head_dim=16, hidden_size=96,
                               intermediate_size=192, vocab_size=320, num_layers=3)


# one-shot: o_proj and down store into every rank's slots themselves; -push: an allgather
# task after them does (mpk-partition{store-in-product=false}).
PARTITION = {"one-shot": "allreduce=one-shot", "one-shot-push": "allreduce=one-shot store-in-product=false",
             "two-shot": "allreduce=two-shot", "auto": "allreduce=auto"}


def _task_module(graph, tp: int, algorithm: str = "auto") -> ir.Module:
    module = ir.Module.parse(str(graph))
    pipeline.run(module, TASKS.replace("{tp}", str(tp)).replace("{partition}", PARTITION[algorithm]))
    return module


@pytest.mark.parametrize("config", ["qwen3-tiny", "llama3-tiny", "held-out"])
@pytest.mark.parametrize("tp", [2, 4])
@pytest.mark.parametrize("algorithm", ["one-shot", "one-shot-push", "two-shot"])
def test_task_interpreter_ranks_equal_one_rank(config, tp, algorithm):
    """The ranks' task graphs run together in the CPU task interpreter, in random orders
    across all ranks and on the workers' queues, remote events included, and every rank's
    logits and tokens equal one rank's over several steps; with either allreduce (the
    two-shot one's memory plan included: its scatter orders only what this rank owns)."""
    c = HELD_OUT if config == "held-out" else PRESETS[config]
    with mpk.context():
        graph = decoder_graph(c, BATCH, MAX_SEQ)
        rng = np.random.default_rng(tp + 7)
        pos0 = rng.integers(0, MAX_SEQ - STEPS, BATCH)
        tokens = rng.integers(0, c.vocab_size, BATCH)
        arrays = graph_arrays(graph, tp, pos0)
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        caches = {k: v for k, v in arrays.items() if k.endswith("_cache")}
        state = {k: v.copy() for k, v in caches.items()}
        reference, t, p = [], tokens.astype(np.int32), pos0.astype(np.int32)
        for _ in range(STEPS):
            next_tokens, logits = run_graph(graph, weights, t, p, state=state)
            reference.append((next_tokens, logits))
            t, p = next_tokens, p + 1
        module = _task_module(graph, tp, algorithm)
        kinds_used = {ir.StringAttr(op.attributes["kind"]).value for op in module.body.operations
                      if op.operation.name == "mpk.tasks"}
        assert ("scatter" in kinds_used) == (algorithm == "two-shot")
        pushes = sum(op.operation.name == "mpk.tasks" and ir.StringAttr(op.attributes["kind"]).value == "allgather"
                     for op in module.body.operations)
        assert pushes == 1 + (2 * c.num_layers if algorithm != "one-shot" else 0)    # + the logits' gather
        for seed, queues in ((0, False), (1, False), (2, True)):
            states = [rank_state(module, caches, r, tp) for r in range(tp)]
            outs = run_tasks_ranks(module, weights, states, {"tokens": tokens, "positions": pos0},
                                   steps=STEPS, seed=seed, queues=queues)
            for rank, out in enumerate(outs):
                for s, (next_tokens, logits) in enumerate(reference):
                    error = np.abs(out["logits"][s] - logits).max() / np.abs(logits).max()
                    assert error < 1e-5, (rank, s, error)
                    np.testing.assert_array_equal(out["next_tokens"][s], next_tokens)


def test_a_remote_event_counting_one_rank_is_caught():
    """An allreduce that waits only for its own rank's allgather tiles reads the other
    ranks' slots before they are stored: the interpreter names the reader."""
    with mpk.context():
        graph = decoder_graph(PRESETS["qwen3-tiny"], BATCH, MAX_SEQ)
        module = _task_module(graph, 2, "one-shot")
        for op in module.body.operations:
            op = op.operation
            if op.name == "mpk.event" and "ranks" in op.attributes:
                triggers = ir.IntegerAttr(op.attributes["triggers"]).value
                op.attributes["triggers"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), triggers // 2)
                del op.attributes["ranks"]
        arrays = graph_arrays(graph, 0, np.zeros(BATCH, int))
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        caches = {k: v for k, v in arrays.items() if k.endswith("_cache")}
        states = [rank_state(module, caches, r, 2) for r in range(2)]
        with pytest.raises(TaskInterpreterError, match=r"allreduce.*reads '@.*slots.*before it is written"):
            run_tasks_ranks(module, weights, states, {"tokens": np.zeros(BATCH, np.int32),
                                                      "positions": np.zeros(BATCH, np.int32)}, steps=2, seed=0)


def test_the_cost_model_picks_one_shot_for_decode_and_two_shot_for_large_tensors():
    from mpk.lowering import tiling
    h200 = tiling.target("sm_90", 132)
    assert tiling.allreduce_algorithm(8 * 4096 * 2, 8, h200) == "one-shot"       # Qwen3-8B b8 TP=8: 64 KB
    assert tiling.allreduce_algorithm(1024 * 4096 * 2, 4, h200) == "two-shot"    # a 1024-row prefill chunk
    assert tiling.allreduce_seconds("two-shot", 1 << 23, 8, h200) < tiling.allreduce_seconds("one-shot", 1 << 23, 8, h200)

"""mpk-shard: the N ranks of a tensor-parallel decode step, run together by the graph
interpreter (their allreduces summing across them), equal one rank over several
steps, on Qwen3 and Llama shapes: KV heads split over the ranks, and replicated
where there are fewer than ranks (qwen3-tiny at tp=4, llama3-tiny at tp=2 and 4)."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir

from mpk import dialects as mpk
from mpk import pipeline
from mpk.interp.graph import run_graph, run_graph_ranks, shard_state
from mpk.models.config import PRESETS

from taskgraph_graphs import decoder_graph, graph_arrays

BATCH, MAX_SEQ, STEPS = 2, 16, 3


def _ranks(graph, tp: int) -> list[ir.Module]:
    modules = []
    for rank in range(tp):
        module = ir.Module.parse(str(graph))
        pipeline.run(module, f"builtin.module(mpk-shard{{tp={tp} rank={rank}}},mpk-verify)")
        modules.append(module)
    return modules


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
        modules = _ranks(graph, tp)
        state = {k: v.copy() for k, v in caches.items()}
        states = [shard_state(m, caches) for m in modules]
        tokens = rng.integers(0, PRESETS[preset].vocab_size, BATCH).astype(np.int32)
        positions = pos0.astype(np.int32)
        for step in range(STEPS):
            want_tokens, want_logits = run_graph(graph, weights, tokens, positions, state=state)
            ranks = run_graph_ranks(modules, weights, tokens, positions, states=states)
            for rank, (got_tokens, got_logits) in enumerate(ranks):
                error = np.abs(got_logits - want_logits).max() / np.abs(want_logits).max()
                assert error < 1e-5, (step, rank, error)
                np.testing.assert_array_equal(got_tokens, want_tokens)
            tokens, positions = want_tokens, positions + 1
        # Each rank's caches hold its KV heads of the one-rank caches, rows written by every step.
        for module, local in zip(modules, states):
            np.testing.assert_allclose(local["model.layers.0.self_attn.k_cache"],
                                       shard_state(module, state)["model.layers.0.self_attn.k_cache"],
                                       rtol=1e-5, atol=1e-6)


def test_a_failing_rank_stops_the_others():
    with mpk.context():
        graph = decoder_graph(PRESETS["qwen3-tiny"], BATCH, MAX_SEQ)
        modules = _ranks(graph, 2)
        arrays = graph_arrays(graph, 0, np.zeros(BATCH, int))
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        states = [shard_state(m, arrays) for m in modules]
        del states[1]["model.layers.0.self_attn.k_cache"]
        with pytest.raises(KeyError, match="k_cache"):
            run_graph_ranks(modules, weights, np.zeros(BATCH, np.int32), np.zeros(BATCH, np.int32),
                            states=states)

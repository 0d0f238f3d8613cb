"""The task graph end to end on the CPU: graph IR -> tasks -> events (-> schedule,
memory plan), executed tile by tile in random valid orders, equals the graph
interpreter over several decode steps; a missing dependency is caught."""

from __future__ import annotations

import numpy as np
import pytest
from mlir import ir

from mpk import dialects as mpk
from mpk import pipeline
from mpk.interp.graph import run_graph
from mpk.interp.tasks import TaskInterpreterError, run_tasks
from mpk.models.config import PRESETS

from taskgraph_graphs import FUSIONS, decoder_graph, graph_arrays

BATCH, MAX_SEQ, STEPS = 2, 16, 3
EVENTS = f"builtin.module({FUSIONS},mpk-partition,mpk-build-events{{report=false}})"
FULL = f"builtin.module({FUSIONS},mpk-partition,mpk-build-events{{report=false}},mpk-schedule{{report=false}}," \
       "mpk-plan-memory{report=false})"


def _setup(preset: str, seed: int = 0):
    graph = decoder_graph(PRESETS[preset], BATCH, MAX_SEQ)
    rng = np.random.default_rng(seed + 100)
    pos0 = rng.integers(0, MAX_SEQ - STEPS, BATCH)
    tokens = rng.integers(0, PRESETS[preset].vocab_size, BATCH)
    arrays = graph_arrays(graph, seed, pos0)
    weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
    caches = {k: v for k, v in arrays.items() if k.endswith("_cache")}
    return graph, weights, caches, tokens, pos0


def _graph_reference(graph, weights, caches, tokens, pos0):
    state = {k: v.copy() for k, v in caches.items()}
    steps, positions = [], pos0.copy()
    for _ in range(STEPS):
        next_tokens, logits = run_graph(graph, weights, tokens.astype(np.int32),
                                        positions.astype(np.int32), state=state)
        steps.append((next_tokens, logits))
        tokens, positions = next_tokens, positions + 1
    return steps, state


def _lower(graph, pipeline_text):
    module = ir.Module.parse(str(graph))
    pipeline.run(module, pipeline_text)
    return module


@pytest.mark.parametrize("preset", ["qwen3-tiny", "llama3-tiny"])
@pytest.mark.parametrize("pipeline_text,queues", [(EVENTS, False), (FULL, False), (FULL, True)],
                         ids=["events", "planned", "queues"])
def test_tasks_match_graph(preset, pipeline_text, queues):
    with mpk.context():
        graph, weights, caches, tokens, pos0 = _setup(preset)
        reference, ref_state = _graph_reference(graph, weights, caches, tokens, pos0)
        module = _lower(graph, pipeline_text)
        for seed in range(2):            # two different random valid orders
            state = {k: v.copy() for k, v in caches.items()}
            out = run_tasks(module, weights, state, {"tokens": tokens, "positions": pos0},
                            steps=STEPS, seed=seed, queues=queues)
            for s, (next_tokens, logits) in enumerate(reference):
                np.testing.assert_allclose(out["logits"][s], logits, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(out["next_tokens"][s], next_tokens)
            np.testing.assert_array_equal(out["positions"], pos0 + STEPS)
            for name, cache in ref_state.items():
                np.testing.assert_allclose(state[name], cache, rtol=1e-5, atol=1e-5)


def _drop_wait(module, group_name):
    for op in module.body.operations:
        op = op.operation
        if op.name == "mpk.tasks" and ir.StringAttr(op.attributes["sym_name"]).value == group_name:
            del op.attributes["wait"]
            return
    raise KeyError(group_name)


def test_missing_dependency_names_both_tasks():
    with mpk.context():
        graph, weights, caches, tokens, pos0 = _setup("qwen3-tiny")
        module = _lower(graph, EVENTS)
        _drop_wait(module, "model.layers.0.self_attn.o_proj")
        with pytest.raises(TaskInterpreterError, match=r"'model.layers.0.self_attn.o_proj'\[0, \d+\].*"
                                                      r"reads '@model.layers.0.self_attn.attention.out'.*"
                                                      r"producer is 'model.layers.0.self_attn.attention'"):
            run_tasks(module, weights, dict(caches), {"tokens": tokens, "positions": pos0}, steps=2, seed=0)


def test_missing_cache_dependency_is_caught():
    with mpk.context():
        graph, weights, caches, tokens, pos0 = _setup("qwen3-tiny")
        module = _lower(graph, EVENTS)
        _drop_wait(module, "model.layers.1.self_attn.attention")
        with pytest.raises(TaskInterpreterError, match="attention.*before"):
            run_tasks(module, weights, dict(caches), {"tokens": tokens, "positions": pos0}, steps=2, seed=1)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("preset", ["qwen3-tiny", "llama3-tiny"])
def test_flagged_events_order_the_same_tasks(preset, batch):
    """mpk-data-flags takes the counters off events, not the events off the graph: the
    interpreter runs the flagged module in random valid orders to the same results,
    and it did flag the linears' and the attention's activations and their events
    (batch 2: with max-rows=2, as `--data-flags 2` compiles it)."""
    with mpk.context():
        graph = decoder_graph(PRESETS[preset], batch, MAX_SEQ, dtype="bf16")
        rng = np.random.default_rng(7)
        pos0 = rng.integers(0, MAX_SEQ - STEPS, batch)
        tokens = rng.integers(0, PRESETS[preset].vocab_size, batch)
        arrays = graph_arrays(graph, 0, pos0)
        weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
        caches = {k: v for k, v in arrays.items() if k.endswith("_cache")}
        outs = []
        # Split-KV attention with the rope in it (as compiled for the GPU): its q, k, v and output flagged too.
        split = FULL.replace("mpk-partition", "mpk-partition{min-split-rows=4}")
        for text in (split, split.replace("mpk-build-events{report=false}",
                                          f"mpk-build-events{{report=false}},mpk-data-flags{{report=false "
                                          f"max-rows={batch}}}")):
            module = _lower(graph, text)
            state = {k: v.copy() for k, v in caches.items()}
            outs.append(run_tasks(module, weights, state, {"tokens": tokens, "positions": pos0},
                                  steps=STEPS, seed=3, queues=True))
        flagged = [op for op in module.body.operations if "flagged" in op.attributes]
        assert {op.name for op in flagged} == {"mpk.buffer", "mpk.event"}
        events = {ir.StringAttr(op.attributes["sym_name"]).value for op in flagged if op.name == "mpk.event"}
        # Layer 1's five hops (layer 0's q/k/v and o_proj read the embedding's output).
        assert {f"ready.model.layers.1.{hop}" for hop in ("self_attn.q_proj", "self_attn.attention",
                                                          "self_attn.o_proj", "mlp.gate_up", "mlp.down_proj")} <= events
        for s in range(STEPS):
            np.testing.assert_array_equal(outs[1]["logits"][s], outs[0]["logits"][s])
            np.testing.assert_array_equal(outs[1]["next_tokens"][s], outs[0]["next_tokens"][s])

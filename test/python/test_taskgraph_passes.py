"""Pieces of the task-graph passes: affine map fitting, connected components,
the event and memory invariants on a tiny decoder, a broken memory plan caught
by the interpreter, and qwen3-8b at real size through to scheduled task IR."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mlir import ir

from mpk import pipeline
from mpk.dialects.taskir import TaskGraph
from mpk.interp.tasks import TaskInterpreterError, run_tasks
from mpk.lowering.mpk_build_events import _eval_map, connected_components, fit_affine_map
from mpk.models.config import PRESETS

from taskgraph_graphs import FUSIONS, decoder_graph, graph_arrays

FULL = f"builtin.module({FUSIONS},mpk-partition,mpk-build-events{{report=false}},mpk-schedule{{report=false}}," \
       "mpk-plan-memory{report=false})"


@pytest.mark.parametrize("seed", range(20))
def test_fit_affine_map_recovers_tilings(ctx, seed):
    rng = np.random.default_rng(seed)
    grid = (int(rng.integers(1, 4)), int(rng.integers(1, 40)))
    a, m, s, c = (int(rng.integers(1, 5)), int(rng.integers(1, 6)), int(rng.integers(1, 4)),
                  int(rng.integers(0, 3)))
    d0, d1 = np.indices(grid).reshape(2, -1)
    values = c + s * ((d1 // a) % m) + int(rng.integers(0, 3)) * d0
    text = fit_affine_map(values, grid)
    assert text is not None
    np.testing.assert_array_equal(_eval_map(text, grid), values)


def test_fit_affine_map_refuses_a_permutation(ctx):
    assert fit_affine_map(np.array([0, 2, 1, 3]), (1, 4)) is None


@pytest.mark.parametrize("seed", range(5))
def test_connected_components_match_a_search(seed):
    rng = np.random.default_rng(seed)
    n = 200
    u, v = rng.integers(0, n, 150), rng.integers(0, n, 150)
    label = connected_components(n, u, v)
    neighbours = [[] for _ in range(n)]
    for a, b in zip(u, v):
        neighbours[a].append(b)
        neighbours[b].append(a)
    for start in range(n):
        seen, todo = {start}, [start]
        while todo:
            for w in neighbours[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        assert label[start] == min(seen)


def _tiny_module(ctx, text=FULL, batch=2):
    module = ir.Module.parse(str(decoder_graph(PRESETS["qwen3-tiny"], batch, 16)))
    pipeline.run(module, text)
    return module


def test_every_task_waits_and_triggers_once_with_exact_counts(ctx):
    graph = TaskGraph.from_module(_tiny_module(ctx))
    counts = {name: np.zeros(e.size, np.int64) for name, e in graph.events.items()}
    for g in graph.groups:
        assert g.wait is not None and g.trigger is not None     # one event each way, nothing left dangling
        np.add.at(counts[g.trigger.event], g.trigger.indices(g.grid_indices()), 1)
    for name, e in graph.events.items():
        assert (counts[name] == e.triggers).all(), name
    queued = np.sort(np.concatenate(graph.schedule))
    np.testing.assert_array_equal(queued, np.arange(graph.num_tasks))


def test_attention_waits_per_kv_head(ctx):
    """The rope_append task of a sequence's KV head group (its q heads, the k and v
    appends): one counter per sequence and KV head, no barrier."""
    graph = TaskGraph.from_module(_tiny_module(ctx, batch=2))
    attention = next(g for g in graph.groups if g.kind == "attention")
    event = graph.events[attention.wait.event]
    config = PRESETS["qwen3-tiny"]
    assert event.size == 2 * config.num_kv_heads
    assert event.triggers == 1


def _set_offset(module, name, offset):
    for op in module.body.operations:
        op = op.operation
        if op.name == "mpk.buffer" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            op.attributes["offset"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), offset)
            return
    raise KeyError(name)


def test_overlapping_live_buffers_are_caught(ctx):
    module = _tiny_module(ctx)
    graph = TaskGraph.from_module(module)
    q = graph.buffers["model.layers.0.self_attn.q_proj.out"]
    _set_offset(module, "model.layers.0.self_attn.k_proj.out", q.offset)   # q and k are live together
    arrays = graph_arrays(decoder_graph(PRESETS["qwen3-tiny"], 2, 16), 0, np.array([3, 5]))
    weights = {k: v for k, v in arrays.items() if not k.endswith("_cache")}
    caught = 0
    for seed in range(4):
        caches = {k: v.copy() for k, v in arrays.items() if k.endswith("_cache")}
        try:
            run_tasks(module, weights, caches, {"tokens": np.array([1, 2]), "positions": np.array([3, 5])},
                      steps=2, seed=seed)
        except TaskInterpreterError as e:
            assert "overwrites" in str(e) and "still has to read" in str(e)
            caught += 1
    assert caught >= 3


@pytest.mark.slow
def test_qwen3_8b_schedules_within_a_minute(ctx, capfd):
    start = time.perf_counter()
    module = decoder_graph(PRESETS["qwen3-8b"], 1, 4096, "bf16")
    pipeline.run(module, f"builtin.module({FUSIONS},mpk-partition,mpk-build-events,mpk-schedule,mpk-plan-memory,"
                         "mpk-stats)")
    seconds = time.perf_counter() - start
    report = capfd.readouterr().err
    print(report, f"graph IR -> scheduled task IR: {seconds:.1f} s")
    assert seconds < 60
    assert "mpk-stats: workspace" in report


def test_analyses_are_kept_until_a_pass_changes_the_module(ctx, monkeypatch):
    module = _tiny_module(ctx)
    built = []
    original = TaskGraph.from_module.__func__
    monkeypatch.setattr(TaskGraph, "from_module", classmethod(lambda cls, m: built.append(1) or original(cls, m)))
    pipeline.run(module, "builtin.module(mpk-verify,mpk-stats,mpk-verify)")
    assert len(built) == 1                  # read-only passes share one view
    built.clear()
    pipeline.run(module, "builtin.module(mpk-verify,mpk-plan-memory{report=false},mpk-verify)")
    assert len(built) == 2                  # plan-memory rewrote the offsets: a new view after it
    built.clear()
    pipeline.run(module, "builtin.module(mpk-verify)")
    assert len(built) == 1                  # nothing is kept between pipeline runs

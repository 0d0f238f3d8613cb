"""What a bundle's plan tells the benchmark, on the tiny presets compiled for
132 SMs with a cache long enough that the attention splits over SMs (as
bench.build compiles the real ones): the dependent stages of a step
(TaskGraph.dependent_stages, which mpk-stats prints) and the bytes a step
reads (mpk.runtime.bandwidth.step_bytes), against a count from the model
config alone; and the event hops that mpk.runtime.trace finds in a simulated
launch of the bundle's tables, against the hop the simulation put in."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("mlir")
pytest.importorskip("torch")

BATCH, MAX_SEQ = 2, 1024


@pytest.fixture(scope="module", params=["qwen3-tiny", "llama3-tiny"])   # tied and untied embeddings
def compiled(request, tmp_path_factory):
    import mpk
    bundle = mpk.compile(request.param, batch=BATCH, max_seq=MAX_SEQ, num_sms=132, arch="sm_90",
                         prefill_chunk=0, path=tmp_path_factory.mktemp(request.param) / "model.mpk")
    return request.param, bundle


def test_dependent_stages(compiled):
    _, bundle = compiled
    # A layer's groups, one after another: q/k/v (side by side), the split attention
    # (norms, rope and cache append in its tasks; its last split merges), o_proj, gate/up
    # (side by side), down: 5. A step adds the embedding, the LM head and the sampler.
    assert bundle.plan["dependent_stages"] == {"per_step": 13, "in_layers": 10, "layers": 2, "per_layer": 5.0}


@pytest.mark.parametrize("position", [0, 99, MAX_SEQ + 5])    # the last: every cache row, no more
def test_step_bytes_count_weights_and_kv_rows(compiled, position):
    from mpk.models import preset, weight_shapes
    from mpk.runtime.bandwidth import StepBytes, step_bytes
    name, bundle = compiled
    config = preset(name)
    shapes = weight_shapes(config)
    weights = sum(2 * math.prod(shape) for shape in shapes.values())     # bf16
    if not config.tie_word_embeddings:     # the table is only gathered: one row per sequence
        weights -= 2 * (math.prod(shapes["model.embed_tokens.weight"]) - BATCH * config.hidden_size)
    rows = min(position + 1, MAX_SEQ)
    kv = 2 * config.num_layers * BATCH * rows * config.num_kv_heads * config.head_dim * 2
    assert step_bytes(bundle.plan, position) == StepBytes(weights, kv)


def simulate_launch(tables: dict, steps: int, hop_ns: int, seed: int = 0) -> np.ndarray:
    """Profile records [steps, tasks, 2] of a launch as the runtime runs it: every worker
    its queue once a step, a task starting when its worker is free and `hop_ns` after
    its wait counter's last trigger (of the same step; of the step before when primed)."""
    from mpk.runtime.tables import task_field
    rng = np.random.default_rng(seed)
    wait, trigger = (tables["tasks"][:, task_field(f)] for f in ("wait_slot", "trigger_slot"))
    primed, needed = tables["event_initial"] > 0, tables["event_triggers"]
    offsets, queued = tables["queue_offsets"], tables["queue_tasks"]
    records = np.zeros((steps, len(wait), 2), np.int64)
    triggered = np.zeros((steps, len(needed)), np.int64)       # triggers so far
    last = np.zeros((steps, len(needed)), np.int64)            # the latest one's time
    runs = [[(s, t) for s in range(steps) for t in queued[offsets[w]:offsets[w + 1]]]
            for w in range(len(offsets) - 1)]
    free, done = [0] * len(runs), [0] * len(runs)
    while any(d < len(r) for d, r in zip(done, runs)):
        for w, run in enumerate(runs):
            while done[w] < len(run):
                s, t = run[done[w]]
                slot, start = wait[t], free[w]
                if slot >= 0:
                    step = s - 1 if primed[slot] else s
                    if step >= 0:
                        if triggered[step, slot] < needed[slot]:
                            break                               # not ready: another worker goes on
                        start = max(start, last[step, slot] + hop_ns)
                end = start + int(rng.integers(50, 500))
                records[s, t] = start, end
                if trigger[t] >= 0:
                    triggered[s, trigger[t]] += 1
                    last[s, trigger[t]] = max(last[s, trigger[t]], end)
                free[w], done[w] = end, done[w] + 1
    return records


def test_event_hops_of_a_simulated_launch(compiled):
    from mpk.runtime import trace
    _, bundle = compiled
    records = simulate_launch(bundle.tables, steps=3, hop_ns=700)
    hops = trace.event_hops(bundle.plan, bundle.tables, records)
    assert hops.size > bundle.plan["dependent_stages"]["per_step"] and (hops == 700).all()

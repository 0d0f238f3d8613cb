"""The profile trace writer (mpk.runtime.trace) on synthetic profile records:
valid trace-event JSON, one track per worker holding exactly that worker's
tasks, non-negative durations, the per-kind summary's arithmetic, and the
event hops of the tasks that waited."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mpk.runtime import trace

# Two groups on three workers: 4 linear tasks (layers.0.q_proj), 2 rmsnorm tasks.
PLAN = {"kernel": {"name": "decode_step"},
        "groups": [{"name": "model.layers.0.self_attn.q_proj", "kind": "linear", "first_task": 0, "num_tasks": 4},
                   {"name": "model.norm", "kind": "rmsnorm", "first_task": 4, "num_tasks": 2}]}
TABLES = {"queue_offsets": np.array([0, 3, 5, 6], np.int32),
          "queue_tasks": np.array([0, 3, 4, 1, 5, 2], np.int32)}
WORKER_OF = {0: 0, 3: 0, 4: 0, 1: 1, 5: 1, 2: 2}


def records(steps: int = 2, seed: int = 0) -> np.ndarray:
    """[steps, 6, 2] globaltimer ns: every worker runs its queue back to back with random gaps."""
    rng = np.random.default_rng(seed)
    out = np.zeros((steps, 6, 2), np.uint64)
    clock = np.full(3, 1_700_000_000_000_000_000, np.uint64)   # globaltimer values are large
    offsets, queue = TABLES["queue_offsets"], TABLES["queue_tasks"]
    for step in range(steps):
        for w in range(3):
            for task in queue[offsets[w]:offsets[w + 1]]:
                clock[w] += np.uint64(rng.integers(10, 500))
                out[step, task, 0] = clock[w]
                clock[w] += np.uint64(rng.integers(1_000, 5_000))
                out[step, task, 1] = clock[w]
    return out


def test_trace_file_schema(tmp_path):
    recs = records()
    path = trace.write_trace(tmp_path / "t.json", PLAN, TABLES, recs, device="synthetic")
    document = json.loads(path.read_text())
    assert document["otherData"]["device"] == "synthetic"
    events = document["traceEvents"]
    tasks = [e for e in events if e["ph"] == "X" and e.get("cat") != "step"]
    assert len(tasks) == recs.shape[0] * 6
    for e in tasks:
        assert {"name", "ts", "dur", "pid", "tid", "args"} <= set(e)
        assert e["dur"] >= 0 and e["ts"] >= 0
        assert e["tid"] == WORKER_OF[e["args"]["global_task"]]              # on its worker's track
        group = PLAN["groups"][e["args"]["global_task"] >= 4]
        assert e["name"] == f"{group['name']}[{e['args']['task']}]"
        assert e["args"]["kind"] == group["kind"] == e["cat"]
        start, end = recs[e["args"]["step"], e["args"]["global_task"]].astype(np.int64) - recs[..., 0].min().astype(np.int64)
        assert e["ts"] == pytest.approx(start / 1e3) and e["dur"] == pytest.approx((end - start) / 1e3)
    gzipped = trace.write_trace(tmp_path / "t.json.gz", PLAN, TABLES, recs, device="synthetic")
    assert json.loads(gzip.decompress(gzipped.read_bytes())) == document
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {0: "worker 0", 1: "worker 1", 2: "worker 2", 3: "steps"}
    steps = [e for e in events if e.get("cat") == "step"]
    assert [e["args"]["step"] for e in steps] == [0, 1] and all(e["tid"] == 3 for e in steps)
    for w in range(3):   # a worker's slices do not overlap
        mine = sorted((e["ts"], e["ts"] + e["dur"]) for e in tasks if e["tid"] == w)
        assert all(a[1] <= b[0] for a, b in zip(mine, mine[1:]))


def test_summary_per_kind():
    recs = records(steps=3, seed=1)
    s = trace.summarize(PLAN, TABLES, recs)
    busy = (recs[..., 1] - recs[..., 0]).astype(np.int64).mean(axis=0) / 1e3
    by_kind = {k.kind: k for k in s.kinds}
    assert by_kind["linear"].count == 4 and by_kind["rmsnorm"].count == 2
    assert by_kind["linear"].total_us == pytest.approx(busy[:4].sum())
    assert by_kind["rmsnorm"].mean_us == pytest.approx(busy[4:].mean())
    span = (recs[..., 1].max(axis=1) - recs[..., 0].min(axis=1)).astype(np.int64) / 1e3
    assert s.step_us == pytest.approx(span)
    launch = float(recs[..., 1].max() - recs[..., 0].min()) / 1e3
    assert s.launch_us == pytest.approx(launch)
    assert s.busy == pytest.approx(busy.sum() / (3 * launch / 3))
    assert 0 < s.busy <= 1
    text = trace.format_summary(s)
    assert "linear" in text and "rmsnorm" in text and "(waiting)" in text and "model.norm" in text


def test_event_hops():
    """Two workers, two steps: a and b (worker 0: a, c; worker 1: b) trigger counter 0,
    which c waits on; c triggers the primed counter 1 (`step`), which a and b wait
    on from the next step on. Times in ns, chosen so the answer is known."""
    from mpk.runtime import tables as layout
    plan = {"groups": [{"name": "ab", "kind": "linear", "first_task": 0, "num_tasks": 2},
                       {"name": "c", "kind": "linear", "first_task": 2, "num_tasks": 1}]}
    tasks = np.zeros((3, len(layout.TASK_FIELDS)), np.int32)
    tasks[:, layout.task_field("wait_slot")] = [1, 1, 0]
    tasks[:, layout.task_field("trigger_slot")] = [0, 0, 1]
    tables = {"tasks": tasks, "queue_offsets": np.array([0, 2, 3]), "queue_tasks": np.array([0, 2, 1]),
              "event_initial": np.array([0, 1], np.uint32)}
    records = np.array([[[100, 200], [100, 300], [350, 400]],       # step 0: c waited for b (300) until 350
                        [[430, 500], [470, 600], [620, 700]]])      # step 1: a did not wait (its worker ran
    #                                           c until 400, c's trigger), b did (since 300), c did (for b's 600)
    np.testing.assert_array_equal(trace.previous_end(tables, records),
                                  [[-1, -1, 200], [400, 300, 500]])
    np.testing.assert_array_equal(trace.event_hops(plan, tables, records), [50, 70, 20])


def test_stages():
    """Two layers of q (2 tasks) then o (1 task), two steps; layer 0's q waits on the
    primed `step` event that layer 1's o triggers, so it is timed in step 1 only.
    Times in µs, chosen so the answer is known."""
    chain = [("model.layers.0.q", 2, "step", "r0o"), ("model.layers.0.o", 1, "r0o", "r1q"),
             ("model.layers.1.q", 2, "r1q", "r1o"), ("model.layers.1.o", 1, "r1o", "step")]
    first = np.cumsum([0] + [n for _, n, _, _ in chain])
    plan = {"groups": [{"name": name, "kind": "linear", "first_task": int(f), "num_tasks": n, "wait": w, "trigger": t}
                       for (name, n, w, t), f in zip(chain, first)],
            "events": [{"name": e, "primed": e == "step"} for e in ("step", "r0o", "r1q", "r1o")]}
    us = np.array([[[0, 10], [0, 12], [13, 20], [21, 30], [22, 31], [32, 40]],
                   [[41, 50], [43, 52], [53, 60], [61, 70], [62, 72], [73, 80]]])
    q, o = trace.stages(plan, us * 1000 + 1_700_000_000_000_000_000)
    assert (q.name, q.count, q.tasks, o.name, o.count, o.tasks) == \
        ("model.layers.*.q", 2, 2, "model.layers.*.o", 2, 1)
    # o: ready at its layer's q's last end (12, 52 | 31, 72).
    assert [o.period_us, o.first_start_us, o.median_start_us, o.task_us, o.slowest_us, o.tail_us] == \
        pytest.approx([(8 + 8.5) / 2, 1, 1, (7 + 7.5) / 2, (7 + 7.5) / 2, 0])
    # q: layer 1 ready at layer 0's o (20, 60); layer 0 at the previous step's last o (40), step 1 only.
    assert [q.period_us, q.first_start_us, q.median_start_us, q.task_us, q.slowest_us, q.tail_us] == \
        pytest.approx([(11.5 + 12) / 2, 1, (1.5 + 2) / 2, (9.25 + 9) / 2, (9.5 + 9) / 2, (0.75 + 1) / 2])
    assert q.weight_bytes == o.weight_bytes == 0                       # the plan lists no weights
    text = trace.format_stages([q, o])
    assert "model.layers.*.q" in text and text.endswith("the periods add up to 40.0 µs a step")
    assert trace.stages(PLAN, records()) == [] and trace.format_stages([]) == ""   # no events: no stages


def test_stage_weight_stream():
    """A stage's weight bytes per task: every weight its groups read whole (two
    weights of a gate_up), none for an embedding's gathered rows; the printed rate
    is those bytes over the median task."""
    plan = {"groups": [{"name": "embed", "kind": "embedding", "first_task": 0, "num_tasks": 1,
                        "inputs": ["tokens", "table"], "trigger": "e0"},
                       {"name": "model.layers.0.gate_up", "kind": "gate_up", "first_task": 1, "num_tasks": 4,
                        "inputs": ["x", "gate", "up"], "wait": "e0", "trigger": "e1"},
                       {"name": "model.layers.0.lookup", "kind": "embedding", "first_task": 5, "num_tasks": 1,
                        "inputs": ["table"], "wait": "e1"}],
            "buffers": [{"name": "table", "space": "weight", "nbytes": 1 << 30},
                        {"name": "gate", "space": "weight", "nbytes": 4000},
                        {"name": "up", "space": "weight", "nbytes": 4000},
                        {"name": "x", "space": "workspace", "nbytes": 64}],
            "events": [{"name": "e0", "primed": False}, {"name": "e1", "primed": False}]}
    us = np.array([[[0, 1], [1, 3], [1, 3], [1, 4], [2, 4], [4, 5]]])
    gate_up, gathered = trace.stages(plan, us * 1000)
    assert gate_up.weight_bytes == 2000 and gate_up.task_us == 2.0
    assert gate_up.task_bytes_per_us == 1000 and gathered.weight_bytes == 0
    line = trace.format_stages([gate_up, gathered]).splitlines()[1]
    assert line.split()[-2:] == ["2.0", "1.0"]                      # KB a task, GB/s


def test_stage_names_find_layers_as_taskir_does():
    from mpk.dialects.taskir import LAYER_NAME
    for name in ("model.layers.12.mlp.gate_up", "layers.3.attention", "model.norm", "lm_head", "xlayers.1.q"):
        assert bool(trace.LAYER.search(name)) == bool(LAYER_NAME.search(name)), name


def test_records_that_do_not_fit_the_plan():
    with pytest.raises(trace.TraceError, match=r"\[steps, 6, 2\] was expected"):
        trace.summarize(PLAN, TABLES, np.zeros((2, 5, 2), np.uint64))
    bad = records()
    bad[0, 2] = bad[0, 2, ::-1]
    with pytest.raises(trace.TraceError, match="ends before it starts"):
        trace.trace_events(PLAN, TABLES, bad)
    with pytest.raises(trace.TraceError, match="in no worker's queue"):
        trace.Tasks.of(PLAN, {"queue_offsets": np.array([0, 5]), "queue_tasks": np.arange(5)})


def test_mpk_run_profile_output(tmp_path, capsys):
    """`mpk run --profile TRACE.json`'s printing and writing, with a stand-in for the GPU session."""
    from types import SimpleNamespace

    from mpk.commands.run import _profile
    session = SimpleNamespace(plan=PLAN, bundle=SimpleNamespace(tables=TABLES, path=tmp_path / "b.mpk"),
                              device_name="Synthetic GPU", num_workers=3, profile_ns=lambda: records(steps=4))
    _profile(session, str(tmp_path / "t.json"))
    out = capsys.readouterr().out
    assert out.startswith("profile: 4 steps in ") and "  linear " in out
    assert out.rstrip().endswith("4 steps x 6 tasks on 3 worker tracks (open it in ui.perfetto.dev)")
    document = json.loads((tmp_path / "t.json").read_text())
    assert document["otherData"]["device"] == "Synthetic GPU"
    _profile(session, True)                          # a bare --profile: the table only
    assert "wrote" not in capsys.readouterr().out


def test_mpk_run_profile_needs_the_gpu(capsys):
    from mpk.cli import main
    assert main(["run", "no-bundle", "--backend", "interp", "--profile", "t.json"]) == 1
    assert capsys.readouterr().err == ("mpk run: error: --profile reads the persistent kernel's timers: "
                                       "it needs --backend gpu\n")

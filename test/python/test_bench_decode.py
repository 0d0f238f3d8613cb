"""bench.decode's arithmetic, on the CPU: the limit of a step (floor + per-stage
overhead x dependent stages) and the printed table, with and without it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # bench/ is not an installed package
from bench import decode  # noqa: E402


def test_stage_limit():
    # 38 stages of 2.5 us over a 1.2 ms floor.
    assert decode.stage_limit_ms(1.2, 2.5, 38) == pytest.approx(1.2 + 0.095)
    assert decode.stage_limit_ms(1.2, 2.5, 0) == 1.2


def _row(model: str, limit_ms: float | None) -> dict:
    mpk = {"ms": 1.5, "ratio_to_floor": 1.25}
    if limit_ms:
        mpk["ratio_to_limit"] = 1.5 / limit_ms
    return {"model": model, "batch": 1, "ctx": 1024, "floor_ms": 1.2, "limit_ms": limit_ms,
            "dependent_stages": 38 if limit_ms else None, "check": {},
            "systems": {"mpk": mpk, "compiled_graph": {"ms": 1.8, "ratio_to_floor": 1.5}},
            "mpk_speedup": {"compiled_graph": 1.2}}


def test_table_shows_the_limit_where_measured():
    limit = decode.stage_limit_ms(1.2, 2.5, 38)
    result = {"card": "Synthetic GPU", "read_bandwidth_bytes_per_s": 4.0e12, "hop": {"stage_overhead_us": 2.5},
              "results": [_row("with-hop", limit), _row("old-bundle", None)]}
    lines = decode.table(result).splitlines()
    assert "limit = floor + 2.50 us stage overhead x dependent stages" in lines[0]
    header = lines[1].split()
    assert header[:8] == ["model", "b", "ctx", "floor", "limit", "mpk", "/limit", "eager"]
    assert lines[2].split()[3:8] == ["1.200", f"{limit:.3f}", "1.500", "(1.25)", f"{1.5 / limit:.2f}"]
    assert lines[3].split()[3:8] == ["1.200", "-", "1.500", "(1.25)", "-"]
    assert "limit" in decode._line(result["results"][0]) and "limit" not in decode._line(result["results"][1])
    del result["hop"]                     # a result file from before the probe
    assert "stage overhead" not in decode.table(result)


def test_weight_stream_picks_the_stage_with_most_bytes():
    """The stage that streams the most weight bytes a step, its median task against one
    SM's share of the bandwidth and its period against the whole card."""
    stage = lambda name, count, tasks, weight_bytes, task_us, period_us: {
        "name": name, "count": count, "tasks": tasks, "weight_bytes": weight_bytes,
        "task_us": task_us, "period_us": period_us}
    profile = {"workers": 100, "stages": [stage("attention", 28, 128, 0, 5.0, 6.0),
                                          stage("o_proj", 28, 100, 10_000, 1.0, 2.0),
                                          stage("gate_up", 28, 100, 30_000, 1.5, 2.0)]}
    stream = decode.weight_stream(profile, bandwidth=3.0e12)
    assert stream["stage"] == "gate_up" and stream["weight_bytes_per_task"] == 30_000
    assert stream["task_fraction"] == pytest.approx(30_000 / 1.5e-6 / 3.0e10)    # 2/3 of an SM's 30 GB/s
    assert stream["stage_fraction"] == pytest.approx(100 * 30_000 / 2.0e-6 / 3.0e12)
    assert decode.weight_stream({"workers": 100, "stages": [profile["stages"][0]]}, 3.0e12) is None


def test_rows_of_a_split_run_read_in_model_order():
    rows = [dict(_row(m, None), batch=b, ctx=c) for m, b, c in
            (("qwen3-8b", 1, 1024), ("unknown", 1, 1024), ("qwen3-0.6b", 8, 1024), ("qwen3-0.6b", 1, 4096),
             ("qwen3-0.6b", 1, 1024))]
    order = [(r["model"], r["batch"], r["ctx"]) for r in sorted(rows, key=decode._row_order)]
    assert order == [("qwen3-0.6b", 1, 1024), ("qwen3-0.6b", 1, 4096), ("qwen3-0.6b", 8, 1024),
                     ("qwen3-8b", 1, 1024), ("unknown", 1, 1024)]

"""The cost model's measured per-kind costs (lowering/tiling.py: KindCost, a Target per card)
and bench/calibrate.py's fit, on the CPU. No calibrated number is asserted: the tests check
that measured costs are used where they apply and nowhere else, and that the fit recovers
the parameters of synthetic task times."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mpk.lowering import tiling
from mpk.lowering.kinds import OpInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # bench/ is not an installed package
from bench import calibrate  # noqa: E402


def _linear(rows: int, n: int = 1024, k: int = 1024) -> OpInfo:
    return OpInfo("linear", [(rows, k), (n, k)], [2, 2], (rows, n), 2, (rows, n), {})


def _target(**kind_costs) -> tiling.Target:
    base = tiling.target("sm_90", 132, card="h100-sxm")
    return dataclasses.replace(base, kind_costs=tuple(kind_costs.items()))


def test_decode_path_keys_the_measured_costs():
    assert tiling.decode_path(_linear(1)) == "b1"
    assert tiling.decode_path(_linear(8)) == "b2-8"
    assert tiling.decode_path(_linear(2)) == "b2-8"
    assert tiling.decode_path(_linear(128)) is None          # a prefill GEMM tile: not calibrated
    b1, b8, any_path = tiling.KindCost(1e-6, 1e10), tiling.KindCost(2e-6, 2e10), tiling.KindCost(3e-6, 3e10)
    t = _target(**{"linear/b1": b1, "linear/b2-8": b8, "gate_up": any_path})
    assert t.kind_cost(_linear(1)) is b1
    assert t.kind_cost(_linear(4)) is b8
    assert t.kind_cost(_linear(256)) is None
    assert t.kind_cost(dataclasses.replace(_linear(1), kind="gate_up")) is any_path
    assert t.kind_cost(dataclasses.replace(_linear(1), kind="rmsnorm")) is None


def test_task_seconds_is_fixed_plus_bytes_at_the_measured_rate():
    cost = tiling.KindCost(2e-6, 25e9)
    t = _target(linear=cost)
    assert t.task_seconds(50_000, 0, cost=cost) == pytest.approx(2e-6 + 50_000 / 25e9)
    assert t.task_seconds(50_000, 0) == pytest.approx(t.task_overhead_s + 50_000 / t.sm_bytes_per_s)
    # task_cost prices a linear tile with its kind's measured cost: writes + x + weight rows.
    op = _linear(1)
    out = tiling.tile_boxes(op.domain, (1, 128), (1, 8))
    nbytes = 8 * 2 + 1024 * 2 + 8 * 1024 * 2
    assert tiling.task_cost(op, out, t) == pytest.approx(2e-6 + nbytes / 25e9)


def test_the_sm_share_of_a_target_keeps_the_measured_rates():
    """mpk-partition's `_share` scales num_sms and the device bandwidth together: a
    measured per-SM rate must not move with it."""
    cost = tiling.KindCost(2e-6, 25e9)
    t = _target(linear=cost)
    share = dataclasses.replace(t, num_sms=33, hbm_bytes_per_s=t.hbm_bytes_per_s * 33 / 132)
    op = _linear(1)
    out = tiling.tile_boxes(op.domain, (1, 32), (1, 32))
    assert tiling.task_cost(op, out, share) == pytest.approx(tiling.task_cost(op, out, t))


def test_cards_and_the_arch_default():
    h100 = tiling.target("sm_90", 132, card="h100-sxm")
    assert h100.kind_costs == () and h100.card
    default = tiling.target("sm_90", 132)
    assert default.card in {c["card"] for c in tiling.CARDS.values()} and default.source
    for key, cost in default.kind_costs:
        kind, _, path = key.partition("/")
        assert path in ("", "b1", "b2-8") and cost.fixed_s >= 0 and cost.sm_bytes_per_s > 0
    with pytest.raises(KeyError, match="unknown card"):
        tiling.target("sm_90", 132, card="tpu")
    with pytest.raises(KeyError, match="unknown arch"):
        tiling.target("sm_80", 132)


def test_choose_tile_keeps_one_wave_with_any_fixed_cost():
    """Waves x (fixed + bytes / rate): within one wave more tasks are faster, a second
    wave pays the fixed cost again; so the tile is about one wave at any fixed cost."""
    op = _linear(1, n=3072)
    for fixed in (0.5e-6, 3e-6, 10e-6):
        tile = tiling.choose_tile(op, _target(linear=tiling.KindCost(fixed, 30e9)))
        tasks = int(np.prod(tiling.grid_for(op.domain, tile)))
        assert 66 < tasks <= 132, (fixed, tile)


def test_prefill_tiles_do_not_see_the_decode_costs():
    gemm = _linear(1024, n=4096, k=4096)
    measured = _target(**{"linear/b1": tiling.KindCost(50e-6, 1e9), "linear/b2-8": tiling.KindCost(50e-6, 1e9)})
    assert tiling.choose_tile(gemm, measured) == tiling.choose_tile(gemm, _target())


# ------------------------------------------------------------------ bench/calibrate.py

def _result(groups_per_row) -> dict:
    rows = []
    for batch, groups in groups_per_row:
        rows.append({"model": "m", "batch": batch, "ctx": 1024, "target": {"num_sms": 132},
                     "step_us": 100.0, "tasks_per_sm": 1.0, "busy_fraction": 0.5, "groups": groups})
    return {"card": "Synthetic GPU", "ctx": [1024], "rows": rows}


def _group(name, kind, nbytes, us, tasks=4):
    return {"name": name, "kind": kind, "grid": [1, tasks], "tile": [1, 8], "rows": 1, "tasks": tasks,
            "us": [us] * tasks, "bytes": [nbytes] * tasks, "flops": [0] * tasks, "mma_flops": [0] * tasks,
            "model_us": [us * 1.5] * tasks}


def test_fit_recovers_fixed_cost_and_rate():
    fixed, rate = 2.5e-6, 30e9
    groups = [_group(f"layers.{i}.proj", "linear", b, (fixed + b / rate) * 1e6)
              for i, b in enumerate([20e3, 50e3, 200e3, 1e6])]
    groups += [_group("layers.0.gate_up", "gate_up", 100e3, 7.0), _group("layers.1.gate_up", "gate_up", 100e3, 7.2)]
    fits = calibrate.fit(_result([(1, groups)]))
    linear = fits[("linear", "b1")]
    assert linear["fixed_s"] == pytest.approx(fixed, rel=1e-3)     # times kept to 5 digits
    assert linear["sm_bytes_per_s"] == pytest.approx(rate, rel=1e-3)
    assert linear["rms_rel_err"] < 1e-4 and linear["model_rms_rel_err"] == pytest.approx(0.5, rel=1e-3)
    gate_up = fits[("gate_up", "b1")]                       # one size of task: a fixed cost alone
    assert gate_up["sm_bytes_per_s"] is None and gate_up["fixed_s"] == pytest.approx(7.1e-6)
    given = calibrate.fit(_result([(1, groups)]), {"linear/b1": 60e9})[("linear", "b1")]
    assert given["sm_bytes_per_s"] == 60e9 and given["fixed_s"] > fixed
    table = calibrate.fit_table(_result([(1, groups)]))
    assert "linear" in table and "gate_up" in table and "Synthetic GPU" in table


def test_fit_keys_the_decode_paths_by_batch():
    g = [_group("a", "linear", 50e3, 4.0), _group("b", "linear", 500e3, 20.0)]
    keys = set(calibrate.fit(_result([(1, g), (8, g)])))
    assert keys == {("linear", "b1"), ("linear", "b2-8")}


def test_grids_table_lists_changed_tiles(tmp_path):
    def plan(root, tile, tasks):
        d = tmp_path / root / "m-b1"
        d.mkdir(parents=True)
        groups = [{"name": f"model.layers.{i}.mlp.down_proj", "kind": "linear", "tile": [1, tile],
                   "grid": [1, tasks], "num_tasks": tasks} for i in range(2)]
        (d / "plan.json").write_text(json.dumps({"kernel": {"num_tasks": 2 * tasks, "num_workers": 132},
                                                 "dependent_stages": {"per_step": 2}, "groups": groups}))
        return tmp_path / root
    text = calibrate.grids_table([plan("old", 8, 128), plan("new", 16, 64)])
    assert "m-b1: 256 tasks, 1.9/SM, 2 stages | 128 tasks, 1.0/SM, 2 stages" in text
    assert "model.layers.*.mlp.down_proj (linear): tile [1, 8] x128 -> tile [1, 16] x64 [2 groups]" in text

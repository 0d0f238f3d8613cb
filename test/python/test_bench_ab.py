"""bench.ab runs each (model, batch) in a child process, on the CPU: a row whose
child raises or dies is recorded with its error and the rows after it still run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))    # bench/ is not an installed package
from bench import ab  # noqa: E402


def fake_compare(model_name, batch, ctx, roots, args):
    """Stands in for ab.compare in the child: 'dies' ends the process as a GPU fault
    would leave it, 'raises' fails as a logit check does."""
    if model_name == "dies":
        os._exit(3)
    if model_name == "raises":
        raise ValueError("logits off")
    return {"builds": {str(root): {"ms": 1.0 + i, "ms_p10": 1.0, "ms_p90": 2.0, "pid": os.getpid()}
                       for i, root in enumerate(roots)}}


def test_a_row_that_dies_or_raises_is_recorded_and_the_next_rows_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ab, "compare", fake_compare)
    monkeypatch.setattr(ab, "card_name", lambda: "synthetic")
    out = tmp_path / "ab.json"
    status = ab.main(["base", "new", "--models", "dies", "raises", "fine", "--batches", "8",
                      "--out", str(out)])
    assert status == 1
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["batch"]) for r in rows] == [("dies", 8), ("raises", 8), ("fine", 8)]
    assert "BrokenProcessPool" in rows[0]["error"]
    assert rows[1]["error"] == "ValueError: logits off"
    assert rows[2]["builds"]["new"]["ms"] == 2.0 and rows[2]["builds"]["base"]["pid"] != os.getpid()
    printed = capsys.readouterr().out
    assert "dies         b8 ctx 1024: BrokenProcessPool" in printed
    assert "fine         b8 ctx 1024: base: 1.000 ms (1.000-2.000, +0.0%)  new: 2.000 ms (1.000-2.000, +100.0%)" in printed


def test_all_rows_fine_exit_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "compare", fake_compare)
    monkeypatch.setattr(ab, "card_name", lambda: "synthetic")
    assert ab.main(["base", "--models", "fine", "--out", str(tmp_path / "ab.json")]) == 0

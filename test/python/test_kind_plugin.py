"""A task kind in one file (kind_fixtures/gelu_mul.py) goes through the whole
compiler: its graph op parses and verifies, mpk-partition makes its group,
events, schedule and memory plan take it, the task interpreter runs it (in
random orders and on the queues) equal to the graph interpreter, and
mpk-lower-tasks lowers it to PTX; no file of mpk names it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlir import ir

from mpk import dialects as mpk
from mpk import pipeline
from mpk.interp.graph import run_graph
from mpk.interp.tasks import run_tasks
from mpk.lowering import kinds
from mpk.lowering.mpk_lower_tasks import lower_to_ptx

FIXTURE = Path(__file__).with_name("kind_fixtures") / "gelu_mul.py"
REPO = Path(__file__).resolve().parents[2]
FULL = "builtin.module(mpk-partition,mpk-build-events{report=false},mpk-schedule{report=false}," \
       "mpk-plan-memory{report=false},mpk-verify)"
GRAPH = """
func.func @decode_step(%x: tensor<2x256xbf16>) -> tensor<2x128xbf16> {
  %wg = "mpk.weight"() {name = "gate.weight"} : () -> tensor<512x256xbf16>
  %wu = "mpk.weight"() {name = "up.weight"} : () -> tensor<512x256xbf16>
  %wd = "mpk.weight"() {name = "down.weight"} : () -> tensor<128x512xbf16>
  %g = "mpk.linear"(%x, %wg) : (tensor<2x256xbf16>, tensor<512x256xbf16>) -> tensor<2x512xbf16>
  %u = "mpk.linear"(%x, %wu) : (tensor<2x256xbf16>, tensor<512x256xbf16>) -> tensor<2x512xbf16>
  %a = "mpk.gelu_mul"(%g, %u) : (tensor<2x512xbf16>, tensor<2x512xbf16>) -> tensor<2x512xbf16>
  %d = "mpk.linear"(%a, %wd) : (tensor<2x512xbf16>, tensor<128x512xbf16>) -> tensor<2x128xbf16>
  return %d : tensor<2x128xbf16>
}
"""


@pytest.fixture
def gelu_mul():
    """The fixture kind, registered for one test, then gone."""
    kinds.registry()
    kinds.load_module(str(FIXTURE))
    yield kinds.get("gelu_mul")
    kinds._KINDS.pop("gelu_mul")


def test_a_kind_file_goes_through_the_whole_pipeline(gelu_mul):
    with mpk.context():
        module = ir.Module.parse(GRAPH)
        rng = np.random.default_rng(7)
        weights = {name: rng.standard_normal(shape).astype(np.float32) / 16
                   for name, shape in (("gate.weight", (512, 256)), ("up.weight", (512, 256)),
                                       ("down.weight", (128, 512)))}
        x = rng.standard_normal((2, 256)).astype(np.float32)
        (expected,) = run_graph(module, weights, x)
        reference = (gelu_mul.reference(x @ weights["gate.weight"].T, x @ weights["up.weight"].T)
                     @ weights["down.weight"].T)
        np.testing.assert_allclose(expected, reference, rtol=1e-4, atol=1e-4)

        pipeline.run(module, FULL)
        groups = [op for op in module.body.operations if op.name == "mpk.tasks"]
        (group,) = [op for op in groups if ir.StringAttr(op.attributes["kind"]).value == "gelu_mul"]
        assert "wait" in group.attributes and "trigger" in group.attributes
        for queues in (False, True):
            io = run_tasks(module, weights, {}, {"input0": x}, queues=queues, seed=3)
            np.testing.assert_allclose(io["logits"][0], expected, rtol=1e-5, atol=1e-5)

        ptx = lower_to_ptx(module)
        assert ".func mpk_gelu_mul_" in ptx and "ex2.approx" in ptx


def test_mpk_opt_loads_a_kind_file_from_the_environment(tmp_path):
    source = tmp_path / "graph.mlir"
    source.write_text(GRAPH)
    env = dict(os.environ, MPK_KINDS=str(FIXTURE))
    result = subprocess.run([sys.executable, "-m", "mpk.opt", str(source),
                             "--pass-pipeline=builtin.module(mpk-partition)"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert 'kind = "gelu_mul"' in result.stdout
    plain = subprocess.run([sys.executable, "-m", "mpk.opt", str(source)], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "MPK_KINDS"})
    assert plain.returncode == 1 and "gelu_mul" in plain.stderr and "Traceback" not in plain.stderr


def test_no_file_of_mpk_names_the_fixture_kind():
    sources = [p for folder in ("mpk", "dialects", "lowering", "runtime")
               for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".mlir", ".cu", ".h")]
    assert sources and not [p for p in sources if "gelu_mul" in p.read_text()]

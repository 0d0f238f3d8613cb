"""`mpk compile` end to end for the tiny presets: the bundle has every stage's
output, every task function in its PTX and cubin, and the weights the model
needs, and the CPU task interpreter running the bundle's own task IR matches
PyTorch (`mpk run --backend interp --check`). And qwen3-8b at real size
compiles to a complete bundle within a minute."""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("mlir")
pytest.importorskip("torch")
from mpk import lowering  # noqa: E402
from mpk.runtime import build, bundle, cubin  # noqa: E402

NEEDED = ("mpk-partition", "mpk-build-events", "mpk-schedule", "mpk-plan-memory", "mpk-lower-tasks")
if any(lowering.lookup(name) is None for name in NEEDED):
    pytest.skip("the task pipeline is not complete yet", allow_module_level=True)


def mpk(*args) -> int:
    from mpk.cli import main
    return main([str(a) for a in args])


@pytest.fixture(scope="module", params=["qwen3-tiny", "llama3-tiny"])
def compiled(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    assert mpk("compile", "--model", request.param, "--max-seq", 64, "--steps", 4, "--num-sms", 16,
               "--dump-dir", out / "stages", "-o", out / "model.mpk", "--quiet") == 0
    return request.param, out


def assert_every_task_function(b: bundle.Bundle) -> None:
    """mpk-lower-tasks names group `fn`'s device function mpk_<kind>_<fn>; the
    PTX defines each and the linked cubin keeps each (called, not inlined)."""
    needed = {f"mpk_{g['kind']}_{g['fn']}" for g in b.plan["groups"]} | {build.DISPATCH_NAME}
    ptx = (b.path / bundle.PTX).read_text()
    defined = set(re.findall(r"^\.visible \.func\s+(?:\([^)]*\)\s*)?(\w+)", ptx, re.M))
    assert not needed - defined, f"missing from the PTX: {sorted(needed - defined)}"
    linked = set(cubin.functions(b.cubin))
    assert not (needed | {build.KERNEL_NAME}) - linked, f"missing from the cubin: {sorted(needed - linked)}"


def test_stages_and_bundle(compiled):
    from mpk.models import preset, weight_shapes
    name, out = compiled
    stages = sorted(p.name for p in (out / "stages").iterdir())
    program = ["1-tasks.mlir", "2-events.mlir", "3-scheduled.mlir", "4-gpu.mlir", "5-ptx.ptx", "6-cubin.cubin"]
    assert stages == sorted(["0-graph.mlir"] + program + [f"prefill-{s}" for s in program])
    b = bundle.read(out / "model.mpk")
    assert_every_task_function(b)
    # The prefill program: its own kernel, a chunk of the cache's length, GEMM tiles.
    assert b.prefill_chunk == 64 and b.prefill.kernel["steps"] == 1
    assert_every_task_function(b.prefill)
    kinds = {g["kind"] for g in b.prefill.plan["groups"]}
    assert {"attention_prefill", "rope_append", "linear", "sample_split"} <= kinds   # 256 logits: 2 splits
    assert len(b.prefill.tables["tensor_maps"]) == 2 * sum(g["kind"] == "linear" and g["tile"][0] == 64
                                                           for g in b.prefill.plan["groups"])
    assert {w["dtype"] for w in b.weights().values()} == {"bf16"}   # mpk compile's default dtype
    assert (b.kernel["num_sms"], b.kernel["steps"], b.kernel["arch"]) == (16, 4, "sm_90")
    assert b.plan["max_seq"] == 64 and b.plan["model"]["num_layers"] == 2
    shapes = weight_shapes(preset(name))
    assert {n: tuple(s["shape"]) for n, s in b.weights().items()} == shapes
    assert b.tables["tasks"].shape[0] == b.kernel["num_tasks"]


def test_interpreter_matches_pytorch(compiled, capsys):
    _, out = compiled
    assert mpk("run", out / "model.mpk", "--backend", "interp", "--prompt-ids", 3, 1, 4,
               "--steps", 5, "--check", "--seed", 7) == 0
    printed = capsys.readouterr().out
    assert "check ok" in printed
    table = printed[printed.index("rel.err"):].splitlines()[1:-1]
    # The prefill kernel returns the last prompt row's logits: positions 2 (the prompt's
    # last) to 6, the 5 generated tokens' logits.
    assert [int(row.split()[0]) for row in table] == list(range(2, 7))


def test_qwen3_8b_bundle_at_real_size(tmp_path, capsys):
    start = time.perf_counter()
    assert mpk("compile", "--model", "qwen3-8b", "-o", tmp_path / "qwen3-8b.mpk", "--quiet") == 0
    seconds = time.perf_counter() - start
    b = bundle.read(tmp_path / "qwen3-8b.mpk")
    with capsys.disabled():
        print(f"\nqwen3-8b (bf16, batch 1, max-seq 4096): bundle of {b.kernel['num_tasks']} decode "
              f"and {b.prefill.kernel['num_tasks']} prefill tasks in {seconds:.1f} s")
    assert b.plan["model"]["num_layers"] == 36 and b.kernel["num_sms"] == 132
    assert_every_task_function(b)
    assert b.prefill.plan["model"]["num_layers"] == 36
    assert seconds < 120   # both programs: decode and the 256-row prefill


def test_weight_ring(compiled, tmp_path):
    """By default nothing is staged. With `--ring-bytes` mpk-stage-weights marks every
    layer linear and gate_up of the tiny model (their tiles are small): their tasks'
    prefetch rows name whole rows of w (gate_up: of gate, then of up as the second
    range) whose chunk fits the ring, and their task records say `staged`."""
    import numpy as np
    from mpk.lowering.mpk_stage_weights import chunk_bytes
    from mpk.runtime import tables as layout
    name, out = compiled
    off = bundle.read(out / "model.mpk")
    assert off.kernel["ring_bytes"] == 0 and (off.tables["prefetch"][:, 3] == 0).all()

    assert mpk("compile", "--model", name, "--max-seq", 64, "--steps", 4, "--num-sms", 16,
               "--ring-bytes", 16384, "-o", tmp_path / "staged.mpk", "--quiet") == 0
    b = bundle.read(tmp_path / "staged.mpk")
    ring, depth, prefetch = b.kernel["ring_bytes"], b.kernel["ring_depth"], b.tables["prefetch"]
    flags = b.tables["tasks"][:, layout.task_field("flags")] & layout.FLAGS["staged"]
    assert np.array_equal(flags > 0, prefetch[:, 3] > 0)
    staged = [g for g in b.plan["groups"] if flags[g["first_task"]]]
    assert ring == 16384 and 1 <= depth <= layout.RING_MAX_DEPTH
    assert len(staged) >= 4 * b.plan["model"]["num_layers"]
    assert {g["kind"] for g in staged} == {"linear", "gate_up"}
    for g in staged:
        rows = prefetch[g["first_task"]:g["first_task"] + g["num_tasks"]]
        names = [b.plan["buffers"][b.tables["group_buffers"][k]]["name"] for k in rows[0, [0, 4]] if k >= 0]
        assert names == g["inputs"][1:1 + len(names)] and len(names) == (2 if g["kind"] == "gate_up" else 1)
        w = b.plan["buffers"][b.tables["group_buffers"][rows[0, 0]]]
        assert w["space"] == "weight" and rows[0, 3] == w["shape"][1] * 2      # bf16 rows
        assert (rows[:, 2] % rows[:, 3] == 0).all()
        assert (chunk_bytes(len(names), rows[0, 2] // rows[0, 3], rows[0, 3]) <= ring)
        assert np.array_equal(rows[:, 1], np.arange(g["num_tasks"]) * g["tile"][1] * rows[0, 3])
        if len(names) == 2:
            assert np.array_equal(rows[:, 5], rows[:, 1])     # the same rows of up

def test_caller_saves_is_the_default(tmp_path):
    """Task calls preserve no registers unless `--no-caller-saves` asks for the default
    calling convention: the plan says which, and the kernel and the dispatcher are in
    the cubin either way."""
    for flags, expected in (((), True), (("--no-caller-saves",), False)):
        out = tmp_path / f"{expected}.mpk"
        assert mpk("compile", "--model", "qwen3-tiny", "--max-seq", 64, "--steps", 2, "--num-sms", 8,
                   "--prefill-chunk", 0, *flags, "-o", out, "--quiet") == 0
        b = bundle.read(out)
        assert b.kernel["caller_saves"] is expected
        functions = cubin.functions(b.cubin)
        assert build.KERNEL_NAME in functions and build.DISPATCH_NAME in functions

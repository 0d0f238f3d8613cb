"""mpk-materialize: the runtime's tables from hand-built scheduled task IR."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("mlir")
from mlir import ir  # noqa: E402

from mpk import dialects  # noqa: E402
from mpk.dialects.taskir import TaskGraph  # noqa: E402
from mpk.lowering.mpk_materialize import MaterializeError, materialize  # noqa: E402
from mpk.runtime import tables  # noqa: E402
from mpk.runtime.tables import FLAGS, NO_EVENT, TASK_FIELDS, task_field  # noqa: E402

import runtime_stub  # noqa: E402


def field(tables, name):
    return tables["tasks"][:, task_field(name)]


def test_stub_tables():
    result = materialize(TaskGraph.from_module(runtime_stub.stub_task_module(num_sms=6)))
    t = result.tables
    assert t["tasks"].shape == (12, len(TASK_FIELDS))
    assert field(t, "fn").tolist() == [0] * 8 + [1] * 4
    assert field(t, "task").tolist() == list(range(8)) + list(range(4))
    assert field(t, "group").tolist() == [0] * 8 + [1] * 4
    # Events in module order: a_ready is slot 0, step_done (primed) slot 1.
    assert field(t, "wait_slot").tolist() == [1] * 8 + [0] * 4
    assert field(t, "wait_triggers").tolist() == [4] * 8 + [8] * 4
    assert field(t, "trigger_slot").tolist() == [0] * 8 + [1] * 4
    assert t["event_triggers"].tolist() == [8, 4]
    assert t["event_initial"].tolist() == [0, 4]
    # Six workers, two of them idle.
    assert t["queue_offsets"].tolist() == [0, 3, 6, 9, 12, 12, 12]
    assert t["queue_tasks"].tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    # produce lists (a); consume lists (a, b): inputs then outputs.
    assert t["group_buffers"].tolist() == [0, 0, 1]
    assert t["group_buffer_offsets"].tolist() == [0, 1, 3]
    assert field(t, "buffers").tolist() == [0] * 8 + [1] * 4
    assert [g["first_task"] for g in result.groups] == [0, 8]
    assert result.buffers[1]["per_step"] and result.buffers[0]["offset"] == 0


MODULE = """
"mpk.kernel"() {sym_name = "k", num_sms = 4 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<2x64xbf16>, space = "workspace", offset = 0 : i64} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<2x64xbf16>, space = "workspace", offset = 256 : i64} : () -> ()
"mpk.event"() {sym_name = "e", size = 4 : i64, triggers = 1 : i64} : () -> ()
"mpk.tasks"() {sym_name = "layers.3.first", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 2, 16>,
               inputs = [@x, @x], outputs = [@y], trigger = [@e, affine_map<(d0, d1) -> (d1)>], params = {}} : () -> ()
"mpk.tasks"() {sym_name = "layers.3.second", kind = "add", grid = array<i64: 1, 2>, tile = array<i64: 2, 32>, fn = 7 : i64,
               inputs = [@y, @y], outputs = [@x], wait = [@e, affine_map<(d0, d1) -> (WAIT)>], params = {}} : () -> ()
"mpk.schedule"() {queues = [QUEUES]} : () -> ()
"""


def graph(wait="d1 * 2 + 1", queues="array<i32: 0, 1, 4>, array<i32: 2, 3, 5>", offset="offset = 256 : i64"):
    text = MODULE.replace("WAIT", wait).replace("QUEUES", queues).replace("offset = 256 : i64", offset)
    with dialects.context():
        return TaskGraph.from_module(ir.Module.parse(text))


def test_affine_maps_and_fn_attribute():
    t = materialize(graph()).tables
    assert field(t, "trigger_slot").tolist() == [0, 1, 2, 3, NO_EVENT, NO_EVENT]
    assert field(t, "wait_slot").tolist() == [NO_EVENT] * 4 + [1, 3]
    assert field(t, "wait_triggers").tolist() == [0] * 4 + [1, 1]
    assert field(t, "fn").tolist() == [0] * 4 + [7] * 2
    assert t["group_buffers"].tolist() == [0, 0, 1, 1, 1, 0]
    assert t["queue_offsets"].tolist() == [0, 3, 6, 6, 6]


def test_layout_is_the_runtime_headers():
    header = (Path(tables.__file__).parent / "mpk_runtime.h").read_text()
    assert {name.lower(): int(v) for name, v in re.findall(r"MPK_TASK_(\w+) = (\d+)", header)} == FLAGS
    defines = dict(re.findall(r"#define MPK_(\w+) (\d+)", header))
    assert int(defines["GROUP_BUFFERS_MAX"]) == tables.GROUP_BUFFERS_MAX
    assert int(defines["RING_MAX_DEPTH"]) == tables.RING_MAX_DEPTH
    kernel = (Path(tables.__file__).parent / "mpk_runtime.cu").read_text()
    assert int(re.search(r"sizeof\(TaskWeights\) == (\d+)", kernel).group(1)) == tables.TASK_WEIGHTS_BYTES


def test_a_group_lists_at_most_what_the_runtime_copies():
    """The worker copies GROUP_BUFFERS_MAX entries of a task's buffer list into shared
    memory for its dispatch: a longer list is refused at the group."""
    wide = ", ".join(["@x"] * tables.GROUP_BUFFERS_MAX)
    text = (MODULE.replace("inputs = [@y, @y]", f"inputs = [{wide}]").replace("WAIT", "d1")
            .replace("QUEUES", "array<i32: 0, 1, 4>, array<i32: 2, 3, 5>"))
    with dialects.context():
        with pytest.raises(MaterializeError, match=f"group 'layers.3.second' lists {tables.GROUP_BUFFERS_MAX + 1} "
                           f"buffers and tensor maps, the runtime passes at most {tables.GROUP_BUFFERS_MAX}"):
            materialize(TaskGraph.from_module(ir.Module.parse(text)))


def test_prefetch_attribute_sets_the_flag():
    """A group that mpk-lower-tasks gave a prefetch function (its `prefetch` unit
    attribute): its tasks, and only those, carry the flag the side lane looks at."""
    text = (MODULE.replace("fn = 7 : i64,", "fn = 7 : i64, prefetch,").replace("WAIT", "d1")
            .replace("QUEUES", "array<i32: 0, 1, 4>, array<i32: 2, 3, 5>"))
    with dialects.context():
        t = materialize(TaskGraph.from_module(ir.Module.parse(text))).tables
    assert field(t, "flags").tolist() == [0] * 4 + [FLAGS["prefetch"]] * 2
    assert "prefetch" not in MODULE and not field(materialize(graph()).tables, "flags").any()


@pytest.mark.parametrize("kwargs, message", [
    ({"wait": "d1 * 4"}, r"task 1 of group 'layers.3.second' waits on 'e'\[4\], outside its 4 counters"),
    ({"queues": "array<i32: 0, 1, 4>, array<i32: 2, 3>"}, "task 5 is in no queue"),
    ({"queues": "array<i32: 0, 1, 4>, array<i32: 2, 3, 4, 5>"}, "queued twice"),
    ({"queues": ", ".join(["array<i32: 0>"] * 5)}, "5 queues for 4 SMs"),
    ({"offset": "name = \"y\""}, "workspace buffer 'y' has no offset"),
])
def test_errors(kwargs, message):
    with pytest.raises(MaterializeError, match=message):
        materialize(graph(**kwargs))


def test_pass_reports_at_the_op(tmp_path):
    from mpk.diagnostics import Collector
    from mpk.pipeline import run
    text = MODULE.replace("WAIT", "d1 * 4").replace("QUEUES", "array<i32: 0, 1, 2, 3, 4, 5>")
    context = dialects.context()
    with context:
        module = ir.Module.parse(text)
    collector = Collector(context)
    with collector.catching():
        run(module, f"builtin.module(mpk-materialize{{output={tmp_path / 't.npz'}}})")
    errors = [d for d in collector.diags if d.severity == "error"]
    assert errors and "outside its 4 counters" in errors[0].message and errors[0].line == 8
    assert not (tmp_path / "t.npz").exists()


def test_pass_writes_tables(tmp_path):
    from mpk.pipeline import run
    from mpk.runtime import tables
    text = MODULE.replace("WAIT", "d1").replace("QUEUES", "array<i32: 0, 1, 2, 3, 4, 5>")
    with dialects.context():
        module = ir.Module.parse(text)
        run(module, f"builtin.module(mpk-materialize{{output={tmp_path / 't.npz'}}})")
    assert tables.load(tmp_path / "t.npz")["queue_tasks"].tolist() == list(range(6))

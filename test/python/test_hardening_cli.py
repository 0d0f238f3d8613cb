"""The CLI and API boundary (issue 16): bad input, from the command line or from a
damaged bundle, is one line `mpk <cmd>: error: ...` naming the file (and line and
column) with exit code 1, or a ValueError from the API; a bug is a traceback
and a request to report it. Quiet means quiet; reprs are short; the task
interpreter shows progress; `mpk run` picks its backend."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mlir")
pytest.importorskip("torch")

import mpk  # noqa: E402
from mpk import cli  # noqa: E402
from mpk.cli import main  # noqa: E402
from mpk.runtime import bundle as bundles  # noqa: E402
from mpk.runtime import loader  # noqa: E402

MODEL, VOCAB = "qwen3-tiny", 256
COMPILE = ["--max-seq", "32", "--steps", "4", "--num-sms", "8", "--prefill-chunk", "8"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """`mpk compile --quiet` in a process of its own: the bundle, and all it printed."""
    path = tmp_path_factory.mktemp("hardening") / "tiny.mpk"
    command = "import sys; from mpk.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", command, "compile", "--model", MODEL, *COMPILE,
                             "-o", str(path), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return path, result


@pytest.fixture
def damaged(compiled, tmp_path):
    """A copy of the bundle to break."""
    return shutil.copytree(compiled[0], tmp_path / "damaged.mpk")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments, command="run"):
    assert code == 1 and err.startswith(f"mpk {command}: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ------------------------------------------------------------------ compile

def test_compile_quiet_prints_nothing(compiled):
    _, result = compiled
    assert (result.stdout, result.stderr) == ("", "")


def test_api_compile_prints_nothing_and_its_bundle_has_a_short_repr(capfd, tmp_path):
    bundle = mpk.compile(MODEL, max_seq=16, steps_per_launch=2, num_sms=4, arch="sm_90", prefill_chunk=0,
                         path=tmp_path / "api.mpk")
    assert capfd.readouterr() == ("", "")         # no `mpk-build-events: ...` statistics
    text = repr(bundle)
    assert len(text) < 500 and "api.mpk" in text and "qwen3" in text, text


def test_compile_into_a_folder_that_is_not_a_bundle_fails_before_compiling(capsys, tmp_path):
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    start = time.perf_counter()
    code, _, err = run_cli(capsys, "compile", "--model", MODEL, *COMPILE, "-o", folder)
    assert_one_line_error(code, err, f"{folder} exists and is not a bundle", command="compile")
    with pytest.raises(ValueError, match="exists and is not a bundle"):
        mpk.compile(MODEL, max_seq=32, num_sms=8, arch="sm_90", path=folder)
    assert time.perf_counter() - start < 5          # a compile takes longer: it never started
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_unknown_arch_names_the_known_ones(capsys, tmp_path):
    code, _, err = run_cli(capsys, "compile", "--model", MODEL, "--arch", "sm_80", "-o", tmp_path / "x.mpk")
    assert_one_line_error(code, err, "'sm_80'", "sm_90", command="compile")
    with pytest.raises(ValueError, match=r"unknown GPU architecture 'bogus' \(mpk compiles for sm_90\)"):
        mpk.compile(MODEL, arch="bogus", num_sms=8)


def test_negative_data_flags_is_refused(capsys, tmp_path):
    code, _, err = run_cli(capsys, "compile", "--model", MODEL, "--data-flags", "-1", "-o", tmp_path / "x.mpk")
    assert_one_line_error(code, err, "--data-flags must be 0 (off) or a number of rows, got -1", command="compile")


@pytest.mark.parametrize("argument", [dict(batch=True), dict(max_seq=2.5), dict(num_sms=False),
                                      dict(steps_per_launch="4")])
def test_api_compile_argument_types(argument):
    name = next(iter(argument))
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        mpk.compile(MODEL, arch="sm_90", **{"num_sms": 8, **argument})


# ------------------------------------------------------------------ run

def test_run_without_backend_picks_the_interpreter(compiled, capsys):
    if loader.gpu_count():
        pytest.skip("there is a GPU here")
    code, out, err = run_cli(capsys, "run", compiled[0], "--steps", 3)
    assert code == 0, err
    assert "--backend interp" in err and out.startswith("tokens[0]: ") and "interp (CPU)" in out
    code, out, err = run_cli(capsys, "run", compiled[0], "--steps", 3, "--quiet")
    assert code == 0 and err == "", err


def break_plan_truncated(bundle):
    plan = bundle / bundles.PLAN
    plan.write_text(plan.read_text()[:300])
    return f"{bundle / bundles.PLAN}:", "not valid JSON"


def break_plan_key(bundle):
    plan = json.loads((bundle / bundles.PLAN).read_text())
    del plan["kernel"]["num_tasks"]
    (bundle / bundles.PLAN).write_text(json.dumps(plan))
    return f"{bundle / bundles.PLAN}:", "'num_tasks'"


def break_tables_missing(bundle):
    tables = dict(np.load(bundle / bundles.TABLES))
    del tables["queue_tasks"]
    np.savez(bundle / bundles.TABLES, **tables)
    return f"{bundle / bundles.TABLES}:", "queue_tasks"


def break_tables_shape(bundle):
    tables = dict(np.load(bundle / bundles.TABLES))
    tables["tasks"] = tables["tasks"][:, :5]
    np.savez(bundle / bundles.TABLES, **tables)
    return f"{bundle / bundles.TABLES}:", "table 'tasks' is [", ", 5] int32, plan.json records ["


def break_tables_truncated(bundle):
    data = (bundle / bundles.TABLES).read_bytes()
    (bundle / bundles.TABLES).write_bytes(data[:len(data) // 2])
    return f"{bundle / bundles.TABLES}:", "cannot read the tables"


def break_task_ir(bundle):
    (bundle / bundles.TASK_IR).write_text("module {\n  garbage {\n}\n")
    return f"{bundle / bundles.TASK_IR}:2:3: error:", "garbage"


@pytest.mark.parametrize("damage", [break_plan_truncated, break_plan_key, break_tables_missing,
                                    break_tables_shape, break_tables_truncated, break_task_ir])
def test_damaged_bundles_are_one_line_errors(damaged, damage, capsys):
    fragments = damage(damaged)
    code, _, err = run_cli(capsys, "run", damaged, "--backend", "interp", "--steps", 2)
    assert_one_line_error(code, err, *fragments)
    with pytest.raises(ValueError, match="damaged.mpk"):
        mpk.load(damaged, backend="interp")


def test_truncated_plan_names_line_and_column(damaged):
    break_plan_truncated(damaged)
    with pytest.raises(bundles.BundleError, match=r"plan.json:\d+:\d+: not valid JSON"):
        bundles.read(damaged)


@pytest.mark.parametrize("argv, fragment", [
    (["--seed", "-1"], "seed of random weights must be 0 or positive, got -1"),
    (["--prompt-ids", "1", str(VOCAB)], f"token ids in [0, {VOCAB})"),
])
def test_run_argument_errors(compiled, capsys, argv, fragment):
    code, _, err = run_cli(capsys, "run", compiled[0], "--backend", "interp", *argv)
    assert_one_line_error(code, err, fragment)


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    from mpk.commands import run

    def broken(args):
        raise KeyError("a bug")
    monkeypatch.setattr(run, "run", broken)
    code, _, err = run_cli(capsys, "run", "anything")
    assert code == cli.EXIT_BUG and "Traceback" in err and "KeyError: 'a bug'" in err
    assert err.rstrip().endswith("please report it with the command line and the traceback above")


# ------------------------------------------------------------------ sessions

def test_closed_sessions_refuse_work_and_reprs_are_short(compiled):
    session = mpk.load(compiled[0], weights=0, backend="interp")
    assert len(repr(session)) < 500 and "interp" in repr(session)
    with pytest.raises(ValueError, match="launches must be a positive int"):
        session.benchmark(launches=0)
    session.close()
    assert "closed" in repr(session)
    with pytest.raises(ValueError, match="session is closed"):
        session.generate([1, 2], max_new_tokens=2)
    with pytest.raises(ValueError, match="session is closed"):
        session.benchmark()


def test_closed_gpu_session_refuses_launches():
    session = loader.Session.__new__(loader.Session)   # no GPU needed: the state after close()
    session.context = None
    for call in (lambda: session.launch(), lambda: session.write("tokens", [1]), lambda: session.read("tokens")):
        with pytest.raises(ValueError, match="session is closed"):
            call()


# ------------------------------------------------------------------ progress

def test_interpreter_progress_counts_every_task(compiled, monkeypatch):
    """The bar's total is the task runs `generate` makes, and it reaches it."""
    from mpk.commands.run import _task_runs

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    bundle = bundles.read(compiled[0])
    monkeypatch.setattr(cli, "PROGRESS_DELAY_S", 0)
    for prompt in ([1], [1, 2, 3]):
        monkeypatch.setattr(sys, "stderr", Terminal())
        total = _task_runs(bundle, len(prompt), 5)
        with mpk.load(bundle, weights=0, backend="interp") as session:
            with cli.interp_progress(session.runner, total, quiet=False) as bar:
                session.generate(prompt, max_new_tokens=5)
        assert bar.n == total and f"0/{total} tasks" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", Terminal())
    with cli.interp_progress(session.runner, total, quiet=True):
        session.runner.on_task()
    assert sys.stderr.getvalue() == ""


def test_compile_error_says_why(tmp_path):
    """A CompileError's message carries the located diagnostics (an API caller sees why, as
    the CLI prints it); its headline is the one line the CLI starts with."""
    from mpk import driver
    bad = tmp_path / "bad.mlir"
    bad.write_text('func.func @f() {\n  %0 = "mpk.nope"() : () -> i32\n  return\n}\n')
    with pytest.raises(driver.CompileError) as info:
        driver.import_graph(bad, "mlir", driver.Options())
    assert info.value.headline.startswith("graph: ") and "\n" not in info.value.headline
    assert f"{bad}:2:" in str(info.value)


def test_run_refuses_tasks_mlir_that_is_not_task_ir(tmp_path, capsys):
    """An edited tasks.mlir that parses but holds no scheduled task IR: one located line, exit 1."""
    from mpk.cli import main
    out = tmp_path / "b"
    assert main(["compile", "--model", "qwen3-tiny", "--max-seq", "32", "-o", str(out), "--quiet"]) == 0
    (out / "tasks.mlir").write_text("module {\n}\n")
    capsys.readouterr()
    assert main(["run", str(out), "--backend", "interp", "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'tasks.mlir'}:1:1: error: expected scheduled task IR" in err and "Traceback" not in err

"""mpk-opt on mutated IR: every input ends in exit 0 or a located error (exit 1).

A seeded mutator edits the chunks of the lit corpus (test/**/*.mlir): numbers,
tensor shapes and element types, dense-array kinds, attribute values swapped
or dropped, strings, symbols, lines, raw bytes (not UTF-8). Every mutant runs
through mpk-opt three times: parse and verify, the pipeline of its file's RUN
line, and the rest of the compiler from its level (torch, graph or task IR) to
mpk-lower-tasks. An input passes when mpk-opt exits 0, or 1 with a
`file:line:col: error:` diagnostic and no traceback.

mpk-opt runs in-process (`mpk.opt.main`), in worker subprocesses: two at once,
and a native abort or a runaway case kills only its worker, which is reported
and restarted. MPK_FUZZ_CASES (default 300) sets the number of mutants,
MPK_FUZZ_SEED (default 0) the seed. To replay a case:
`python test/python/test_fuzz_ir.py SEED INDEX` writes it to fuzz-SEED-INDEX.mlir
and prints its mpk-opt command lines.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

from taskgraph_graphs import FUSIONS

ROOT = Path(__file__).resolve().parents[2]
CASES = int(os.environ.get("MPK_FUZZ_CASES", "300"))
SEED = int(os.environ.get("MPK_FUZZ_SEED", "0"))
WORKERS = 2
CASE_TIMEOUT_S = 60
WORKER_MEMORY = 4 << 30          # address space of a worker: a runaway allocation fails, not the machine

LOCATED_ERROR = re.compile(r"^\S.*:\d+:\d+: error: ", re.MULTILINE)
CRASH = re.compile(r"^(Traceback \(most recent call last\)|\S+: internal error: )", re.MULTILINE)
SPLIT = re.compile(r"^// -----.*$", re.MULTILINE)
PIPELINE = re.compile(r"--pass-pipeline='([^']*)'")
REST = "mpk-build-events{report=false},mpk-schedule,mpk-plan-memory,mpk-lower-tasks"


# ------------------------------------------------------------------ corpus

def corpus() -> list[tuple[str, list[str]]]:
    """(chunk text, pass pipelines of its file's RUN lines) for every lit input."""
    chunks = []
    for path in sorted(ROOT.glob("test/**/*.mlir")):
        if "Output" in path.parts:
            continue
        text = path.read_text()
        # Pipelines writing files (%t) or with deliberately bad options are not for mutants.
        runs = sorted({p for p in PIPELINE.findall(text) if "%" not in p and "=0}" not in p
                       and "=maybe" not in p and "alignment=3" not in p})
        chunks += [(chunk, runs) for chunk in SPLIT.split(text) if "mpk." in chunk or '"torch.' in chunk]
    return chunks


def downstream(text: str) -> str:
    """The rest of the compiler from the input's level."""
    if '"torch.' in text:
        return f"builtin.module(torch-to-mpk,{FUSIONS},mpk-partition,{REST})"
    if "mpk.tasks" in text:
        return f"builtin.module({REST if 'mpk.event' not in text else REST.split(',', 1)[1]})"
    return f"builtin.module({FUSIONS},mpk-partition,{REST})"


# ----------------------------------------------------------------- mutator

NUMBER = re.compile(r"(?<![\w.%#^!@\"-])-?\d+(?![\w.\"])")
SHAPE = re.compile(r"tensor<([0-9?x]*?)(\w+)>")
ARRAY_KIND = re.compile(r"array<\w+")
ATTR_ENTRY = re.compile(r"(?<=[{,] )([\w.$]+) = ")
STRING = re.compile(r'"[^"\n]*"')
SYMBOL = re.compile(r"@[\w.$]+")
STRINGS = ['""', '"bogus"', '"io"', '"weight"', '"positions"', '"tokens"'] + [f'"{k}"' for k in (
    "embedding", "rmsnorm", "linear", "rope", "attention", "attention_partial", "attention_combine",
    "attention_prefill", "kv_append", "rope_append", "silu_mul", "add", "argmax", "sample", "gate_up")]
ELEMENT_TYPES = ["bf16", "f16", "f32", "f64", "i1", "i8", "i32", "i64", "si64", "ui32", "index", "f8E4M3FN", "i128"]
VALUES = ['"x"', '""', "1 : i64", "0 : i64", "-1 : i64", "1.5 : f32", "array<i64: 1, 2>", "array<i64>",
          "array<f32: 0.5>", "array<bf16: 1.0>", "array<si64: 1, 8>", "array<index: 1>", "array<i32: 7>",
          "[@x]", "@x", "[]", "unit", "{}", "{a = 1 : i64}", "affine_map<(d0) -> (d0)>",
          "affine_map<(d0, d1) -> (d1 floordiv 0)>", "tensor<1xf32>", "i32", "dense<1> : tensor<2xi32>",
          "true", "[@e, affine_map<(d0, d1) -> (d0 + 100)>]", '["a", 1]']


def _value_end(text: str, start: int) -> int:
    """End of the attribute value starting at `start` (up to `,` or a closer at depth 0)."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == '"':
            i = text.find('"', i + 1)
            if i < 0:
                return len(text)
        elif ch in "<([{":
            depth += 1
        elif ch in ">)]}" and not (ch == ">" and text[i - 1] == "-"):
            if depth == 0:
                return i
            depth -= 1
        elif ch in ",\n" and depth == 0:
            return i
        i += 1
    return i


def _replace(text: str, m: re.Match, new: str, group: int = 0) -> str:
    return text[:m.start(group)] + new + text[m.end(group):]


def _number(rng, text):
    ms = list(NUMBER.finditer(text))
    if not ms:
        return text
    m = rng.choice(ms)
    n = int(m.group())
    return _replace(text, m, str(rng.choice([0, 1, -1, 2, 3, 7, n + 1, n - 1, 2 * n, n // 2, 1 << 31, 1 << 40])))


def _new_shape(rng, m: re.Match) -> str:
    dims, element = [d for d in m.group(1).split("x") if d], m.group(2)
    what = rng.randrange(4)
    if what == 0 and dims:
        dims[rng.randrange(len(dims))] = str(rng.choice([0, 1, 2, 3, 5, 8, 12, 64, 100, 4096, 1 << 20]))
    elif what == 1 and dims:
        dims.pop(rng.randrange(len(dims)))
    elif what == 2:
        dims.insert(rng.randrange(len(dims) + 1), str(rng.choice([1, 2, 4])))
    else:
        element = rng.choice(ELEMENT_TYPES)
    return "tensor<" + "".join(d + "x" for d in dims) + element + ">"


def _shape(rng, text):
    """One tensor type changed where it is written once: mostly a parse or verifier error."""
    ms = list(SHAPE.finditer(text))
    return _replace(text, m, _new_shape(rng, m)) if (m := ms and rng.choice(ms)) else text


def _retype(rng, text):
    """One tensor type changed everywhere: well-formed IR with other shapes, deep into the passes."""
    ms = list(SHAPE.finditer(text))
    if not ms:
        return text
    m = rng.choice(ms)
    return text.replace(m.group(), _new_shape(rng, m))


def _renumber(rng, text):
    """One number changed everywhere it appears (a head count, a width, a grid size)."""
    ms = list(NUMBER.finditer(text))
    if not ms:
        return text
    old = rng.choice(ms).group()
    new = str(rng.choice([1, 2, 3, 4, 8, 16, 24, 128, int(old) * 2, max(int(old) // 2, 1)]))
    return NUMBER.sub(lambda m: new if m.group() == old else m.group(), text)


def _array_kind(rng, text):
    ms = list(ARRAY_KIND.finditer(text))
    return _replace(text, rng.choice(ms), "array<" + rng.choice(ELEMENT_TYPES)) if ms else text


def _attr_value(rng, text):
    ms = list(ATTR_ENTRY.finditer(text))
    if not ms:
        return text
    m = rng.choice(ms)
    end = _value_end(text, m.end())
    if rng.random() < 0.3:                      # drop the entry
        if text[end:end + 2] == ", ":
            end += 2
        return text[:m.start()] + text[end:]
    return text[:m.end()] + rng.choice(VALUES) + text[end:]


def _string(rng, text):
    ms = list(STRING.finditer(text))
    if not ms:
        return text
    return _replace(text, rng.choice(ms), rng.choice([m.group() for m in ms] + STRINGS))


def _symbol(rng, text):
    ms = list(SYMBOL.finditer(text))
    if not ms:
        return text
    return _replace(text, rng.choice(ms), rng.choice([m.group() for m in ms] + ["@nope"]))


def _lines(rng, text):
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    what = rng.randrange(3)
    if what == 0:
        del lines[i]
    elif what == 1:
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


TEXT_MUTATIONS = [_number, _renumber, _renumber, _shape, _retype, _retype, _retype, _array_kind,
                  _attr_value, _attr_value, _string, _symbol, _lines]


def mutate(rng: random.Random, text: str) -> bytes:
    for _ in range(rng.choice([1, 1, 2, 3])):
        text = rng.choice(TEXT_MUTATIONS)(rng, text)
    data = text.encode()
    if rng.random() < 0.04:                      # raw bytes: not UTF-8, NUL, a cut
        i = rng.randrange(len(data) + 1)
        data = data[:i] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xe2\x82", b""]) + data[i:]
    return data


def case(seed: int, index: int, chunks) -> tuple[bytes, list[list[str]]]:
    """Mutant `index` of `seed` and its mpk-opt argument lists (the input path left out)."""
    rng = random.Random(f"{seed}:{index}")
    text, runs = rng.choice(chunks)
    data = mutate(rng, text)
    flags = ["--allow-unregistered-dialect"] if '"torch.' in text else []
    pipelines = [p for p in (rng.choice(runs) if runs else None, downstream(text)) if p]
    return data, [flags] + [flags + [f"--pass-pipeline={p}"] for p in pipelines]


# ------------------------------------------------------------------ runner

def run_in_process(argv: list[str]) -> tuple[int | str, str]:
    """mpk-opt's exit code (or 'exception') and its stderr."""
    from mpk import opt
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = opt.main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception:                       # what the console script would print as a traceback
            import traceback
            traceback.print_exc(file=err)
            code = "exception"
    return code, err.getvalue()


def worker() -> None:
    """Runs the argument lists read from stdin, one JSON result line each on stdout."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    out = sys.stdout
    for line in sys.stdin:
        code, err = run_in_process(json.loads(line))
        out.write(json.dumps(problem(code, err)) + "\n")
        out.flush()


class Pool:
    """Worker processes fed one argument list at a time; a dead or stuck worker is replaced."""

    def __init__(self, count: int):
        self.sel = selectors.DefaultSelector()
        self.procs = [self._start() for _ in range(count)]

    def _start(self):
        # One BLAS thread: the workers are the parallelism, and BLAS buffers per core would
        # take much of the address-space limit on a many-core machine.
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        p = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.sel.register(p.stdout, selectors.EVENT_READ, p)
        return p

    def _replace(self, p):
        self.sel.unregister(p.stdout)
        p.kill()
        p.wait()
        self.procs[self.procs.index(p)] = q = self._start()
        return q

    def run(self, jobs):
        """Yields (job, what is wrong or None) for every (job, argv) of `jobs`."""
        jobs, busy = list(jobs), {}
        while jobs or busy:
            for p in self.procs:
                if p not in busy and jobs:
                    job, argv = jobs.pop()
                    p.stdin.write(json.dumps(argv) + "\n")
                    p.stdin.flush()
                    busy[p] = (job, time.monotonic())
            for key, _ in self.sel.select(timeout=1):
                p = key.data
                job, _ = busy.pop(p)
                line = p.stdout.readline()
                if line:
                    yield job, json.loads(line)
                else:                            # died: a native abort or the memory limit
                    yield job, f"died (exit {p.wait()})"
                    self._replace(p)
            for p, (job, start) in list(busy.items()):
                if time.monotonic() - start > CASE_TIMEOUT_S:
                    del busy[p]
                    yield job, f"timeout after {CASE_TIMEOUT_S} s"
                    self._replace(p)

    def close(self):
        for p in self.procs:
            p.stdin.close()
            p.wait()


def problem(code, stderr: str) -> str | None:
    """What is wrong with an mpk-opt run (None: exit 0, or 1 with a located error)."""
    if code == 0:
        return None
    if code == 1 and not CRASH.search(stderr) and LOCATED_ERROR.search(stderr):
        return None
    return f"exit {code}: " + (stderr.strip().splitlines() or ["no diagnostic"])[-1][:300]


def test_mutated_inputs_give_located_errors(tmp_path):
    chunks = corpus()
    jobs = []
    for index in range(CASES):
        data, arg_lists = case(SEED, index, chunks)
        path = tmp_path / f"fuzz-{SEED}-{index}.mlir"
        path.write_bytes(data)
        jobs += [((index, " ".join(args)), [str(path)] + args) for args in arg_lists]
    pool = Pool(WORKERS)
    try:
        failures = [f"case {index} ({args or 'verify'}): {why}" for (index, args), why in pool.run(jobs) if why]
    finally:
        pool.close()
    replay = f"python {Path(__file__).relative_to(ROOT)} {SEED} INDEX"
    assert not failures, (f"{len(failures)} of {len(jobs)} mpk-opt runs failed (seed {SEED}; replay with "
                          f"`{replay}`):\n" + "\n".join(sorted(failures)))


def test_build_events_scales_to_250k_tasks(tmp_path):
    """Two chained elementwise groups of 131072 tasks, tile to tile: mpk-build-events took
    8 s and 3.3 GB at a quarter of this and ran out of 24 GB at half (issue 16)."""
    tasks, t = 131072, f"tensor<1x{131072 * 8}xf32>"
    source = tmp_path / "chain.mlir"
    source.write_text(f"""func.func @f(%x: {t}, %y: {t}) -> {t} {{
  %a = "mpk.add"(%x, %y) {{mpk.tile = array<i64: 1, 8>}} : ({t}, {t}) -> {t}
  %b = "mpk.add"(%a, %y) {{mpk.tile = array<i64: 1, 8>}} : ({t}, {t}) -> {t}
  return %b : {t}
}}
""")
    # The peak is the child's own (VmHWM, reset by exec): ru_maxrss would count the
    # pages of the pytest process it was forked from.
    child = ("import re, sys; from mpk.opt import main; rc = main(sys.argv[1:]); "
             "print('VmHWM', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1], file=sys.stderr); "
             "sys.exit(rc)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", child, str(source), "-o", os.devnull,
                           "--pass-pipeline=builtin.module(mpk-partition,mpk-build-events)"],
                          stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert f"{2 * tasks} tasks in 2 groups, {tasks} task dependencies" in proc.stderr
    megabytes = int(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0]) / 1024
    assert seconds < 15 and megabytes < 1024, f"{seconds:.1f} s, {megabytes:.0f} MB"


def test_mutator_is_deterministic():
    chunks = corpus()
    assert case(SEED, 7, chunks) == case(SEED, 7, chunks)
    assert len(chunks) > 100


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        seed, index = int(sys.argv[1]), int(sys.argv[2])
        data, arg_lists = case(seed, index, corpus())
        out = Path(f"fuzz-{seed}-{index}.mlir")
        out.write_bytes(data)
        for args in arg_lists:
            print("mpk-opt", out, " ".join(f"'{a}'" if "(" in a else a for a in args))

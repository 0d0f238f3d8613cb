"""The `mpk` command: `mpk <subcommand> ...`; subcommands live in mpk/commands/.

Failures caused by the input end as one line, `mpk <cmd>: error: ...`, exit
code 1 (mpk.errors says which ones); any other exception is a bug in mpk: its
traceback, a line asking for a report, exit code 70. MPK_DEBUG=1 shows the
traceback of input errors too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
import time
import traceback

from mpk import commands
from mpk.errors import InputError, describe, is_input_error

EXIT_INPUT, EXIT_BUG, EXIT_INTERRUPTED = 1, 70, 130   # 70: EX_SOFTWARE (sysexits.h)
PROGRESS_DELAY_S = 2.0   # runs shorter than this draw no progress bar


class UserError(InputError):
    """A problem with the user's input: printed as one line, exit code 1, no traceback."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mpk", description="Compile an LLM decode step into one persistent GPU kernel.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(info.name.rstrip("_"), help=doc[0] if doc else None,
                           description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:
        if not is_input_error(e):
            traceback.print_exc()
            print(f"mpk {args.command}: internal error: this is a bug in mpk; please report it with the "
                  f"command line and the traceback above", file=sys.stderr)
            return EXIT_BUG
        if os.environ.get("MPK_DEBUG"):
            traceback.print_exc()
        print(f"mpk {args.command}: error: {describe(e)}", file=sys.stderr)
        return EXIT_INPUT


def failure(message: str, diagnostics=()) -> UserError:
    """One error: the message, then MLIR's diagnostics (with their source lines and carets)
    indented under it."""
    lines = [line for d in diagnostics for line in str(d).splitlines()]
    return UserError(message + "".join(f"\n  {line}" for line in lines))


def resolve_backend(choice: str) -> str:
    """--backend auto|gpu|interp -> gpu or interp: auto takes the GPU when the CUDA driver sees one;
    gpu without one is an error that points to interp."""
    if choice == "interp":
        return choice
    from mpk.runtime.loader import gpu_count
    if gpu_count():
        return "gpu"
    if choice == "gpu":
        raise UserError("--backend gpu: no CUDA GPU here (no NVIDIA driver, or no device); "
                        "--backend interp runs on the CPU task interpreter")
    return "interp"


class Progress:
    """The progress bar of the mpk commands: tqdm on stderr, none with `quiet` (nor, with
    `terminal_only`, when stderr is no terminal).

    Over named stages (`mpk compile`, `mpk import`): `with progress.stage(name):`
    around each, the hook of mpk.driver and mpk.frontend.import_model; the bar
    counts the names in `stages` (others only relabel it) and, with `timings`,
    writes `name: 1.2 s` after each. Over counted work: `progress.update(n)`.
    As a context manager it closes the bar, leaving none half-drawn above an error.
    `tqdm_options` (bar_format, unit, delay, mininterval, ...) go to tqdm."""

    def __init__(self, total: int | None = None, *, quiet: bool = False, stages: tuple[str, ...] = (),
                 timings: bool = False, terminal_only: bool = False, leave: bool = False, done: str | None = None,
                 **tqdm_options):
        from tqdm import tqdm
        self.known, self.timings, self.done = set(stages), timings and not quiet, done
        self.bar = tqdm(total=len(stages) if total is None and stages else total, file=sys.stderr,
                        disable=quiet or (terminal_only and not sys.stderr.isatty()), leave=leave, **tqdm_options)

    @contextlib.contextmanager
    def stage(self, name: str):
        self.bar.set_description_str(name)
        start = time.perf_counter()
        yield
        if name in self.known:
            self.bar.update(1)
        if self.timings:
            self.bar.write(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    @property
    def n(self) -> int:
        return self.bar.n

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            self.bar.leave = False
        elif self.done is not None:
            self.bar.set_description_str(self.done)
        self.bar.close()


@contextlib.contextmanager
def interp_progress(runner, total_tasks: int | None, quiet: bool):
    """A Progress over the task interpreter's task runs (a real-size model takes minutes):
    drawn after PROGRESS_DELAY_S, on a terminal or into a log (there every 30 s); a count
    and rate when the total is not known."""
    with Progress(total_tasks, quiet=quiet, delay=PROGRESS_DELAY_S, mininterval=0.2 if sys.stderr.isatty() else 30,
                  desc="interp", bar_format="{desc}: {percentage:3.0f}% |{bar:20}| {n}/{total} tasks "
                  "[{elapsed}<{remaining}]" if total_tasks else "{desc}: {n} tasks [{elapsed}, {rate_fmt}]") as bar:
        runners = [r for r in (runner, runner.prefill) if r is not None]   # the prefill program's too
        for r in runners:
            r.on_task = bar.update
        try:
            yield bar
        finally:
            for r in runners:
                r.on_task = None


if __name__ == "__main__":  # `python -m mpk` is the way (mpk/__main__.py); run as a script,
    from mpk.cli import main  # this module's UserError would not be the one commands raise
    sys.exit(main())

"""Collecting, printing and checking MLIR diagnostics the way mlir-opt does.

MLIR reports into a context handler or, inside parse and pass runs, into an
MLIRError; both end up here as plain `Diag` records (a DiagnosticInfo must not
outlive its callback). `expected-error/warning/note/remark` annotations work
as in mlir-opt's -verify-diagnostics: `@+N`, `@-N`, `@above`, `@below`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys

from mlir import ir

SEVERITIES = {ir.DiagnosticSeverity.ERROR: "error", ir.DiagnosticSeverity.WARNING: "warning",
              ir.DiagnosticSeverity.NOTE: "note", ir.DiagnosticSeverity.REMARK: "remark"}


@dataclasses.dataclass
class Diag:
    severity: str
    file: str | None
    line: int | None
    col: int | None
    message: str
    location: str


def file_line_col(loc: ir.Location) -> tuple[str, int, int] | None:
    """The source position inside name/call-site/fused locations, if any."""
    if loc.is_a_file():
        return loc.filename, loc.start_line, loc.start_col
    if loc.is_a_name():
        return file_line_col(loc.child_loc)
    if loc.is_a_callsite():
        return file_line_col(loc.callee)
    if loc.is_a_fused():
        for child in loc.locations:
            found = file_line_col(child)
            if found:
                return found
    return None


def _records(d, out: list[Diag]) -> None:
    pos = file_line_col(d.location)
    out.append(Diag(SEVERITIES.get(d.severity, "error"), *(pos or (None, None, None)), d.message,
                    str(d.location)))
    for note in d.notes:
        _records(note, out)


class Collector:
    """Gathers every diagnostic of a context, including those inside MLIRErrors."""

    def __init__(self, ctx: ir.Context):
        self.diags: list[Diag] = []
        self._handler = ctx.attach_diagnostic_handler(self._handle)

    def _handle(self, d) -> bool:
        _records(d, self.diags)
        return True

    def add_error(self, e: Exception) -> None:
        # Some diagnostics reach both the handler and the MLIRError: keep one.
        fresh: list[Diag] = []
        for d in getattr(e, "error_diagnostics", []):
            _records(d, fresh)
        self.diags.extend(d for d in fresh if d not in self.diags)

    def detach(self) -> None:
        self._handler.detach()

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diags)

    @contextlib.contextmanager
    def catching(self):
        """Run a block whose MLIRError is recorded here instead of raised."""
        try:
            yield
        except ir.MLIRError as e:
            self.add_error(e)
            if not any(d.severity == "error" for d in self.diags):
                self.diags.append(Diag("error", None, None, None, str(e).splitlines()[0], "unknown"))


def format_diag(d: Diag, display_name: str, source_lines: list[str] | None = None) -> str:
    """`file:line:col: error: message`, with the source line and a caret."""
    if d.line is None:
        return f"{display_name}: {d.severity}: {d.message}"
    name = display_name if d.file in ("-", "", None) else d.file
    text = f"{name}:{d.line}:{d.col}: {d.severity}: {d.message}"
    if source_lines and (d.file in ("-", "", None) or d.file == display_name) and 0 < d.line <= len(source_lines):
        # Bytes that are not UTF-8 (decoded with errors="surrogateescape") print as U+FFFD.
        src = source_lines[d.line - 1].rstrip("\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        text += f"\n{src}\n{' ' * max(d.col - 1, 0)}^"
    return text


def print_diags(diags: list[Diag], display_name: str, source: str, file=None) -> None:
    lines = source.splitlines()
    for d in diags:
        if d.message.startswith("see current operation"):
            continue                 # MLIR's own op dump: noise next to a source caret
        print(format_diag(d, display_name, lines), file=file or sys.stderr)


_EXPECTED = re.compile(
    r"expected-(error|warning|note|remark)\s*(?:@(above|below|[+-]\d+))?\s*\{\{(.*?)\}\}")


@dataclasses.dataclass
class Expected:
    severity: str
    line: int
    text: str
    seen: bool = False


def expectations(source: str) -> list[Expected]:
    found = []
    for number, line in enumerate(source.splitlines(), start=1):
        for m in _EXPECTED.finditer(line):
            where = m.group(2)
            target = number
            if where == "above":
                target = number - 1
            elif where == "below":
                target = number + 1
            elif where:
                target = number + int(where)
            found.append(Expected(m.group(1), target, m.group(3)))
    return found


def check_expected(diags: list[Diag], source: str, display_name: str) -> list[str]:
    """mlir-opt -verify-diagnostics: the problems found, empty when all match."""
    expected = expectations(source)
    problems = []
    for d in diags:
        if d.message.startswith("see current operation"):
            continue
        match = next((e for e in expected if not e.seen and e.severity == d.severity and e.line == d.line
                      and e.text in d.message), None)
        if match:
            match.seen = True
        else:
            where = f"{display_name}:{d.line}:{d.col}" if d.line else display_name
            problems.append(f"{where}: error: unexpected {d.severity}: {d.message}")
    for e in expected:
        if not e.seen:
            problems.append(f"{display_name}:{e.line}: error: expected {e.severity} \"{e.text}\" was not produced")
    return problems

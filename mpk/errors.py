"""The line between the user's mistakes and mpk's bugs.

An input error is a problem with what the caller gave: an argument, or the
contents of a file (a bundle, a config, weights, MLIR). Its message says what
is wrong and where (the file, and the line and column where there is one).
The `mpk` commands print it as one line, `mpk <cmd>: error: <message>`, and
exit with 1; the Python API raises it as it is (a ValueError). Every other
exception is a bug: the commands show its traceback and ask for a report.

Input errors are `InputError`s and, so that modules need not import this one,
every ValueError subclass that mpk defines (BundleError, ConfigError,
TokenizerError, ...): raising one is a statement that its message is for the
user. A plain ValueError (from numpy, say) is not one: an input that reaches
it unchecked is a bug of the check. OSErrors (a file that is missing or not
readable) are the user's too.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: the message says what and where; no traceback needed."""


def is_input_error(error: BaseException) -> bool:
    """Whether `error` is the input's fault (see the module docstring), not a bug."""
    if isinstance(error, (InputError, OSError)):
        return True
    return isinstance(error, ValueError) and type(error).__module__.split(".")[0] == "mpk"


def describe(error: BaseException) -> str:
    """The one-line message of an input error (an OSError names its file)."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def read_text(path: Path) -> str:
    """A text file's contents; one that is not UTF-8 text is an InputError naming it."""
    data = Path(path).read_bytes()
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x})") from None


def parse_mlir(path: Path, context, check=None):
    """Parse an MLIR file in `context`; malformed IR (or IR that fails `check(module)`,
    which reports at its ops' locations) is an InputError with MLIR's diagnostics at
    `file:line:col`, the source line and a caret under it."""
    module, diagnostics = checked_parse(read_text(path), str(path), context, check)
    if module is None:
        raise InputError(f"{path}: invalid IR:\n" + "\n".join(diagnostics))
    return module


def checked_parse(text: str, display_name: str, context, check=None):
    """(module, []) for MLIR `text` that parses (mpk.dialects.parse: what would crash
    MLIR is refused first) and passes `check(module)`, else (None, its diagnostics
    formatted at `display_name:line:col` with the source line and a caret)."""
    from mpk import dialects
    from mpk.diagnostics import Collector, format_diag

    collector = Collector(context)
    module = None
    try:
        with context, collector.catching():
            module = dialects.parse(text)
            if module is not None and check is not None:
                check(module)
    finally:
        collector.detach()
    if collector.has_errors or module is None:
        lines = text.splitlines()
        return None, [format_diag(d, display_name, lines) for d in collector.diags
                      if not d.message.startswith("see current operation")]
    return module, []

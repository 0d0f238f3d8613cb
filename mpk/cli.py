"""The `mpk` command: `mpk <subcommand> ...`; subcommands live in mpk/commands/."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from mpk import commands


class UserError(Exception):
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
    except UserError as e:
        print(f"mpk {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # `python -m mpk` is the way (mpk/__main__.py); run as a script,
    from mpk.cli import main  # this module's UserError would not be the one commands raise
    sys.exit(main())

"""`mpk` subcommands: one module each, with `add_arguments(parser)` and `run(args) -> int`.

The module's docstring first line is the command's help; the command name is
the module name without a trailing underscore (`import_` -> `mpk import`).
"""

"""mpk passes: one file per pass in this folder, found by its pipeline name.

A pass is a dataclass subclass of `ModulePass` with a `name` (its pipeline
name, e.g. "mpk-partition") and its options as typed fields (`num_sms: int`
is the option `num-sms`). Dropping a file that defines one here registers it:
`passes()` imports every module of this package. Files must not import torch
at module level, so `mpk-opt` starts fast.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
from typing import ClassVar

from mlir import ir

from . import analyses

_REGISTRY: dict[str, type["ModulePass"]] = {}


class PassFailure(Exception):
    """Raised by `ModulePass.fail` after emitting its diagnostic."""


@dataclasses.dataclass
class ModulePass:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # A pass that leaves the task graph as it was (reads it, or only adds what the
    # analyses do not look at) keeps the cached analyses (lowering/analyses.py).
    preserves_analyses: ClassVar[bool] = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            _REGISTRY[cls.name] = cls

    def run(self, module: ir.Operation) -> None:
        raise NotImplementedError

    # Diagnostics at the op's location, like a C++ pass's op->emitError().
    def error(self, op, message: str) -> None:
        _location(op).emit_error(message)
        self.failed = True

    def fail(self, op, message: str):
        self.error(op, message)
        raise PassFailure(message)

    def __call__(self, op: ir.Operation, pass_) -> None:
        self.failed = False
        try:
            # Passes build attributes and ops: give them the module's context and location.
            with op.context, op.location:
                self.run(op)
        except PassFailure:
            self.failed = True
        finally:
            if not self.preserves_analyses:
                analyses.invalidate(op)
        if self.failed:
            pass_.signal_pass_failure()

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls)]

    @classmethod
    def option_name(cls, field: dataclasses.Field) -> str:
        return field.name.replace("_", "-")

    def pipeline_element(self) -> str:
        opts = " ".join(f"{self.option_name(f)}={_format(getattr(self, f.name))}"
                        for f in self.options() if getattr(self, f.name) != f.default)
        return self.name + ("{" + opts + "}" if opts else "")


def defining_op(value: ir.Value) -> ir.Operation | None:
    """The op that produced `value`, or None for a block argument."""
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def _location(op) -> ir.Location:
    if isinstance(op, ir.Location):
        return op
    if isinstance(op, ir.Module):
        op = op.operation
    return op.location


def _format(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def passes() -> dict[str, type[ModulePass]]:
    """All registered passes by pipeline name (imports this package's modules)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return dict(sorted(_REGISTRY.items()))


def lookup(name: str) -> type[ModulePass] | None:
    """The pass registered as `name`: first from its own file (mpk-foo -> mpk_foo.py)."""
    if name not in _REGISTRY:
        module = name.replace("-", "_")
        if module.isidentifier() and importlib.util.find_spec(f"{__name__}.{module}") is not None:
            importlib.import_module(f"{__name__}.{module}")
    return _REGISTRY.get(name)

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

from mlir import ir, rewrite

from . import analyses

_REGISTRY: dict[str, type["ModulePass"]] = {}
# The graph fusions, in the order they run before mpk-partition (mpk/driver.py: task_stages;
# lit's %fusions).
FUSIONS = ("mpk-fuse-residual", "mpk-fuse-gate-up", "mpk-fuse-norm", "mpk-fuse-silu", "mpk-fuse-rope-append")
# On a graph op: the tile its task group takes (the cost model's choice otherwise);
# the fusion passes leave such an op as it is.
TILE_ATTR = "mpk.tile"
# On an rmsnorm or silu_mul: computed by its users' tasks, as they stage their x
# (mpk-fuse-norm, mpk-fuse-silu); mpk-partition makes no group of it.
IN_USERS_ATTR = "mpk.in_users"


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

    @staticmethod
    def option_default(field: dataclasses.Field):
        return field.default_factory() if field.default is dataclasses.MISSING else field.default

    def pipeline_element(self) -> str:
        opts = " ".join(f"{self.option_name(f)}={_format(getattr(self, f.name))}"
                        for f in self.options() if getattr(self, f.name) != self.option_default(f))
        return self.name + ("{" + opts + "}" if opts else "")


@dataclasses.dataclass
class GraphRewrite(ModulePass):
    """A pass of rewrite patterns over graph IR (before mpk-partition), applied by
    upstream's greedy driver (`mlir.rewrite`): a subclass lists its patterns as
    (root op name, callable) pairs; a callable gets the op and the rewriter and
    returns True where it does not apply (the driver's convention)."""

    def patterns(self) -> list[tuple[str, object]]:
        raise NotImplementedError

    def run(self, module: ir.Operation) -> None:
        for op in module.regions[0].blocks[0].operations:
            if op.operation.name == "mpk.kernel":
                self.fail(op, f"{self.name} rewrites graph IR: run it before 'mpk-partition'")
        patterns = rewrite.RewritePatternSet()
        for root, pattern in self.patterns():
            patterns.add(root, pattern)
        config = rewrite.GreedyRewriteConfig()
        config.enable_folding = False       # graph ops have no folders; the driver only matches
        config.region_simplification_level = rewrite.GreedySimplifyRegionLevel.DISABLED
        config.use_top_down_traversal = True
        rewrite.apply_patterns_and_fold_greedily(module, patterns.freeze(), config)


def only_use(value: ir.Value, name: str) -> ir.Operation | None:
    """The op named `name` that produced `value`, when the value has no other user."""
    op = defining_op(value)
    return op if op is not None and op.name == name and len(list(value.uses)) == 1 else None


def create(at: ir.Operation, name: str, operands, results, attributes: dict) -> ir.Operation:
    """An op built from its parts, just before `at` and with its location."""
    with ir.InsertionPoint(at), at.location:
        return ir.Operation.create(name, results=list(results), operands=list(operands), attributes=attributes)


def attributes(op: ir.Operation, **extra) -> dict:
    """The op's attributes by name (with `extra` ones added or replaced)."""
    names = [a if isinstance(a, str) else a.name for a in op.attributes]
    return {**{n: op.attributes[n] for n in names}, **extra}


def shape(value: ir.Value) -> list[int]:
    """The shape of a ranked tensor value."""
    return list(ir.RankedTensorType(value.type).shape)


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

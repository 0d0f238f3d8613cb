"""Device code of the task kinds: the kind's `emit` (lowering/kinds/<kind>.py) calls
its module here.

`emit(e, g, task, buffers)` builds the body of the device function that runs
task number `task` (an i32, row-major in `g.grid`) of every group equal to
`g` up to its buffers' names: static shapes, tile and params are known, the
buffer addresses arrive as `View`s in the order inputs..., outputs.... A kind
that cannot handle a group raises `Unsupported`, which `mpk-lower-tasks`
reports at the group's location.

A kind whose tasks copy tiles with the Hopper tensor-memory accelerator
defines `tensor_maps(g, threads)`: the TMA descriptors (`TensorMap`: which buffer,
which box) its tasks need. `mpk-lower-tasks` records them on the group, the
runtime encodes each for its buffer's address at load time (cuTensorMapEncodeTiled),
and the task function gets their addresses as `e.tensor_maps`.
"""

from __future__ import annotations

import dataclasses

from mlir import ir


class Unsupported(Exception):
    """A group this lowering cannot build; the message names what and why."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Unsupported(message)


IO_ROLES = ("tokens", "positions", "next_tokens")


@dataclasses.dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    element: ir.Type
    space: str  # workspace | weight | state | io
    per_step: bool = False
    flagged: bool = False  # mpk-data-flags: read and written through a FlaggedView

    @property
    def role(self) -> str | None:
        """`tokens`, `positions` or `next_tokens` for the io buffers that
        `mpk-partition` names so (a dotted prefix is allowed)."""
        last = self.name.rsplit(".", 1)[-1]
        return last if self.space == "io" and last in IO_ROLES else None

    @property
    def readonly(self) -> bool:
        """Weights are never written during a launch: their loads may use the
        non-coherent read-only path."""
        return self.space == "weight"


@dataclasses.dataclass(frozen=True)
class Group:
    """One `mpk.tasks` op, as its lowering sees it."""
    op: ir.Operation
    name: str
    kind: str
    grid: tuple[int, ...]
    tile: tuple[int, ...]
    domain: tuple[int, ...]
    inputs: tuple[Buffer, ...]
    outputs: tuple[Buffer, ...]
    params: dict  # plain Python values (taskir.python_value)

    @property
    def buffers(self) -> tuple[Buffer, ...]:
        return self.inputs + self.outputs

    @property
    def flagged(self) -> bool:
        """Its task function takes this step's flag (mpk-data-flags) after its shared memory."""
        return any(b.flagged for b in self.buffers)

    @property
    def typed(self):
        """The group's params as its kind's `Params` (lowering/kinds)."""
        from mpk.lowering import kinds
        return kinds.get(self.kind).typed(self.params)

    def param(self, name: str, default=None):
        if name not in self.params:
            require(default is not None, f"'{self.kind}' needs the param '{name}'")
            return default
        return self.params[name]

    def key(self) -> tuple:
        """Groups with equal keys share one device function and one `fn`."""
        return (self.kind, self.grid, self.tile, self.domain,
                tuple((b.shape, str(b.element), b.readonly, b.per_step, b.role, b.flagged)
                      for b in self.buffers),
                tuple(sorted((k, str(v)) for k, v in self.params.items())))


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """A TMA descriptor of a 2-D bf16 buffer of the group, copied in boxes of `box`
    (rows, columns), 128-byte swizzled (a row of the box is 128 bytes)."""
    buffer: int                 # position in the group's (inputs..., outputs...)
    box: tuple[int, int]

    def attribute(self) -> ir.Attribute:
        return ir.DenseI64ArrayAttr.get([self.buffer, *self.box])

"""Where a bundle runs: the GPU (mpk.runtime.loader.Session; a tensor-parallel
bundle's ranks: mpk.runtime.ranks.RankSet) or the CPU task interpreter over the
bundle's tasks.mlir (mpk.interp.tasks; every rank of a tensor-parallel bundle
together). All offer `write`, `read`, `launch(steps)` and `steps_per_launch`,
so `mpk.runtime.loader.generate` drives any of them.
"""

from __future__ import annotations

import numpy as np

from mpk.errors import parse_mlir
from mpk.runtime import bundle as bundles
from mpk.runtime.loader import LoaderError, Session, as_device_array, as_float32
from mpk.runtime.weights import check_weights, weight_array

BACKENDS = ("gpu", "interp")


def _check_task_ir(module) -> None:
    """A bundle's tasks.mlir is verified, scheduled task IR (an edited one might not be)."""
    from mpk.dialects.verify import verify
    if verify(module) and not {"mpk.tasks", "mpk.schedule"} <= {op.operation.name for op in module.body.operations}:
        module.operation.location.emit_error("expected scheduled task IR: mpk.tasks groups and an mpk.schedule")


class InterpRunner:
    """The task interpreter behind the Session interface (one launch = one run_tasks call).

    A bundle's prefill program gets a runner of its own, `prefill`, sharing this
    one's weights and KV caches (the dicts themselves)."""

    def __init__(self, bundle: bundles.Bundle, seed: int = 0, shared: "InterpRunner | None" = None):
        from mpk import dialects
        self.bundle, self.seed = bundle, seed
        self.steps_per_launch = int(bundle.kernel.get("steps", 1))
        path = bundle.path / bundles.TASK_IR
        if not path.is_file():
            raise LoaderError(f"{bundle.path} has no {bundles.TASK_IR} for the interpreter")
        self.context = dialects.context()
        self.module = parse_mlir(path, self.context, _check_task_ir)
        self.on_task = None          # called after each task run (progress)
        self.weights: dict[str, np.ndarray] = shared.weights if shared else {}
        self.states = shared.states if shared else [{     # each rank's (its slice of every KV cache)
            b.get("weight_name") or b["name"]: np.zeros(b["shape"], np.float32)
            for b in bundle.plan["buffers"] if b["space"] == "state"} for _ in range(bundle.tp)]
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self.prefill = (InterpRunner(bundle.prefill, seed, shared=self)
                        if shared is None and bundle.prefill is not None else None)

    def bind_weights(self, weights: dict, strict: bool = True) -> None:
        """As Session.bind_weights: every weight checked before any is bound, then cast to
        the bundle's dtype (the values the GPU would hold) and widened to float32."""
        specs = self.bundle.weights()
        names = check_weights(weights, specs, strict, self.weights)
        self.weights.update({n: as_float32(weight_array(n, weights[n], specs[n])) for n in names})

    def write(self, name: str, value) -> None:
        b = self.bundle.buffer(name)
        self.inputs[b["name"]] = as_device_array(value, b["dtype"], b["shape"])

    def launch(self, steps: int | None = None) -> None:
        from mpk.interp.tasks import TaskInterpreterError, run_tasks_ranks
        try:
            with self.context:
                self.outputs = run_tasks_ranks(self.module, self.weights, self.states, self.inputs,
                                               steps=steps or self.steps_per_launch, seed=self.seed, queues=True,
                                               on_task=self.on_task)[0]      # every rank has the same
        except TaskInterpreterError as e:
            raise LoaderError(f"task interpreter: {e}") from None

    def read(self, name: str) -> np.ndarray:
        b = self.bundle.buffer(name)
        if b["name"] not in self.outputs:
            raise LoaderError(f"the interpreter produced no '{name}'")
        return np.asarray(self.outputs[b["name"]])

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_backend(bundle: bundles.Bundle, kind: str, **options):
    if kind == "gpu" and bundle.tp > 1:
        from mpk.runtime.ranks import DistributedRank, RankSet, launched_by_torchrun
        return DistributedRank(bundle, **options) if launched_by_torchrun() else RankSet(bundle, **options)
    if kind == "gpu":
        return Session(bundle, **options)
    if kind == "interp":
        return InterpRunner(bundle)
    raise LoaderError(f"unknown backend {kind!r} (known: {', '.join(BACKENDS)})")

"""The memory-bandwidth floor of a decode step (bench/README.md: the floor).

At small batch a decode step is bound by the bytes it must read, so the
fastest it can be is `step_bytes(...).total / bandwidth`. `step_bytes` counts
them from a bundle's plan (the one count: `mpk demo` and bench/decode.py use
it); the bandwidths are measured on the machine that runs it: the GPU's with
a read stream on its SMs (torch.sum), the host's (for the CPU task
interpreter) with a one-core numpy read stream.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class StepBytes:
    """What one decode step must read from memory, in bytes."""
    weights: int
    kv: int

    @property
    def total(self) -> int:
        return self.weights + self.kv

    def as_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "kv": self.kv, "total": self.total}


def step_bytes(plan: dict, position: float) -> StepBytes:
    """Bytes one decode step reads at KV position `position` (the row it appends;
    a step at context ctx has position ctx - 1), from a bundle's plan.

    Every weight once (an embedding table that only the gather reads: one row
    per sequence), of each KV cache the rows 0..position of every sequence, and
    any other state that a task reads (none today) whole, with the weights.
    """
    from mpk.runtime.bundle import BundleError
    if any("read_as" not in b for b in plan["buffers"]):
        raise BundleError("the bundle's plan does not say how its buffers are read (an older mpk "
                          "wrote it): compile it again")
    read = {name for g in plan["groups"] for name in g["inputs"]}
    weights, kv, seen = 0, 0, set()
    for b in plan["buffers"]:       # how its readers read it: the plan says (lowering/kinds: kv_caches, gathers)
        key = b.get("weight_name") or b["name"]
        if b["name"] not in read or b["space"] not in ("weight", "state") or key in seen:
            continue
        seen.add(key)
        if b["read_as"] == "kv_cache":
            rows = b["shape"][1]
            kv += round(b["nbytes"] * min(position + 1, rows) / rows)
        elif b["read_as"] == "gathered":             # one row per sequence
            weights += plan["batch"] * b["nbytes"] // b["shape"][0]
        else:
            weights += b["nbytes"]
    return StepBytes(int(weights), int(kv))


def host_read_bandwidth(nbytes: int = 128 << 20, repeats: int = 5) -> float:
    """Bytes/s one core reads from host memory (numpy reduction over a large array, best of `repeats`)."""
    data = np.ones(nbytes // 8, np.int64)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.add.reduce(data)
        best = min(best, time.perf_counter() - start)
    return nbytes / best


def device_bandwidth(gib: int = 4, warmup: int = 3, repeats: int = 20) -> float:
    """Bytes/s the current GPU's SMs read from its memory, as a decode step reads its
    weights: torch.sum over `gib` GiB of bf16, median of `repeats` timed with CUDA events
    after `warmup` untimed (the one probe: `mpk demo`, bench.decode and bench.hop use it;
    torch is needed). On an H200 a device-to-device copy (read + written bytes) measured
    from 1% above to 11% below it from one call to the next; this varied by under 1%."""
    import torch
    data = torch.empty(gib * 2**30 // 2, dtype=torch.bfloat16, device="cuda").normal_()
    try:
        for _ in range(warmup):
            data.sum()
        times = []
        for _ in range(repeats):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            data.sum()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1e3)
    finally:
        del data
        torch.cuda.empty_cache()
    return gib * 2**30 / float(np.median(times))

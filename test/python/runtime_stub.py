"""The stub model of the runtime tests: scheduled task IR and a hand-written
dispatch (test/runtime/*.mlir), compiled into a bundle on this machine.

    b[s * 4 + t] == 36 * (s + 1) + t  for step s, consumer task t

when every dependency holds (see test/runtime/stub_dispatch.mlir).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

RUNTIME_TESTS = Path(__file__).resolve().parents[1] / "runtime"
STEPS = 3
# Where the GPU machine finds bundles built here (it has no MLIR to build them).
PREBUILT = Path(os.environ.get("MPK_TEST_BUNDLES", Path(__file__).resolve().parents[2] / ".bundles"))


def expected_b(steps: int = STEPS) -> np.ndarray:
    return np.array([[36 * (s + 1) + t for t in range(4)] for s in range(steps)], np.int32)


def stub_ptx() -> str:
    from mlir import ir
    from mpk.lowering.mpk_lower_tasks import lower_to_ptx
    with ir.Context():
        module = ir.Module.parse((RUNTIME_TESTS / "stub_dispatch.mlir").read_text())
        return lower_to_ptx(module)


def stub_task_module(num_sms: int = 132):
    from mlir import ir
    from mpk import dialects
    text = (RUNTIME_TESTS / "stub_tasks.mlir").read_text().replace("num_sms = 132", f"num_sms = {num_sms}")
    with dialects.context():
        return ir.Module.parse(text)


def build_stub_bundle(out: Path, num_sms: int = 132) -> Path:
    from mpk import driver
    options = driver.Options(num_sms=num_sms, steps=STEPS, threads=128, smem_bytes=0)
    return driver.compile_task_module(stub_task_module(num_sms), options, out, task_ptx=stub_ptx())


if __name__ == "__main__":  # build the prebuilt bundles the GPU machine's tests use
    import sys
    for sms in [int(a) for a in sys.argv[1:]] or [132]:
        print(build_stub_bundle(PREBUILT / f"stub-{sms}", sms))

"""The persistent runtime on a real GPU, with the stub task code
(runtime_stub.py): results, multi-step launches, profiling, and a broken
dependency table that must end in a timeout naming the task, not a hang.

Skipped without a GPU. The GPU machine has no MLIR, so there the stub bundle
comes prebuilt from $MPK_TEST_BUNDLES (default .bundles/) as `stub-<SMs>`;
`python test/python/runtime_stub.py` builds it.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

import runtime_stub
from mpk.runtime import bundle, loader, tables

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpu():
    if loader.gpu_count() == 0:
        pytest.skip("no CUDA GPU (cuInit/cuDeviceGetCount found none)")
    return loader.device_properties(0)


@pytest.fixture(scope="module")
def stub_path(gpu, tmp_path_factory):
    prebuilt = runtime_stub.PREBUILT / f"stub-{gpu['num_sms']}"
    if prebuilt.is_dir():
        return prebuilt
    pytest.importorskip("mlir", reason=f"no prebuilt {prebuilt} and no MLIR to build it")
    return runtime_stub.build_stub_bundle(tmp_path_factory.mktemp("stub") / "stub.mpk", gpu["num_sms"])


def copy_bundle(path, tmp_path):
    return shutil.copytree(path, tmp_path / "copy.mpk")


def test_stub_runs_all_steps(stub_path):
    with loader.Session(bundle.read(stub_path)) as session:
        for _ in range(2):  # counters start over with every launch
            session.write("b", np.zeros(4, np.int32))
            session.launch()
            np.testing.assert_array_equal(session.read("b"), runtime_stub.expected_b())


def test_fewer_steps_than_the_bundle_holds(stub_path):
    with loader.Session(bundle.read(stub_path)) as session:
        session.launch(steps=2)
        np.testing.assert_array_equal(session.read("b")[:2], runtime_stub.expected_b(2))


def test_profile_shows_consumers_after_producers(stub_path):
    with loader.Session(bundle.read(stub_path), profile=True) as session:
        session.launch()
        times = session.profile_ns().astype(np.int64)          # [steps, 12, 2]
    assert np.all(times[..., 0] > 0) and np.all(times[..., 1] >= times[..., 0])
    producers, consumers = times[:, :8], times[:, 8:]
    # A consumer starts only after the last producer of its step has finished.
    assert np.all(consumers[:, :, 0].min(axis=1) >= producers[:, :, 1].max(axis=1))
    # And the next step's producers only after every consumer of this one.
    assert np.all(producers[1:, :, 0].min(axis=1) >= consumers[:-1, :, 1].max(axis=1))


def test_broken_dependency_times_out_naming_the_task(stub_path, tmp_path):
    broken = copy_bundle(stub_path, tmp_path)
    t = tables.load(broken / bundle.TABLES)
    consume = slice(8, 12)
    t["tasks"][consume, tables.task_field("wait_triggers")] = 9   # only 8 producers exist
    tables.save(broken / bundle.TABLES, t)
    start = time.monotonic()
    with loader.Session(bundle.read(broken), timeout_s=0.2) as session:
        with pytest.raises(loader.RuntimeTimeout) as failure:
            session.launch()
    message = str(failure.value)
    print(message)
    assert time.monotonic() - start < 20
    assert "of group 'consume'" in message and "event 'a_ready'[0]" in message
    assert "counter is 8, needs 9" in message and "step 0" in message


def test_refuses_a_bundle_for_another_sm_count(stub_path, tmp_path, gpu):
    other = copy_bundle(stub_path, tmp_path)
    plan = json.loads((other / bundle.PLAN).read_text())
    plan["kernel"]["num_sms"] = gpu["num_sms"] - 1
    (other / bundle.PLAN).write_text(json.dumps(plan))
    with pytest.raises(loader.LoaderError, match=f"scheduled for {gpu['num_sms'] - 1} SMs"):
        loader.Session(bundle.read(other))


def test_refuses_a_bundle_for_another_arch(stub_path, tmp_path):
    other = copy_bundle(stub_path, tmp_path)
    plan = json.loads((other / bundle.PLAN).read_text())
    plan["kernel"]["arch"] = "sm_80"
    (other / bundle.PLAN).write_text(json.dumps(plan))
    with pytest.raises(loader.LoaderError, match="compiled for sm_80"):
        loader.Session(bundle.read(other))

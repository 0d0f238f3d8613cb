"""bench.hop, the hop microbenchmark: its cubin builds on the CPU (NVRTC, nvJitLink)
with every kernel in it; on a GPU its numbers are in sane ranges.

The GPU machine may have no NVRTC: there the cubin comes prebuilt from
.bundles/bench/hop.cubin (`python -m bench.build --hop-only`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))    # bench/ is not an installed package
from bench import hop  # noqa: E402
from mpk.runtime import build, cubin, loader  # noqa: E402


def _skip_without_toolkit() -> None:
    try:
        build.toolkit()
    except build.BuildError as e:  # pragma: no cover - depends on the wheels installed
        pytest.skip(str(e))


def test_the_cubin_has_every_kernel(tmp_path):
    _skip_without_toolkit()
    path = hop.build(tmp_path / "bench" / "hop.cubin")
    functions = cubin.functions(path.read_bytes())
    assert {name: functions.get(name, 0) > 0 for name in hop.KERNELS} == {name: True for name in hop.KERNELS}


def test_the_prefetch_ring_holds_two_stages_or_what_fits():
    assert hop.ring_geometry(32 << 10, 230144) == (16 << 10, 4)      # stage s+1 in flight while s runs
    assert hop.ring_geometry(192 << 10, 230144) == (16 << 10, 14)    # 224 KB of the 227 KB
    assert hop.ring_geometry(8 << 10, 230144) == (8 << 10, 2)


@pytest.mark.gpu
def test_measure_gives_sane_numbers(tmp_path):
    if loader.gpu_count() == 0:
        pytest.skip("no CUDA GPU (cuInit/cuDeviceGetCount found none)")
    path = REPO / hop.DEFAULT_CUBIN
    if not path.is_file():
        _skip_without_toolkit()
        path = hop.build(tmp_path / "hop.cubin")
    result = hop.measure(path, stages=50, rounds=200)
    json.dumps(result)
    assert result["sms"] == loader.device_properties(0)["num_sms"]
    assert 50 <= result["flag_one_way_ns"] <= 5000
    assert result["flag_sms"][0] != result["flag_sms"][1]
    assert [(r["bytes_per_cta"], r["prefetch"]) for r in result["rows"]] == \
        [(size, prefetch) for size in hop.BYTES_PER_CTA for prefetch in (False, True)]
    for row in result["rows"]:
        assert 0 < row["fraction_of_bandwidth"] <= 1.2, row
    assert result["stage_overhead_us"] < 20

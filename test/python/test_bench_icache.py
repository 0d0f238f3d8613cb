"""bench.icache, the instruction-cache probe: each generated function is the size
it claims (on the CPU: NVRTC, nvJitLink); on a GPU every call is timed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))    # bench/ is not an installed package
from bench import icache  # noqa: E402
from mpk.runtime import cubin, loader  # noqa: E402
from test_bench_hop import _skip_without_toolkit  # noqa: E402


def test_each_function_holds_its_kilobytes_of_code(tmp_path):
    _skip_without_toolkit()
    functions = cubin.functions(icache.build(tmp_path / "icache.cubin", functions=3, kb=2).read_bytes())
    assert functions.get("icache_probe", 0) > 0
    sizes = {name.rsplit("$", 1)[-1]: size for name, size in functions.items()}   # LTO names them $icache_probe$f0..
    for f in range(3):   # the IMADs, and a few instructions around them
        assert 2048 <= sizes[f"f{f}"] <= 2048 + 512, functions


@pytest.mark.gpu
def test_measure_times_every_call(tmp_path):
    if loader.gpu_count() == 0:
        pytest.skip("no CUDA GPU (cuInit/cuDeviceGetCount found none)")
    path = REPO / icache.DEFAULT_CUBIN
    if not path.is_file():    # the GPU machine may have no NVRTC: `python -m bench.icache --build` beforehand
        _skip_without_toolkit()
        path = icache.build(tmp_path / "icache.cubin")
    result = icache.measure(path, sweep=(1, 4), rounds=4)
    json.dumps(result)
    assert [row["functions"] for row in result["rows"]] == [1, 4]
    for row in result["rows"]:   # 256 IMADs: at least a cycle each, at most ~100 us
        assert all(256 <= cycles < 2e5 for cycles in row["cycles_per_call"].values()), row
    assert icache.table(result).count("\n") == 3

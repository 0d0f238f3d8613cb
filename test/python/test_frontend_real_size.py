"""Real-size import: qwen3-8b's decode step must import in under 60 s and 4 GB
peak memory (weights are never materialized). Measured in a fresh process."""

from __future__ import annotations

import resource
import subprocess
import sys
import time

IMPORT_QWEN3_8B = """
from mpk.frontend import import_model
from mpk.models import preset, weight_shapes
config = preset("qwen3-8b")
text = str(import_model(config, batch=1, max_seq=4096))
assert text.count('"mpk.weight"') == len(weight_shapes(config)), "one mpk.weight per tensor"
assert text.count('"mpk.attention"') == 36
"""


def test_qwen3_8b_import_time_and_peak_memory():
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT_QWEN3_8B], check=True)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # ru_maxrss is KiB
    print(f"qwen3-8b import: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB")
    assert seconds < 60
    assert peak_gb < 4

"""cmake/ builds the runtime ahead of time with nvcc, installs a CMake
package, and a consumer project device-links its task code against it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not (shutil.which("cmake") and shutil.which("nvcc")),
                                reason="needs cmake and nvcc")


def cmake(*args, cwd: Path):
    result = subprocess.run(["cmake", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"cmake {' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}"


def test_build_install_and_consume(tmp_path):
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    cmake("-S", ROOT / "cmake", "-B", build, "-DCMAKE_BUILD_TYPE=Release", cwd=tmp_path)
    cmake("--build", build, cwd=tmp_path)
    cmake("--install", build, "--prefix", prefix, cwd=tmp_path)
    assert (prefix / "lib" / "libmpk_runtime.a").is_file()
    assert (prefix / "include" / "mpk_runtime.h").is_file()

    consumer = tmp_path / "consumer"
    cmake("-S", ROOT / "test" / "cmake", "-B", consumer, f"-DCMAKE_PREFIX_PATH={prefix}", cwd=tmp_path)
    cmake("--build", consumer, cwd=tmp_path)
    assert (consumer / "consumer").is_file()

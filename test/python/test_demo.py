"""`mpk demo` on the CPU task interpreter: compiles the qwen3-demo preset into
--bundle, runs and checks it against PyTorch; a second run loads the same
bundle (how a machine without MLIR runs the demo). Checks the output format."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("mlir")
pytest.importorskip("torch")

from mpk.cli import main  # noqa: E402

LINES = [
    r"bundle: compiled in [\d.]+ s into \S+demo",
    r"model: qwen3, 4 layers, hidden 256, vocabulary 4096, bf16; batch 1, \d+ tasks per step on 132 workers, "
    r"16 steps per launch",
    r"running on the CPU task interpreter",
    r"prompt\[0\]: +\d+ \d+",
    r"generated\[0\]: +\d+ \d+ \d+",
    r"prefill: 2 prompt tokens per sequence through the prefill kernel \(chunks of 256\) in [\d.]+ ms, "
    r"host included",
    r"check against PyTorch \(float64, fed the same tokens\), per step:",
    r" +pos +rel\.err .* verdict",
    *[rf" +{p} +\S+ .* ok" for p in range(1, 4)],   # the prompt's last position, then the new tokens
    r"check ok: worst relative logit error [\d.e+-]+ \(tolerance [\d.e+-]+\).*",
    r"speed: [\d.]+ ms/step \(wall time of the 2 decode steps above\)",
    r"floor: [\d.]+ MB read per step / [\d.]+ GB/s \(host memory, one-core numpy read stream\) = [\d.]+ ms/step: "
    r"mpk runs at [\d.]+% of the bandwidth floor",
]


def test_demo_compiles_runs_and_checks(tmp_path, capsys):
    args = ["demo", "--backend", "interp", "--bundle", str(tmp_path / "demo"), "--prompt-len", "2",
            "--new-tokens", "3", "--seed", "4"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(LINES), "\n".join(lines)
    for pattern, line in zip(LINES, lines):
        assert re.fullmatch(pattern, line), (pattern, line)
    generated = lines[4]

    assert main(args) == 0                       # again: loads the bundle compiled above
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"bundle: \S+demo \(compiled earlier; delete it to recompile\)", lines[0])
    assert lines[4] == generated                 # same seed, same tokens


def test_demo_errors_are_one_line(capsys, tmp_path):
    assert main(["demo", "--new-tokens", "0"]) == 1
    assert capsys.readouterr().err == "mpk demo: error: --new-tokens must be positive, got 0\n"
    assert main(["demo", "--bundle", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"mpk demo: error: --bundle {tmp_path} exists and is not a bundle; "
                                       "give a new folder to compile into\n")

"""Single-group task modules, one per task kind (and a few shapes of linear
for bandwidth), for the lowering tests and the GPU kind tests.

`build(folder)` lowers all of them into one `gpu.module`, links the PTX with a
tiny CUDA test kernel (`run_group`: one CTA per task, calling `mpk_dispatch`)
into `kinds.cubin` and writes `kinds.json` (every group's fn, grid and
buffers), so the GPU machine needs neither MLIR nor NVRTC:

    python test/python/kind_cases.py .bundles/kinds
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

THREADS = 512
# The shared memory a task gets in each program (mpk-lower-tasks{smem-bytes}): the
# prefill kinds' GEMM ring needs more than a decode step's tasks.
SMEM_BYTES = {"decode": 96 * 1024, "prefill": 200 * 1024, "prefill512": 200 * 1024}
# Threads per CTA and the register cap of the link, per program (driver.Options.prefill):
# 256 threads may take 255 registers each (a warpgroup's 64 x 256 accumulators), 512 only
# 128; `prefill512` keeps the GEMM tile at 512 threads for comparison.
THREADS_OF = {"prefill": 256}
MAX_REGISTERS = {256: 255, 512: 128}
STAGED = "staged_weights"   # mpk-stage-weights' param


@dataclasses.dataclass
class Case:
    name: str
    kind: str
    grid: tuple
    tile: tuple
    inputs: list  # (buffer, shape, dtype, space); a name used twice is one buffer
    outputs: list
    params: dict = dataclasses.field(default_factory=dict)
    domain: tuple | None = None
    bench: bool = False  # timed for bandwidth, not checked
    program: str = "decode"   # the program whose shared-memory budget its kind is lowered for
    setup: dict = dataclasses.field(default_factory=dict)   # how the test fills inputs (test_gpu_kinds)

    def buffers(self):
        seen = {}
        for b in self.inputs + self.outputs:
            seen.setdefault(b[0], b)
        return list(seen.values())


def _theta_freqs(d, theta=1e6):
    return [theta ** (-2 * i / d) for i in range(d // 2)]


def cases() -> list[Case]:
    bf, i32 = "bf16", "i32"
    B = 2
    out = [
        Case("embedding", "embedding", (B, 4), (1, 256),
             [("ids", (B,), i32, "io"), ("table", (1000, 1024), bf, "weight")],
             [("out", (B, 1024), bf, "workspace")]),
        Case("rmsnorm", "rmsnorm", (B, 1), (1, 1024),
             [("x", (B, 1024), bf, "workspace"), ("w", (1024,), bf, "weight")],
             [("y", (B, 1024), bf, "workspace")], {"eps": 1e-6}),
        Case("rmsnorm_block", "rmsnorm", (B, 1), (1, 4096),
             [("x", (B, 4096), bf, "workspace"), ("w", (4096,), bf, "weight")],
             [("y", (B, 4096), bf, "workspace")], {"eps": 1e-6}),
        Case("qk_norm", "rmsnorm", (B, 4), (1, 512),
             [("x", (B, 2048), bf, "workspace"), ("w", (128,), bf, "weight")],
             [("y", (B, 2048), bf, "workspace")], {"eps": 1e-6}),
        Case("linear", "linear", (1, 24), (B, 128),
             [("x", (B, 1024), bf, "workspace"), ("w", (3072, 1024), bf, "weight")],
             [("y", (B, 3072), bf, "workspace")]),
        Case("linear_residual", "linear", (1, 16), (B, 64),
             [("x", (B, 3072), bf, "workspace"), ("w", (1024, 3072), bf, "weight"),
              ("r", (B, 1024), bf, "workspace")],
             [("y", (B, 1024), bf, "workspace")]),
        # Batch 2..8 runs on the tensor cores: K slices reduced in shared memory, ragged
        # row blocks, batch rows past B, x too large to stage.
        Case("linear_b8_mma", "linear", (1, 24), (8, 128),
             [("x", (8, 1024), bf, "workspace"), ("w", (3072, 1024), bf, "weight")],
             [("y", (8, 3072), bf, "workspace")]),
        Case("linear_b3_mma_residual", "linear", (1, 5), (3, 40),
             [("x", (3, 2048), bf, "workspace"), ("w", (200, 2048), bf, "weight"),
              ("r", (3, 200), bf, "workspace")],
             [("y", (3, 200), bf, "workspace")]),
        Case("linear_b8_mma_wide_k", "linear", (1, 2), (8, 512),
             [("x", (8, 12288), bf, "workspace"), ("w", (1024, 12288), bf, "weight")],
             [("y", (8, 1024), bf, "workspace")]),
        Case("linear_b1_residual", "linear", (1, 16), (1, 64),
             [("x", (1, 3072), bf, "workspace"), ("w", (1024, 3072), bf, "weight"),
              ("r", (1, 1024), bf, "workspace")],
             [("y", (1, 1024), bf, "workspace")]),
        # A layer norm fused into the linear: x normalized in shared memory by every task.
        Case("linear_norm", "linear", (1, 24), (1, 128),
             [("x", (1, 1024), bf, "workspace"), ("w", (3072, 1024), bf, "weight"),
              ("nw", (1024,), bf, "weight")],
             [("y", (1, 3072), bf, "workspace")], {"norm_eps": 1e-6}),
        Case("linear_b8_mma_norm", "linear", (1, 32), (8, 64),
             [("x", (8, 2048), bf, "workspace"), ("w", (2048, 2048), bf, "weight"),
              ("nw", (2048,), bf, "weight")],
             [("y", (8, 2048), bf, "workspace")], {"norm_eps": 1e-6}),
        # An MLP's gate and up and their silu_mul at decode rows (gate_up): both weights'
        # rows per task, x staged (and normalized) once; CUDA cores at batch 1, tensor
        # cores at 2..8, a ragged last tile.
        Case("gate_up_b1_norm", "gate_up", (1, 24), (1, 128),
             [("x", (1, 1024), bf, "workspace"), ("wg", (3072, 1024), bf, "weight"),
              ("wu", (3072, 1024), bf, "weight"), ("nw", (1024,), bf, "weight")],
             [("y", (1, 3072), bf, "workspace")], {"norm_eps": 1e-6}),
        Case("gate_up_b8_mma_norm", "gate_up", (1, 32), (8, 64),
             [("x", (8, 2048), bf, "workspace"), ("wg", (2048, 2048), bf, "weight"),
              ("wu", (2048, 2048), bf, "weight"), ("nw", (2048,), bf, "weight")],
             [("y", (8, 2048), bf, "workspace")], {"norm_eps": 1e-6}),
        # Qwen3-8B's gate_up tile at batch 8: 6 blocks of 16 rows, 2 K slices each.
        Case("gate_up_b8_mma_norm_96_rows", "gate_up", (1, 2), (8, 96),
             [("x", (8, 4096), bf, "workspace"), ("wg", (192, 4096), bf, "weight"),
              ("wu", (192, 4096), bf, "weight"), ("nw", (4096,), bf, "weight")],
             [("y", (8, 192), bf, "workspace")], {"norm_eps": 1e-6}),
        Case("gate_up_b3_ragged", "gate_up", (1, 16), (3, 64),
             [("x", (3, 512), bf, "workspace"), ("wg", (1000, 512), bf, "weight"),
              ("wu", (1000, 512), bf, "weight")],
             [("y", (3, 1000), bf, "workspace")]),
        # gate_up with both weights' rows in the weight ring (gate's, then up's): batch 1
        # with a ragged last tile (up's rows follow gate's fewer rows), tensor cores at 8.
        Case("gate_up_b1_staged_norm", "gate_up", (1, 42), (1, 24),
             [("x", (1, 1024), bf, "workspace"), ("wg", (1000, 1024), bf, "weight"),
              ("wu", (1000, 1024), bf, "weight"), ("nw", (1024,), bf, "weight")],
             [("y", (1, 1000), bf, "workspace")], {"norm_eps": 1e-6, STAGED: True}),
        Case("gate_up_b8_mma_staged", "gate_up", (1, 20), (8, 24),
             [("x", (8, 1024), bf, "workspace"), ("wg", (480, 1024), bf, "weight"),
              ("wu", (480, 1024), bf, "weight")],
             [("y", (8, 480), bf, "workspace")], {STAGED: True}),
        # A silu_mul fused into the linear (down_proj): x = silu(gate) * up, staged by every task.
        Case("linear_silu_gate", "linear", (1, 16), (1, 64),
             [("gate", (1, 3072), bf, "workspace"), ("w", (1024, 3072), bf, "weight"),
              ("r", (1, 1024), bf, "workspace"), ("up", (1, 3072), bf, "workspace")],
             [("y", (1, 1024), bf, "workspace")], {"silu_gate": True}),
        Case("linear_b8_mma_silu_gate", "linear", (1, 16), (8, 64),
             [("gate", (8, 3072), bf, "workspace"), ("w", (1024, 3072), bf, "weight"),
              ("r", (8, 1024), bf, "workspace"), ("up", (8, 3072), bf, "workspace")],
             [("y", (8, 1024), bf, "workspace")], {"silu_gate": True}),
        # Weights staged in shared memory (mpk-stage-weights): both paths, fused norm,
        # silu_gate and residual, ragged last tiles.
        Case("linear_staged_norm", "linear", (1, 42), (1, 24),
             [("x", (1, 1024), bf, "workspace"), ("w", (1000, 1024), bf, "weight"),
              ("nw", (1024,), bf, "weight")],
             [("y", (1, 1000), bf, "workspace")], {"norm_eps": 1e-6, STAGED: True}),
        Case("linear_staged_silu_gate", "linear", (1, 16), (1, 8),
             [("gate", (1, 3072), bf, "workspace"), ("w", (128, 3072), bf, "weight"),
              ("r", (1, 128), bf, "workspace"), ("up", (1, 3072), bf, "workspace")],
             [("y", (1, 128), bf, "workspace")], {"silu_gate": True, STAGED: True}),
        Case("linear_b8_mma_staged", "linear", (1, 24), (8, 24),
             [("x", (8, 1024), bf, "workspace"), ("w", (560, 1024), bf, "weight")],
             [("y", (8, 560), bf, "workspace")], {STAGED: True}),
        Case("linear_b3_mma_staged_residual", "linear", (1, 13), (3, 16),
             [("x", (3, 2048), bf, "workspace"), ("w", (200, 2048), bf, "weight"),
              ("r", (3, 200), bf, "workspace")],
             [("y", (3, 200), bf, "workspace")], {STAGED: True}),
        Case("linear_ragged", "linear", (1, 3), (1, 128),
             [("x", (1, 1000), bf, "workspace"), ("w", (300, 1000), bf, "weight")],
             [("y", (1, 300), bf, "workspace")]),
        Case("rope", "rope", (B, 4), (1, 512),
             [("x", (B, 2048), bf, "workspace"), ("pos", (B,), i32, "io")],
             [("y", (B, 2048), bf, "workspace")], {"inv_freq": _theta_freqs(128)}),
        Case("attention", "attention", (B, 8), (1, 256),
             [("q", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io")],
             [("o", (B, 2048), bf, "workspace")], {"head_dim": 128, "scale": 128 ** -0.5}),
        Case("attention_g4_d64", "attention", (1, 4), (1, 512),
             [("q", (1, 2048), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("o", (1, 2048), bf, "workspace")], {"head_dim": 64, "scale": 64 ** -0.5}),
        # Split-KV: 16 query heads over 8 KV heads of 128, 4 splits; partial rows of D + 4 floats.
        Case("attention_partial", "attention_partial", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4}),
        Case("attention_partial_g4_d64", "attention_partial", (1, 5, 8), (1, 1, 4 * 68),
             [("q", (1, 2048), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("partials", (1, 5, 32 * 68), "f32", "workspace")],
             {"head_dim": 64, "scale": 64 ** -0.5, "splits": 5}),
        # With the rope_append fused in (mpk-partition{rope-in-attention}): q, k, v before
        # QK-norm and rope; the split holding row pos appends it to the caches.
        Case("attention_partial_rope", "attention_partial", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("k", (B, 1024), bf, "workspace"),
              ("v", (B, 1024), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io"),
              ("qw", (128,), bf, "weight"), ("kw", (128,), bf, "weight")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4, "inv_freq": _theta_freqs(128), "eps": 1e-6}),
        Case("attention_partial_rope_g4_d64", "attention_partial", (1, 5, 8), (1, 1, 4 * 68),
             [("q", (1, 2048), bf, "workspace"), ("k", (1, 512), bf, "workspace"),
              ("v", (1, 512), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("partials", (1, 5, 32 * 68), "f32", "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state")],
             {"head_dim": 64, "scale": 64 ** -0.5, "splits": 5, "inv_freq": _theta_freqs(64)}),
        # The last split of each KV group merges (attention_split): the partials, the
        # merged output and the arrival counters (zero before, zero again after).
        Case("attention_split", "attention_split", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace"), ("o", (B, 2048), bf, "workspace"),
              ("arrivals", (B, 8), i32, "counters")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4}),
        Case("attention_split_rope_g4_d64", "attention_split", (1, 5, 8), (1, 1, 4 * 68),
             [("q", (1, 2048), bf, "workspace"), ("k", (1, 512), bf, "workspace"),
              ("v", (1, 512), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("partials", (1, 5, 32 * 68), "f32", "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("o", (1, 2048), bf, "workspace"),
              ("arrivals", (1, 8), i32, "counters")],
             {"head_dim": 64, "scale": 64 ** -0.5, "splits": 5, "inv_freq": _theta_freqs(64)}),
        # A short cache on the CUDA cores: splits of ~10 rows (some empty), where the row
        # the owner appends weighs about a tenth of its split, so a stale read fails.
        Case("attention_split_rope_short", "attention_split", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("k", (B, 1024), bf, "workspace"),
              ("v", (B, 1024), bf, "workspace"), ("kc", (B, 40, 1024), bf, "state"),
              ("vc", (B, 40, 1024), bf, "state"), ("pos", (B,), i32, "io"),
              ("qw", (128,), bf, "weight"), ("kw", (128,), bf, "weight")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace"), ("kc", (B, 40, 1024), bf, "state"),
              ("vc", (B, 40, 1024), bf, "state"), ("o", (B, 2048), bf, "workspace"),
              ("arrivals", (B, 8), i32, "counters")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4, "inv_freq": _theta_freqs(128), "eps": 1e-6}),
        # The other paths (`mma`, `mma_rows`): by default G = 4 takes the tensor cores
        # (blocks of 8 rows), G = 2 the CUDA cores.
        Case("attention_partial_mma", "attention_partial", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4, "mma": 1}),
        Case("attention_partial_mma16", "attention_partial", (B, 4, 8), (1, 1, 2 * 132),
             [("q", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io")],
             [("partials", (B, 4, 16 * 132), "f32", "workspace")],
             {"head_dim": 128, "scale": 128 ** -0.5, "splits": 4, "mma": 1, "mma_rows": 16}),
        Case("attention_g4_d64_mma16", "attention", (1, 4), (1, 512),
             [("q", (1, 2048), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("o", (1, 2048), bf, "workspace")], {"head_dim": 64, "scale": 64 ** -0.5, "mma_rows": 16}),
        Case("attention_g4_d64_simt", "attention", (1, 4), (1, 512),
             [("q", (1, 2048), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("o", (1, 2048), bf, "workspace")], {"head_dim": 64, "scale": 64 ** -0.5, "mma": 0}),
        Case("attention_combine", "attention_combine", (B, 8), (1, 256),
             [("partials", (B, 4, 16 * 132), "f32", "workspace")],
             [("o", (B, 2048), bf, "workspace")], {"head_dim": 128}),
        Case("kv_append", "kv_append", (B, 4), (1, 256),
             [("cache", (B, 512, 1024), bf, "state"), ("new", (B, 1024), bf, "workspace"),
              ("pos", (B,), i32, "io")],
             [("cache", (B, 512, 1024), bf, "state")], domain=(B, 1024)),
        # QK-norm + rope + KV append of one KV head group per task: 16 query heads over
        # 8 KV heads of 128 (Qwen3); without the norms, 4 query heads per KV head of 64 (Llama).
        Case("rope_append", "rope_append", (B, 8), (1, 256),
             [("q", (B, 2048), bf, "workspace"), ("k", (B, 1024), bf, "workspace"),
              ("v", (B, 1024), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state"), ("pos", (B,), i32, "io"),
              ("qw", (128,), bf, "weight"), ("kw", (128,), bf, "weight")],
             [("q_out", (B, 2048), bf, "workspace"), ("kc", (B, 512, 1024), bf, "state"),
              ("vc", (B, 512, 1024), bf, "state")],
             {"head_dim": 128, "inv_freq": _theta_freqs(128), "eps": 1e-6}),
        Case("rope_append_g4_d64", "rope_append", (1, 8), (1, 256),
             [("q", (1, 2048), bf, "workspace"), ("k", (1, 512), bf, "workspace"),
              ("v", (1, 512), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state"), ("pos", (1,), i32, "io")],
             [("q_out", (1, 2048), bf, "workspace"), ("kc", (1, 400, 512), bf, "state"),
              ("vc", (1, 400, 512), bf, "state")],
             {"head_dim": 64, "inv_freq": _theta_freqs(64, 5e5)}),
        Case("silu_mul", "silu_mul", (1, 6), (B, 512),
             [("gate", (B, 3072), bf, "workspace"), ("up", (B, 3072), bf, "workspace")],
             [("y", (B, 3072), bf, "workspace")]),
        Case("add", "add", (B, 4), (1, 256),
             [("a", (B, 1024), bf, "workspace"), ("b", (B, 1024), bf, "workspace")],
             [("y", (B, 1024), bf, "workspace")]),
        Case("argmax", "argmax", (B,), (1,),
             [("logits", (B, 151936), bf, "io"), ("pos", (B,), i32, "io")],
             [("tokens", (B,), i32, "io_per_step")]),
    ]
    # The tiny presets' storage: f32 activations, i64 ids and positions, the
    # argmax group as mpk-partition builds it (per-step logits and tokens,
    # then the next step's `tokens` and `positions`), ragged tiles.
    f, i64 = "f32", "i64"
    out += [
        Case("embedding_f32", "embedding", (1, 1), (1, 64),
             [("ids", (1,), i64, "io"), ("table", (256, 64), f, "weight")],
             [("out", (1, 64), f, "workspace")]),
        Case("linear_f32", "linear", (1, 3), (1, 24),
             [("x", (1, 64), f, "workspace"), ("w", (64, 64), f, "weight")],
             [("y", (1, 64), f, "workspace")]),
        Case("qk_norm_f32", "rmsnorm", (1, 2), (1, 48),
             [("x", (1, 64), f, "workspace"), ("w", (16,), f, "weight")],
             [("y", (1, 64), f, "workspace")], {"eps": 1e-6}),
        Case("rope_f32", "rope", (1, 2), (1, 48),
             [("x", (1, 64), f, "workspace"), ("pos", (1,), i64, "io")],
             [("y", (1, 64), f, "workspace")], {"inv_freq": _theta_freqs(16, 1e4)}),
        Case("attention_f32", "attention", (1, 2), (1, 32),
             [("q", (1, 64), f, "workspace"), ("kc", (1, 64, 32), f, "state"),
              ("vc", (1, 64, 32), f, "state"), ("pos", (1,), i64, "io")],
             [("o", (1, 64), f, "workspace")], {"head_dim": 16, "scale": 0.25}),
        Case("rope_append_f32", "rope_append", (1, 2), (1, 32),
             [("q", (1, 64), f, "workspace"), ("k", (1, 32), f, "workspace"),
              ("v", (1, 32), f, "workspace"), ("kc", (1, 64, 32), f, "state"),
              ("vc", (1, 64, 32), f, "state"), ("pos", (1,), i64, "io"),
              ("qw", (16,), f, "weight"), ("kw", (16,), f, "weight")],
             [("q_out", (1, 64), f, "workspace"), ("kc", (1, 64, 32), f, "state"),
              ("vc", (1, 64, 32), f, "state")],
             {"head_dim": 16, "inv_freq": _theta_freqs(16, 1e4), "eps": 1e-6}),
        Case("kv_append_f32", "kv_append", (1, 2), (1, 16),
             [("cache", (1, 64, 32), f, "state"), ("new", (1, 32), f, "workspace"),
              ("pos", (1,), i64, "io")],
             [("cache", (1, 64, 32), f, "state")], domain=(1, 32)),
        Case("argmax_io", "argmax", (1,), (1,),
             [("logits", (1, 256), f, "io_per_step")],
             [("next_tokens", (1,), i64, "io_per_step"), ("tokens", (1,), i64, "io"),
              ("positions", (1,), i64, "io")]),
    ]
    # Narrow vectors (shapes only 4, 2 or 1 elements divide) and ragged tiles.
    out += [
        Case("linear_odd", "linear", (1, 3), (1, 16),
             [("x", (1, 12), bf, "workspace"), ("w", (40, 12), bf, "weight")],
             [("y", (1, 40), bf, "workspace")]),
        Case("rmsnorm_odd", "rmsnorm", (2, 3), (1, 12),
             [("x", (2, 30), bf, "workspace"), ("w", (6,), bf, "weight")],
             [("y", (2, 30), bf, "workspace")], {"eps": 1e-5}),
        Case("rope_odd", "rope", (1, 1), (1, 12),
             [("x", (1, 12), bf, "workspace"), ("pos", (1,), i32, "io")],
             [("y", (1, 12), bf, "workspace")], {"inv_freq": _theta_freqs(6, 1e4)}),
        Case("add_odd", "add", (2, 3), (2, 4),
             [("a", (3, 10), bf, "workspace"), ("b", (3, 10), bf, "workspace")],
             [("y", (3, 10), bf, "workspace")]),
        Case("embedding_odd", "embedding", (2, 2), (2, 6),
             [("ids", (3,), i32, "io"), ("table", (50, 10), bf, "weight")],
             [("out", (3, 10), bf, "workspace")]),
        Case("argmax_odd", "argmax", (3,), (1,),
             [("logits", (3, 1001), f, "io"), ("pos", (3,), i32, "io")],
             [("tokens", (3,), i32, "io")]),
    ]
    # The prefill kinds (mpk-prefill): GEMM tiles of linears on wgmma fed by TMA (full
    # tiles; ragged rows, columns and K with a residual; 64-row tiles), causal attention
    # of row tiles on the tensor cores (G = 4, 2; D = 128, 64), rope_append and
    # kv_append over rows of two sequences (each a chunk of consecutive positions).
    chunk = {"positions": "chunk"}
    out += [
        Case("gemm", "linear", (2, 12), (128, 256),
             [("x", (256, 1024), bf, "workspace"), ("w", (3072, 1024), bf, "weight")],
             [("y", (256, 3072), bf, "workspace")], program="prefill"),
        Case("gemm_ragged_residual", "linear", (2, 2), (128, 256),
             [("x", (200, 1000), bf, "workspace"), ("w", (300, 1000), bf, "weight"),
              ("r", (200, 300), bf, "workspace")],
             [("y", (200, 300), bf, "workspace")], program="prefill"),
        Case("gemm_64_rows", "linear", (1, 8), (64, 128),
             [("x", (64, 512), bf, "workspace"), ("w", (1024, 512), bf, "weight")],
             [("y", (64, 1024), bf, "workspace")], program="prefill"),
        Case("gate_up", "gate_up", (2, 24), (128, 128),
             [("x", (256, 1024), bf, "workspace"), ("wg", (3072, 1024), bf, "weight"),
              ("wu", (3072, 1024), bf, "weight")],
             [("y", (256, 3072), bf, "workspace")], program="prefill"),
        Case("gate_up_ragged", "gate_up", (2, 3), (128, 128),
             [("x", (200, 200), bf, "workspace"), ("wg", (300, 200), bf, "weight"),
              ("wu", (300, 200), bf, "weight")],
             [("y", (200, 300), bf, "workspace")], program="prefill"),
        Case("attention_prefill", "attention_prefill", (8, 8), (32, 512),
             [("q", (256, 4096), bf, "workspace"), ("kc", (2, 1024, 1024), bf, "state"),
              ("vc", (2, 1024, 1024), bf, "state"), ("pos", (256,), i32, "io")],
             [("o", (256, 4096), bf, "workspace")], {"head_dim": 128, "scale": 128 ** -0.5},
             program="prefill", setup=chunk),
        Case("attention_prefill_g2", "attention_prefill", (2, 8), (64, 256),
             [("q", (128, 2048), bf, "workspace"), ("kc", (1, 512, 1024), bf, "state"),
              ("vc", (1, 512, 1024), bf, "state"), ("pos", (128,), i32, "io")],
             [("o", (128, 2048), bf, "workspace")], {"head_dim": 128, "scale": 128 ** -0.5},
             program="prefill", setup=chunk),
        Case("attention_prefill_d64", "attention_prefill", (4, 8), (32, 256),
             [("q", (128, 2048), bf, "workspace"), ("kc", (1, 600, 512), bf, "state"),
              ("vc", (1, 600, 512), bf, "state"), ("pos", (128,), i64, "io")],
             [("o", (128, 2048), bf, "workspace")], {"head_dim": 64, "scale": 64 ** -0.5},
             program="prefill", setup=chunk),
        Case("rope_append_rows", "rope_append", (8, 8), (16, 256),
             [("q", (128, 2048), bf, "workspace"), ("k", (128, 1024), bf, "workspace"),
              ("v", (128, 1024), bf, "workspace"), ("kc", (2, 512, 1024), bf, "state"),
              ("vc", (2, 512, 1024), bf, "state"), ("pos", (128,), i32, "io"),
              ("qw", (128,), bf, "weight"), ("kw", (128,), bf, "weight")],
             [("q_out", (128, 2048), bf, "workspace"), ("kc", (2, 512, 1024), bf, "state"),
              ("vc", (2, 512, 1024), bf, "state")],
             {"head_dim": 128, "inv_freq": _theta_freqs(128), "eps": 1e-6}, program="prefill", setup=chunk),
        Case("kv_append_rows", "kv_append", (8, 4), (16, 256),
             [("cache", (2, 512, 1024), bf, "state"), ("new", (128, 1024), bf, "workspace"),
              ("pos", (128,), i32, "io")],
             [("cache", (2, 512, 1024), bf, "state")], domain=(128, 1024), program="prefill", setup=chunk),
    ]
    # GEMM throughput at Qwen3-8B's prefill shapes (1024 rows): 2 warpgroups of 64 x 256
    # (256 threads, the prefill program's), and 4 of 64 x 128 (512 threads) for comparison.
    for program in ("prefill", "prefill512"):
        for n, k in ((4096, 4096), (12288, 4096), (4096, 12288)):
            out.append(Case(f"bench_gemm_{n}x{k}" + ("_512t" if program == "prefill512" else ""), "linear",
                            (8, n // 256), (128, 256),
                            [("x", (1024, k), bf, "workspace"), ("w", (n, k), bf, "weight")],
                            [("y", (1024, n), bf, "workspace")], bench=True, program=program))
    out.append(Case("bench_gate_up_12288x4096", "gate_up", (8, 96), (128, 128),
                    [("x", (1024, 4096), bf, "workspace"), ("wg", (12288, 4096), bf, "weight"),
                     ("wu", (12288, 4096), bf, "weight")],
                    [("y", (1024, 12288), bf, "workspace")], bench=True, program="prefill"))
    out.append(Case("gemm_512t", "linear", (2, 2), (128, 256),
                    [("x", (200, 1000), bf, "workspace"), ("w", (300, 1000), bf, "weight"),
                     ("r", (200, 300), bf, "workspace")],
                    [("y", (200, 300), bf, "workspace")], program="prefill512"))
    # The sampler: greedy rows (the argmax, positions advanced); mixed parameters
    # against mpk.sampling's tokens; many draws of one small distribution for a
    # chi-square test (seeds 0..B-1, one row each).
    sample_io = lambda B, V: ([("logits", (B, V), bf, "io_per_step"), ("positions", (B,), i32, "io"),
                               ("sample_params", (B, 4), "f32", "io"), ("sample_seeds", (B,), i32, "io")],
                              [("next_tokens", (B,), i32, "io_per_step"), ("positions", (B,), i32, "io")])
    out += [
        Case("sample_greedy", "sample", (4,), (1,), *sample_io(4, 151936),
             setup={"sampling": [[0.0, 0, 1.0, 0.0]] * 4}),
        Case("sample_mixed", "sample", (8,), (1,), *sample_io(8, 1000),
             setup={"sampling": [[0.7, 0, 1.0, 0.0], [1.0, 50, 1.0, 0.0], [1.0, 0, 0.9, 0.0],
                                 [1.0, 0, 1.0, 0.05], [0.8, 40, 0.95, 0.02], [2.0, 0, 1.0, 0.0],
                                 [0.0, 0, 1.0, 0.0], [1.5, 5, 1.0, 0.0]], "scale": 3.0}),
        Case("sample_chi_square", "sample", (8192,), (1,), *sample_io(8192, 64),
             setup={"sampling": [[0.9, 20, 0.9, 0.02]], "shared_logits": True, "scale": 2.0}),
        Case("sample_chi_square_t", "sample", (8192,), (1,), *sample_io(8192, 48),
             setup={"sampling": [[1.3, 0, 1.0, 0.0]], "shared_logits": True, "scale": 2.0}),
    ]

    # The same in splits of each row (sample_split): greedy rows merge the splits' argmax,
    # plain temperature rows their Gumbel maxima, the others draw from the whole row.
    def split_io(B, V, P):
        ins, outs = sample_io(B, V)
        return ins, [("partials", (B, P, 4), "f32", "workspace"), *outs, ("arrivals", (B,), i32, "counters")]
    out += [
        Case("sample_split_greedy", "sample_split", (4, 33, 1), (1, 1, 4), *split_io(4, 151936, 33),
             setup={"sampling": [[0.0, 0, 1.0, 0.0]] * 4}),
        Case("sample_split_mixed", "sample_split", (8, 4, 1), (1, 1, 4), *split_io(8, 1000, 4),
             setup=dict(out[-3].setup)),
        Case("sample_split_chi_square", "sample_split", (8192, 2, 1), (1, 1, 4), *split_io(8192, 64, 2),
             setup=dict(out[-2].setup)),
        Case("sample_split_chi_square_t", "sample_split", (8192, 2, 1), (1, 1, 4), *split_io(8192, 48, 2),
             setup=dict(out[-1].setup)),
    ]
    # Bandwidth, with `unroll` 16-byte loads in flight per lane.
    for n, k, tn in ((4096, 4096, 32), (4096, 12288, 32), (24576, 4096, 128),
                     (151936, 4096, 128)):
        for unroll in (4, 8):
            out.append(Case(f"bench_linear_{n}x{k}_u{unroll}", "linear", (1, n // tn), (1, tn),
                            [("x", (1, k), bf, "workspace"), ("w", (n, k), bf, "weight")],
                            [("y", (1, n), bf, "workspace")], {"unroll": unroll}, bench=True))
    for n, k, tn in ((4096, 4096, 32), (24576, 4096, 96)):
        out.append(Case(f"bench_linear_b8_{n}x{k}", "linear", (1, n // tn), (8, tn),
                        [("x", (8, k), bf, "workspace"), ("w", (n, k), bf, "weight")],
                        [("y", (8, n), bf, "workspace")], bench=True))
    # Attention at a long context: the KV cache read is the traffic.
    for b in (1, 8):
        out.append(Case(f"bench_attention_b{b}", "attention", (b, 8), (1, 512),
                        [("q", (b, 4096), bf, "workspace"), ("kc", (b, 4096, 1024), bf, "state"),
                         ("vc", (b, 4096, 1024), bf, "state"), ("pos", (b,), i32, "io")],
                        [("o", (b, 4096), bf, "workspace")],
                        {"head_dim": 128, "scale": 128 ** -0.5}, bench=True))
        splits = 132 // (8 * b)      # as lowering/kinds/attention.py: Attention.splits
        out.append(Case(f"bench_attention_partial_b{b}", "attention_partial", (b, splits, 8), (1, 1, 4 * 132),
                        [("q", (b, 4096), bf, "workspace"), ("kc", (b, 4096, 1024), bf, "state"),
                         ("vc", (b, 4096, 1024), bf, "state"), ("pos", (b,), i32, "io")],
                        [("partials", (b, splits, 32 * 132), "f32", "workspace")],
                        {"head_dim": 128, "scale": 128 ** -0.5, "splits": splits}, bench=True))
        out.append(dataclasses.replace(out[-1], name=f"bench_attention_partial_b{b}_simt",
                                       params={**out[-1].params, "mma": 0}))
    # Qwen3-0.6B's split attention at ctx 1024 (16 query heads over 8 KV heads).
    for b, splits in ((1, 8), (8, 2)):
        for mma, rows in ((1, 16), (1, 8), (0, 16)):
            out.append(Case(f"bench_attention_partial_0.6b_b{b}" + (f"_mma{rows}" if mma else ""),
                            "attention_partial", (b, splits, 8), (1, 1, 2 * 132),
                            [("q", (b, 2048), bf, "workspace"), ("kc", (b, 1024, 1024), bf, "state"),
                             ("vc", (b, 1024, 1024), bf, "state"), ("pos", (b,), i32, "io")],
                            [("partials", (b, splits, 16 * 132), "f32", "workspace")],
                            {"head_dim": 128, "scale": 128 ** -0.5, "splits": splits, "mma": mma,
                             "mma_rows": rows},
                            bench=True))
    # Llama 3.2 1B's (32 query heads of 64 over 8 KV heads) at batch 8, ctx 1024.
    for mma, rows in ((1, 16), (1, 8), (0, 16)):
        out.append(Case("bench_attention_partial_1b_b8" + (f"_mma{rows}" if mma else ""),
                        "attention_partial", (8, 2, 8), (1, 1, 4 * 68),
                        [("q", (8, 2048), bf, "workspace"), ("kc", (8, 1024, 512), bf, "state"),
                         ("vc", (8, 1024, 512), bf, "state"), ("pos", (8,), i32, "io")],
                        [("partials", (8, 2, 32 * 68), "f32", "workspace")],
                        {"head_dim": 64, "scale": 64 ** -0.5, "splits": 2, "mma": mma, "mma_rows": rows},
                        bench=True))
    return out


# ------------------------------------------------------------ task-level IR

def _type(shape, dtype):
    return f"tensor<{'x'.join(map(str, shape))}x{dtype}>"


def _param(v):
    if v is True:
        return "unit"
    if isinstance(v, list):
        return "array<f32: " + ", ".join(f"{float(x):.9e}" for x in v) + ">"
    if isinstance(v, int):
        return f"{v} : i64"
    return f"{float(v):.9e} : f32"


def group_ir(c: Case, prefix: str = "") -> list[str]:
    lines = []
    for name, shape, dtype, space in c.buffers():
        extra = ""
        if space == "io_per_step":
            space, extra = "io", ", per_step"
        elif space in ("weight", "state"):
            extra = f', name = "{c.name}.{name}"'
        elif space == "workspace":
            extra = ", offset = 0 : i64"
        lines.append(f'"mpk.buffer"() {{sym_name = "{prefix}{name}", '
                     f'type = {_type(shape, dtype)}, space = "{space}"{extra}}} : () -> ()')
    refs = lambda bs: "[" + ", ".join(f"@{prefix}{b[0]}" for b in bs) + "]"
    params = ", ".join(f"{k} = {_param(v)}" for k, v in c.params.items())
    domain = f", domain = array<i64: {', '.join(map(str, c.domain))}>" if c.domain else ""
    lines.append(f'"mpk.tasks"() {{sym_name = "{c.name}", kind = "{c.kind}", '
                 f'grid = array<i64: {", ".join(map(str, c.grid))}>, '
                 f'tile = array<i64: {", ".join(map(str, c.tile))}>{domain}, '
                 f'inputs = {refs(c.inputs)}, outputs = {refs(c.outputs)}, '
                 f'params = {{{params}}}}} : () -> ()')
    return lines


def module_ir(selected: list[Case]) -> str:
    lines = ['"mpk.kernel"() {sym_name = "kinds", num_sms = 132 : i64, arch = "sm_90"} : () -> ()']
    for c in selected:
        lines += group_ir(c, prefix=f"{c.name}.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------- the build

TEST_KERNEL = r"""
extern "C" __device__ void mpk_dispatch(int fn, int task, int step,
                                        const unsigned long long* buffers, char* smem,
                                        const char* staged);
extern "C" __device__ void mpk_prefetch_dispatch(int fn, int task, int step,
                                                 const unsigned long long* buffers);

// One CTA per task of one group; thread 0 calls the prefetch dispatcher (a
// hint; as the runtime's side lane does while a task waits), then every
// thread calls the dispatcher, as the persistent runtime does. A staged linear or gate_up (stage_rows > 0: its
// tile's rows of each of its `weights` weights = buffers[1], buffers[2], row_bytes
// each, of total_rows) first gets its rows copied after the scratch, `pitch`
// bytes apart, one weight's rows after the other's, as the runtime's bulk copies
// leave them in its weight ring.
extern "C" __global__ void run_group(int fn, int tasks, int step, const unsigned long long* buffers,
                                     int scratch_bytes, int stage_rows, int total_rows,
                                     int row_bytes, int pitch, int weights) {
  extern __shared__ __align__(128) char smem[];
  char* stage = smem + scratch_bytes;
  for (int t = blockIdx.x; t < tasks; t += gridDim.x) {
    if (stage_rows > 0) {
      const int first = t * stage_rows, rows = min(stage_rows, total_rows - first);
      for (int i = threadIdx.x; i < weights * rows * (row_bytes / 16); i += blockDim.x) {
        const int r = i / (row_bytes / 16), c = i % (row_bytes / 16), j = r / rows;
        const char* w = reinterpret_cast<const char*>(buffers[1 + j]) + (long long)first * row_bytes;
        *reinterpret_cast<int4*>(stage + r * pitch + 16 * c) =
            *reinterpret_cast<const int4*>(w + (long long)(r % rows) * row_bytes + 16 * c);
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) mpk_prefetch_dispatch(fn, t, step, buffers);
    mpk_dispatch(fn, t, step, buffers, smem, stage_rows > 0 ? stage : nullptr);
    __syncthreads();
  }
}
"""


def _check(result, what):
    err = result[0]
    if int(err) != 0:
        raise RuntimeError(f"{what}: {err}")
    return result[1:] if len(result) > 2 else (result[1] if len(result) == 2 else None)


def link_cubin(ptx: str, arch: str = "sm_90", max_registers: int = 128) -> bytes:
    """NVRTC (test kernel -> LTO-IR) + nvJitLink (with the MLIR PTX) -> cubin."""
    from cuda.bindings import nvjitlink, nvrtc
    from mpk.runtime.build import feature_arch
    arch = feature_arch(arch)
    prog = _check(nvrtc.nvrtcCreateProgram(TEST_KERNEL.encode(), b"run_group.cu", 0, [], []),
                  "nvrtcCreateProgram")
    opts = [f"-arch={arch}".encode(), b"-dlto", b"-rdc=true"]
    err = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)[0]
    if int(err) != 0:
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        raise RuntimeError(log.decode())
    size = _check(nvrtc.nvrtcGetLTOIRSize(prog), "nvrtcGetLTOIRSize")
    ltoir = b" " * size
    _check((nvrtc.nvrtcGetLTOIR(prog, ltoir)[0], None), "nvrtcGetLTOIR")

    handle = nvjitlink.create(4, [f"-arch={arch}", "-lto", "-O3", f"-maxrregcount={max_registers}"])
    nvjitlink.add_data(handle, nvjitlink.InputType.LTOIR, ltoir, len(ltoir), "run_group")
    data = ptx.encode()
    nvjitlink.add_data(handle, nvjitlink.InputType.PTX, data, len(data), "mpk_tasks")
    try:
        nvjitlink.complete(handle)
    except Exception as e:
        size = nvjitlink.get_error_log_size(handle)
        log = bytearray(size)
        nvjitlink.get_error_log(handle, log)
        raise RuntimeError(log.decode(errors="replace")) from e
    cubin = bytearray(nvjitlink.get_linked_cubin_size(handle))
    nvjitlink.get_linked_cubin(handle, cubin)
    nvjitlink.destroy(handle)
    return bytes(cubin)


def _stage(c: Case):
    """(rows per tile, rows, row bytes, pitch, weights) of a staged linear's w
    (a gate_up's two), or None."""
    if not c.params.get(STAGED):
        return None
    from mpk.lowering.mpk_stage_weights import WEIGHTS, row_pitch
    (_, (n, k), dtype, _) = c.inputs[1]
    row_bytes = k * {"bf16": 2, "f32": 4}[dtype]
    return [c.tile[1], n, row_bytes, row_pitch(row_bytes), WEIGHTS[c.kind]]


def build(folder: Path) -> dict:
    from mlir import ir
    from mpk.dialects import context
    from mpk.lowering.mpk_lower_tasks import lower_to_ptx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    selected = cases()
    fns, maps, programs = {}, {}, {}
    for program, smem_bytes in SMEM_BYTES.items():
        members = [c for c in selected if c.program == program]
        threads = THREADS_OF.get(program, THREADS)
        with context():
            module = ir.Module.parse(module_ir(members))
            ptx = lower_to_ptx(module, threads=threads, smem_bytes=smem_bytes)
            for op in module.body.operations:
                if op.name == "mpk.tasks":
                    name = ir.StringAttr(op.attributes["sym_name"]).value
                    fns[name] = ir.IntegerAttr(op.attributes["fn"]).value
                    maps[name] = ([list(ir.DenseI64ArrayAttr(m)) for m in ir.ArrayAttr(op.attributes["tensor_maps"])]
                                  if "tensor_maps" in op.attributes else [])
        cubin = f"kinds-{program}.cubin" if program != "decode" else "kinds.cubin"
        (folder / cubin.replace(".cubin", ".ptx")).write_text(ptx)
        (folder / cubin).write_bytes(link_cubin(ptx, max_registers=MAX_REGISTERS[threads]))
        staged = [_stage(c) for c in members if _stage(c)]
        programs[program] = {"cubin": cubin, "smem_bytes": smem_bytes, "threads": threads,
                             "ring_bytes": max([s[0] * s[3] * s[4] for s in staged], default=0)}
    stages = {c.name: _stage(c) for c in selected}
    meta = {"threads": THREADS, "programs": programs, "groups": [
        {**dataclasses.asdict(c), "fn": fns[c.name], "tasks": math.prod(c.grid), "stage": stages[c.name],
         "tensor_maps": maps[c.name]}
        for c in selected]}
    (folder / "kinds.json").write_text(json.dumps(meta, indent=1))
    return meta


if __name__ == "__main__":
    meta = build(Path(sys.argv[1] if len(sys.argv) > 1 else ".bundles/kinds"))
    print(f"{len(meta['groups'])} groups ->", sys.argv[1] if len(sys.argv) > 1 else ".bundles/kinds")

"""mpk-stage-weights: linear tiles whose weights the runtime copies into shared memory.

A linear task streams its tile of weight rows once. Those rows depend on no
event, so the worker can start copying them before the task's inputs are
ready: the runtime keeps two shared-memory stages and, as soon as a staged
task finishes, starts the bulk copy (TMA, `cp.async.bulk`) of the next
staged task of its queue into the freed stage. The weight stream then runs
during the previous task, the event wait and the x staging, and the task
itself reads shared memory.

Marks every `linear` group whose tile of weight rows fits a stage
(`max-bytes`, rows padded to `row pitch = row bytes + ROW_PAD_BYTES` so that
the tensor-core path's 8 rows at a time fall in different banks) with the
param `staged_weights`, and records the stage size on `mpk.kernel` as
`stage_bytes` (0: nothing staged). `max-bytes=0` stages nothing, and that
is what `mpk compile` asks for unless given `--stage-bytes`: on an H100 the
stages measured slower than streaming the weights from L2/HBM inside the
task (bench/NOTES.md, round 4).
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk.dialects.taskir import element_bytes
from mpk.lowering import ModulePass, analyses

from mpk.runtime.tables import STAGE_ROW_PAD as ROW_PAD_BYTES  # MPK_STAGE_ROW_PAD in mpk_runtime.h
PARAM = "staged_weights"


def row_pitch(row_bytes: int) -> int:
    return row_bytes + ROW_PAD_BYTES


@dataclasses.dataclass
class MpkStageWeights(ModulePass):
    name = "mpk-stage-weights"
    summary = "stage linear tiles' weights in shared memory (copied ahead by the runtime)"

    # Per stage. Two stages, 96 KiB of task scratch and the runtime's task cache
    # (MpkLaunch::task_cache, ~10-16 KiB) fit an H100's 227 KiB.
    max_bytes: int = 56 * 1024

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if graph.kernel is None:
            self.fail(module, "mpk-stage-weights works on task IR: run 'mpk-partition' first")
        stage = 0
        for g in graph.groups:
            if g.kind != "linear" or len(g.inputs) < 2:
                continue
            w = graph.buffers.get(g.inputs[1])
            if w is None or w.space != "weight" or len(w.shape) != 2:
                continue
            row_bytes = w.shape[1] * element_bytes(w.dtype)
            if row_bytes % 16:
                continue
            need = _bytes(g.tile[1], row_bytes)
            if need > self.max_bytes:
                continue
            params = {n.name: n.attr for n in ir.DictAttr(g.op.attributes["params"])} \
                if "params" in g.op.attributes else {}
            params[PARAM] = ir.BoolAttr.get(True)
            g.op.attributes["params"] = ir.DictAttr.get(params)
            stage = max(stage, need)
        i64 = ir.IntegerType.get_signless(64)
        graph.kernel.attributes["stage_bytes"] = ir.IntegerAttr.get(i64, stage)


def _bytes(rows: int, row_bytes: int) -> int:
    """A stage holding `rows` padded rows, in whole 128-byte lines."""
    return -(-rows * row_pitch(row_bytes) // 128) * 128

"""mpk-stage-weights: matrix-vector tiles whose weights the runtime streams into a shared-memory ring.

A decode linear (or gate_up) task streams its tile of weight rows once. Those
rows depend on no event, so the worker can start copying them before the
task's inputs are ready: the runtime keeps a ring of `ring-bytes` of shared
memory per worker, and a copy warp fills it with the rows of the worker's next
staged tasks, in queue order, with bulk copies (TMA, `cp.async.bulk`), as far
ahead as the ring has room. The weight stream then runs during the tasks
before, the event wait and the x staging, and the task itself reads shared
memory.

Marks every decode `linear` and `gate_up` group whose tile of weight rows
(both weights' for gate_up; rows padded to `row pitch = row bytes +
ROW_PAD_BYTES` so that the tensor-core path's 8 rows at a time fall in
different banks) fits the ring with the param `staged_weights`, and records
on `mpk.kernel` the ring's size `ring_bytes` (0: nothing staged) and its depth
`ring_depth`: how many staged tasks can be in flight at once, the ring over
the smallest staged tile (at most the runtime's RING_MAX_DEPTH mbarriers).
`ring-bytes=0` stages nothing (bench/NOTES.md rounds 4 and 12 say what it
measured).
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk.dialects.taskir import element_bytes, set_param
from mpk.lowering import ModulePass, analyses
from mpk.lowering.kinds.linear import gemm_tile_rows

from mpk.runtime.tables import RING_MAX_DEPTH, STAGE_ROW_PAD as ROW_PAD_BYTES  # mpk_runtime.h
PARAM = "staged_weights"
WEIGHTS = {"linear": 1, "gate_up": 2}   # kind -> its weights (inputs 1, 2, ...), all of one tile shape


def row_pitch(row_bytes: int) -> int:
    return row_bytes + ROW_PAD_BYTES


def chunk_bytes(weights: int, rows: int, row_bytes: int) -> int:
    """A task's chunk of the ring: `weights` x `rows` padded rows, in whole 128-byte lines."""
    return -(-weights * rows * row_pitch(row_bytes) // 128) * 128


@dataclasses.dataclass
class MpkStageWeights(ModulePass):
    name = "mpk-stage-weights"
    summary = "stream decode linears' weight tiles through a shared-memory ring (copied ahead by the runtime)"

    # The ring's shared memory per worker, beside the tasks' scratch (mpk-lower-tasks'
    # smem-bytes) and the runtime's task cache (~5-6 KiB); 0: nothing staged.
    ring_bytes: int = 0

    def run(self, module: ir.Operation) -> None:
        graph = analyses.task_graph(module)
        if graph.kernel is None:
            self.fail(module, "mpk-stage-weights works on task IR: run 'mpk-partition' first")
        if self.ring_bytes < 0 or self.ring_bytes % 128:
            self.fail(module, f"ring-bytes must be 0 or a positive multiple of 128, not {self.ring_bytes}")
        chunks = []
        for g in graph.groups:
            need = self._chunk(graph, g)
            if need is None or need > self.ring_bytes:
                continue
            set_param(g.op, PARAM, ir.BoolAttr.get(True))
            chunks.append(need)
        i64 = ir.IntegerType.get_signless(64)
        ring = self.ring_bytes if chunks else 0
        depth = min(RING_MAX_DEPTH, ring // min(chunks)) if chunks else 0
        graph.kernel.attributes["ring_bytes"] = ir.IntegerAttr.get(i64, ring)
        graph.kernel.attributes["ring_depth"] = ir.IntegerAttr.get(i64, depth)

    @staticmethod
    def _chunk(graph, g) -> int | None:
        """Bytes of the ring a task of g takes, or None: not a matrix-vector tile of
        row-major weights in whole 16-byte rows."""
        count = WEIGHTS.get(g.kind)
        x = graph.buffers.get(g.inputs[0]) if g.inputs else None
        if count is None or len(g.inputs) <= count or x is None or gemm_tile_rows(x.shape[0]) is not None:
            return None
        ws = [graph.buffers.get(name) for name in g.inputs[1:1 + count]]
        if any(w is None or w.space != "weight" or len(w.shape) != 2 or w.shape != ws[0].shape
               or w.dtype != ws[0].dtype for w in ws):
            return None
        row_bytes = ws[0].shape[1] * element_bytes(ws[0].dtype)
        return chunk_bytes(count, g.tile[1], row_bytes) if row_bytes % 16 == 0 else None

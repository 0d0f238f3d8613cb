"""mpk-prefill: a decode step (one row per sequence) -> a prefill step (`chunk` rows per sequence).

A prompt is the decode step applied to many positions at once. The graph ops
are row-wise, and `mpk.attention` / `mpk.kv_append` take R = B * chunk rows
over caches of B sequences, row r being sequence r // chunk
(dialects/README.md): a chunk's rows are consecutive prompt positions, its
keys and values are appended first, and attention over cache rows 0..pos[r]
is then causal attention over the earlier chunks plus this one. So the pass
only widens the rows: the token and position arguments become [R], every
activation [R, N], and the GEMMs of the linears have R rows (partitioned into
matrix-unit tiles).

The end of the step keeps one row per sequence: the row of its last prompt
token in the chunk, an io argument `last_rows` [B] (indices into the R rows)
that an `mpk.embedding` gathers (a row gather: its table need not be a
weight). By default the gather comes before the LM head, which then reads B
rows; with `all-logits` the LM head reads all R rows, the returned logits
are [R, V] (every prompt position, for checking against a reference), and the
gather picks the sampled rows from them. An `mpk.sample` draws from
(seed, position), so it gets the positions of those rows, `last_positions`
[B]. Prompt rows past a sequence's end are padding the host fills with
positions that continue it: their keys land in cache rows that decoding
overwrites before it reads them. The last argument, `row_counts` [B], says
how many rows of each sequence are prompt: no op reads it, the partition
lets the GEMM, attention and rope_append tiles of padding rows skip their
work (a short prompt in a long chunk, sequences of different lengths).
"""

from __future__ import annotations

import dataclasses

from mlir import ir

from mpk import dialects as mpk
from mpk.lowering import ModulePass, defining_op

# Operands carrying one entry per row.
ROW_OPERANDS = {"mpk.embedding": (0,), "mpk.rope": (1,), "mpk.attention": (3,), "mpk.kv_append": (1, 2)}
SAME_TYPE_AS_FIRST = ("mpk.rmsnorm", "mpk.rope", "mpk.attention", "mpk.silu_mul", "mpk.add", "mpk.allreduce")


@dataclasses.dataclass
class MpkPrefill(ModulePass):
    name = "mpk-prefill"
    summary = "widen a decode step to `chunk` prompt rows per sequence (prefill), keeping one output row each"
    chunk: int = 128
    all_logits: bool = False        # the LM head reads every row; the logits returned are [B * chunk, V]

    def run(self, module: ir.Operation) -> None:
        funcs = []
        for op in module.regions[0].blocks[0].operations:
            if op.operation.name == "mpk.kernel":
                self.fail(op, "mpk-prefill rewrites graph IR: run it before 'mpk-partition'")
            if op.operation.name == "func.func":
                funcs.append(op.operation)
        if len(funcs) != 1:
            self.fail(module, f"expected one decode function, found {len(funcs)}")
        if self.chunk < 1:
            self.fail(funcs[0], f"chunk must be positive, got {self.chunk}")
        self._widen(funcs[0])

    def _widen(self, func: ir.Operation) -> None:
        block = func.regions[0].blocks[0]
        ops = [op.operation for op in block.operations]
        caches = [op for op in ops if op.name in ("mpk.attention", "mpk.kv_append")]
        if not caches:
            self.fail(func, "no mpk.attention or mpk.kv_append: not a decode step")
        batch = _shape(caches[0].operands[0 if caches[0].name == "mpk.kv_append" else 1])[0]
        for op in caches:
            rows = _shape(op.operands[1 if op.name == "mpk.kv_append" else 0])[0]
            if rows != batch:
                self.fail(op, f"{rows} rows over {batch} sequences: already a prefill step")
        seq = max(_shape(op.operands[0 if op.name == "mpk.kv_append" else 1])[1] for op in caches)
        if self.chunk > seq:
            self.fail(func, f"chunk {self.chunk} is longer than the KV cache ({seq} rows)")
        heads = [op for op in ops if op.name in ("mpk.sample", "mpk.argmax")]
        if len(heads) != 1:
            self.fail(func, f"expected one mpk.sample or mpk.argmax ending the step, found {len(heads)}")
        (head,) = heads
        lm_head = defining_op(head.operands[0])
        if lm_head is None or lm_head.name != "mpk.linear":
            self.fail(head, "the logits are not produced by an mpk.linear (the LM head)")
        rows = batch * self.chunk
        i32 = ir.IntegerType.get_signless(32)

        # The arguments that carry one entry per row: token ids and positions.
        widened = set()
        for op in ops:
            for index in ROW_OPERANDS.get(op.name, ()):
                value = op.operands[index]
                if isinstance(value.owner, ir.Block) and value not in widened and _shape(value) == [batch]:
                    value.set_type(_with_rows(value.type, rows))
                    widened.add(value)
        last_rows = mpk.add_io_argument(func, "last_rows", mpk.tensor([batch], i32))
        with ir.InsertionPoint(lm_head if not self.all_logits else head), head.location:
            if self.all_logits:
                head.operands[0] = mpk.embedding(last_rows, head.operands[0])
            else:
                lm_head.operands[0] = mpk.embedding(last_rows, lm_head.operands[0])
        if head.name == "mpk.sample":
            head.operands[1] = mpk.add_io_argument(func, "last_positions", mpk.tensor([batch], i32))
        # How many of a sequence's rows are prompt: mpk-partition lets the tiles of the
        # rest (padding) skip their work. No graph op reads it: it only saves work.
        mpk.add_io_argument(func, "row_counts", mpk.tensor([batch], i32))

        for op in [op.operation for op in block.operations]:   # result types, in program order
            if op.name == "mpk.embedding":
                op.results[0].set_type(mpk.tensor([_shape(op.operands[0])[0], _shape(op.operands[1])[1]],
                                                  _element(op.operands[1])))
            elif op.name == "mpk.linear":
                op.results[0].set_type(mpk.tensor([_shape(op.operands[0])[0], _shape(op.operands[1])[0]],
                                                  _element(op.operands[0])))
            elif op.name in SAME_TYPE_AS_FIRST:
                op.results[0].set_type(op.operands[0].type)
        func.attributes["sym_name"] = ir.StringAttr.get("prefill_step")
        mpk.sync_function_type(func)


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _element(v: ir.Value) -> ir.Type:
    return ir.RankedTensorType(v.type).element_type


def _with_rows(t: ir.Type, rows: int) -> ir.Type:
    t = ir.RankedTensorType(t)
    return mpk.tensor([rows] + list(t.shape)[1:], t.element_type)

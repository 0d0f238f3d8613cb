"""mpk-partition: graph ops -> `mpk.tasks` groups over `mpk.buffer`s.

Every graph op of the decode function becomes one task group whose grid and
tile the cost model of `tiling` picks (bytes and flops per task, waves
over the SMs); an `mpk.tile = array<i64: ...>` attribute on the graph op
overrides it. Decode linears that read the same x (q, k and v) share the SMs
by their weight bytes, so that together they make one wave (`_share`).
Cheap per-element ops take their producer's tile (or the smallest tile that
is a multiple of it) so that `mpk-build-events` can give them per-tile
events instead of a barrier.

A decode `mpk.attention` that would leave SMs idle (one task per sequence
and KV head) becomes split-KV: tasks over P splits of the cache rows, the
last of which to finish per KV head group merges them (`attention_split`;
with `merge-in-attention=false` an `attention_partial` and an
`attention_combine` group), and `mpk.splits` overrides P. When its q and
caches come from a `rope_append` (mpk-fuse-rope-append), the split tasks do
that too (`rope-in-attention`, on by default): each rotates its query heads
and the one holding row positions[b] appends k and v (dialects/README.md),
so the rope_append is no group. Likewise a decode step's `mpk.sample` becomes
tasks over about one wave of splits of each logits row, the last of which to
finish merges (`sample_split`; `split-sample=false` keeps one task per row,
`mpk.splits` sets P). The other fusions are graph passes that run
before this one (mpk-fuse-residual, -gate-up, -norm, -silu, -rope-append):
their ops and params become the groups' kinds and params as they are.

Values become buffers: function arguments and results are `io` (the token
ids feeding the embedding are `tokens`, the positions `positions`; a returned
argmax writes the per-step `next_tokens`, and also `tokens` and `positions`
for the next step, as dialects/README.md specifies), weights and states keep
their names (a kv_append writes its cache in place), everything else is a
`workspace` intermediate named after its producer.
"""

from __future__ import annotations

import dataclasses
import math
import re

from mlir import ir

from mpk import defaults
from mpk import dialects as mpk
from mpk.dialects.taskir import element_bytes, python_value, set_param
from mpk.lowering import IN_USERS_ATTR, TILE_ATTR, ModulePass
from mpk.lowering.mpk_fuse_norm import READERS
from mpk.lowering.mpk_shard import SHARD_ATTR
from mpk.lowering import kinds, tiling
from mpk.lowering.kinds import ROW_COUNTS, OpInfo
from mpk.lowering.kinds.attention import MIN_SPLIT_ROWS
from mpk.lowering.kinds.attention_partial import partial_width
from mpk.lowering.kinds.linear import gemm_tile_rows
from mpk.lowering.kinds.sample_split import uneven_splits

# On an mpk.attention: KV splits (1: one task per KV head group); on an mpk.sample: splits of each logits row.
SPLITS_ATTR = "mpk.splits"
ALGORITHM_ATTR = "mpk.algorithm"   # on an mpk.allreduce: "one-shot" or "two-shot" (else the cost model's)
# A decode linear's task streams its rows 16 at a time (a warp each at 512 threads; a
# tensor-core block): the tiles of linears that share the SMs (`_share`) take whole
# rounds. (Llama 3.2 1B's k and v in 24-row tiles measured 3.7% slower a step.)
SHARED_TILE_ROWS = 16


def _prefill(attention: ir.Operation) -> bool:
    """An attention with several query rows per sequence (a prefill chunk)."""
    return _shape(attention.operands[0].type)[0] > _shape(attention.operands[1].type)[0]


def _shape(t: ir.Type) -> tuple[int, ...]:
    return tuple(ir.RankedTensorType(t).shape)


def _elt_bytes(t: ir.Type) -> int:
    return element_bytes(str(ir.RankedTensorType(t).element_type))


@dataclasses.dataclass
class MpkPartition(ModulePass):
    name = "mpk-partition"
    summary = "split every graph op into a grid of SM-sized tasks (cost-model tiles)"
    num_sms: int = defaults.NUM_SMS
    arch: str = defaults.ARCH
    min_split_rows: int = MIN_SPLIT_ROWS   # split-KV attention: fewest cache rows per split
    rope_in_attention: bool = True   # a split attention's rope_append runs in its partial tasks
    merge_in_attention: bool = True  # its last split merges: `attention_split`, no combine group
    # The sampler in splits of each logits row, the last of which merges (`sample_split`):
    # one CTA over a whole row took 17-21 us a step on the H200 (bench/NOTES.md round 15).
    split_sample: bool = True
    # A batch-1 linear sharing the SMs (q, k, v) whose one-wave tiles hold more weight bytes
    # than this, but at most twice it, takes two waves of half tiles (0: never, the default).
    # Round 11 measured 65536 (the runtime's L2 prefetch bound) 3.2-3.5% faster on Qwen3-1.7B
    # and Llama 3.2 1B; since then a one-wave task of 128 KB got faster (5.2 us against 7.4-8.3),
    # and one wave is 2.0-4.5% faster on the H200, 4.6-5.5% without data flags (NOTES round 25).
    shared_tile_max_bytes: int = 0
    # A tensor-parallel allreduce: "auto" (the cost model's choice by size:
    # tiling.allreduce_algorithm), "one-shot" or "two-shot"; `mpk.algorithm` on the op overrides.
    allreduce: str = "auto"
    # A one-shot allreduce's row-parallel product stores its tiles into every rank's slots
    # itself (linear `ranks`), instead of an allgather group after it: one stage less.
    store_in_product: bool = True

    def run(self, module: ir.Operation) -> None:
        try:
            self.target = tiling.target(self.arch, self.num_sms)
        except KeyError as e:
            self.fail(module, str(e.args[0]))
        if self.num_sms <= 0:
            self.fail(module, f"num-sms must be positive, got {self.num_sms}")
        if self.allreduce not in ("auto", *tiling.ALLREDUCE_ALGORITHMS):
            self.fail(module, f"allreduce must be auto, {' or '.join(tiling.ALLREDUCE_ALGORITHMS)}, "
                              f"got '{self.allreduce}'")
        body = module.regions[0].blocks[0]
        funcs = [op.operation for op in body.operations if op.operation.name == "func.func"]
        if len(funcs) != 1:
            self.fail(module, f"expected one decode function, found {len(funcs)}")
        func = funcs[0]
        with ir.InsertionPoint(body), func.location:
            self._partition(func)
        func.erase()

    # ------------------------------------------------------------------ buffers

    def _partition(self, func: ir.Operation) -> None:
        block = func.regions[0].blocks[0]
        self.names: set[str] = set()
        self.shape_of: dict[str, list[int]] = {}   # buffer symbol -> shape
        self.buffer_of: dict = {}             # SSA value -> buffer symbol
        self.group_tile: dict[str, tuple] = {}  # buffer -> (tile, domain) of its producer
        self.into_attention: dict = {}        # attention result -> the rope_append its split tasks do
        self.fused_x: dict = {}               # rmsnorm/silu_mul result -> (operands, param, attr): done by its users
        ops = [op.operation for op in block.operations]
        ret = ops[-1]
        self.tasks_of: dict[str, ir.Operation] = {}   # buffer -> the group writing it
        self.buffer_ops: dict[str, ir.Operation] = {}
        mpk.kernel(ir.StringAttr(func.attributes["sym_name"]).value, self.num_sms, self.arch)
        self._arguments(func, block, ops)
        collectives = [op for op in ops if op.name in ("mpk.allreduce", "mpk.allgather")]
        if collectives:          # this rank and where the others' peer memory is (the loader writes it)
            ranks = python_value(collectives[0].attributes["ranks"])
            self._buffer("peers", mpk.tensor([ranks + 1], ir.IntegerType.get_signless(64)), "io")
        returned = {v: i for i, v in enumerate(ret.operands)}
        for op in ops[:-1]:
            kind = op.name.removeprefix("mpk.")
            if kind in ("weight", "state"):
                name = python_value(op.attributes["name"])
                shard = {SHARD_ATTR: op.attributes[SHARD_ATTR]} if SHARD_ATTR in op.attributes else {}
                self.buffer_of[op.result] = self._buffer(name, op.result.type, kind, bound_name=name, **shard)
            elif kind in ("allreduce", "allgather"):
                with op.location:
                    self._collective(op, kind, returned)
            elif kind == "rope_append" and self._into_attention(op):
                continue                      # its attention's split tasks do it
            elif IN_USERS_ATTR in op.attributes:
                self._in_users(op)
            elif kind in kinds.registry():
                self._group(op, kind, returned)
            else:
                self.fail(op, f"'{op.name}' has no task kind: mpk-partition takes mpk graph ops only")

    def _arguments(self, func, block, ops) -> None:
        """io buffers: named by the argument's `mpk.io` attribute, else by role."""
        role = {}
        for op in ops:
            kind = op.name.removeprefix("mpk.")
            if kind == "embedding":
                role.setdefault(op.operands[0], "tokens")
            position = kinds.get(kind).position_operand if kind in kinds.registry() else None
            if position is not None:
                role.setdefault(op.operands[position], "positions")
        for i, (arg, name) in enumerate(zip(block.arguments, mpk.io_names(func))):
            self.buffer_of[arg] = self._buffer(name or role.get(arg, f"input{i}"), arg.type, "io")

    def _unique(self, name: str) -> str:
        name = re.sub(r"[^A-Za-z0-9_.$]", "_", name)
        base, n = name, 1
        while name in self.names:
            n += 1
            name = f"{base}.{n}"
        self.names.add(name)
        return name

    def _buffer(self, symbol: str, type: ir.Type, space: str, bound_name: str | None = None,
                **extra) -> str:
        sym = self._unique(symbol)
        self.shape_of[sym] = _shape(type)
        op = mpk.buffer(sym, type, space, **extra)
        self.buffer_ops[sym] = op
        if bound_name is not None:        # weights and states are bound by `name`
            op.attributes["name"] = ir.StringAttr.get(bound_name)
        return sym

    # ------------------------------------------------------------------- groups

    def _group_name(self, op: ir.Operation, kind: str) -> str:
        """After the op's weight or state (`...q_proj.weight` -> `...q_proj`), else its input's producer."""
        if kind in ("attention", "rope_append"):   # `...self_attn.k_cache` -> `...self_attn.attention`
            return self.buffer_of[op.operands[1 if kind == "attention" else 3]].rpartition(".")[0] + "." + kind
        if kind == "gate_up":                    # `...mlp.gate_proj.weight` -> `...mlp.gate_up`
            prefix = self.buffer_of[op.operands[1]].removesuffix(".weight").removesuffix("gate_proj").rstrip(".")
            return f"{prefix}.gate_up" if prefix else "gate_up"
        for v in op.operands:
            owner = v.owner
            if isinstance(owner, ir.OpView) or isinstance(owner, ir.Operation):
                owner = owner.operation if isinstance(owner, ir.OpView) else owner
                if owner.name in ("mpk.weight", "mpk.state"):
                    name = python_value(owner.attributes["name"]).removesuffix(".weight")
                    return name + (".append" if kind == "kv_append" else "")
        producer = self.buffer_of.get(op.operands[kinds.get(kind).main_input], "")
        return f"{producer.removesuffix('.out')}.{kind}" if producer else kind

    def _in_users(self, op: ir.Operation) -> None:
        """An rmsnorm or silu_mul that its users compute as they stage their x (`mpk.in_users`)."""
        if op.name not in READERS or not all(u.owner.name in READERS[op.name] and u.operand_number == 0
                                             for u in op.results[0].uses):
            self.fail(op, f"'{IN_USERS_ATTR}' needs an rmsnorm or silu_mul whose every user reads it as x "
                          f"({', '.join(READERS.get(op.name, READERS['mpk.rmsnorm']))})")
        param = ("norm_eps", op.attributes["eps"]) if op.name == "mpk.rmsnorm" else ("silu_gate", ir.UnitAttr.get())
        self.fused_x[op.results[0]] = (list(op.operands), *param)

    def _into_attention(self, rope: ir.Operation) -> bool:
        """Whether a rope_append's attention is split and its tasks do the rope_append
        (`rope-in-attention`): then it is no group, and the split reads its operands."""
        users = {u.owner.operation for r in rope.results for u in r.uses}
        if not self.rope_in_attention or len(users) != 1:
            return False
        (attention,) = users
        if attention.name != "mpk.attention" or list(attention.operands)[:3] != list(rope.results) \
                or _prefill(attention) or self._splits(attention, self._info(attention, "attention")) == 1:
            return False
        self.into_attention[attention.results[0]] = rope
        q, kc, vc = rope.results      # the split's own inputs are the rope_append's (`_split_attention`)
        self.buffer_of.update({q: self.buffer_of[rope.operands[0]], kc: self.buffer_of[rope.operands[3]],
                               vc: self.buffer_of[rope.operands[4]]})
        return True

    def _row_counts(self, kind: str, inputs: list[str], params: dict, tile, rows: int) -> list[str]:
        """A prefill step's GEMM, rope_append and attention tiles skip the padding rows
        of a chunk: they read `row_counts` (kinds.ROW_COUNTS) when the step has it
        and a tile's rows never span two sequences."""
        counts = ROW_COUNTS
        if counts not in self.names or kind not in ("linear", "gate_up", "rope_append", "attention_prefill"):
            return inputs
        per_seq = rows // self.shape_of[counts][0]
        whole_tiles = kind != "rope_append"               # rope_append skips row by row
        if rows % self.shape_of[counts][0] or (whole_tiles and per_seq % tile[0]) or \
                (kind == "linear" and gemm_tile_rows(rows) is None):
            return inputs
        params[counts] = ir.UnitAttr.get()
        return inputs + [counts]

    def _group(self, op: ir.Operation, kind: str, returned: dict) -> None:
        rope = self.into_attention.get(op.results[0])
        prefill = _prefill(op) if kind == "attention" else False
        operands = list(op.operands)
        fused = self.fused_x.get(operands[0]) if kind in ("linear", "gate_up") else None
        if fused is not None:   # x = rmsnorm(x', w') or silu_mul(gate, up): the tasks compute it
            (x, extra), param, value = fused
            operands = [x] + operands[1:] + [extra]
        for v in operands:
            if v not in self.buffer_of:
                self.fail(op, "operand is not produced by an mpk op or a function argument")
        inputs = [self.buffer_of[v] for v in operands]
        name = self._unique(self._group_name(op, kind))
        kind = "attention_prefill" if prefill else kind    # several query rows per sequence
        result = op.results[0]
        extra, domain = {}, _shape(result.type)
        if kind == "kv_append":
            outputs = [inputs[0]]                        # the cache, in place
            domain = _shape(operands[1].type)
            extra["domain"] = ir.DenseI64ArrayAttr.get(list(domain))
        elif kind == "rope_append":                      # q, then the caches in place
            outputs = [self._buffer(name + ".out", result.type, "workspace"), inputs[3], inputs[4]]
            self.buffer_of.update({op.results[1]: inputs[3], op.results[2]: inputs[4]})
        elif kind in ("argmax", "sample") and result in returned:
            outputs = [self._buffer("next_tokens", result.type, "io", per_step=ir.UnitAttr.get())]
            # A decode step feeds its tokens to the next step (a prefill's inputs have more rows).
            outputs += [b for b in ("tokens", "positions") if b in self.names and self.shape_of[b] == _shape(result.type)]
        elif result in returned:
            outputs = [self._buffer("logits" if kind == "linear" else name + ".out", result.type, "io",
                                    per_step=ir.UnitAttr.get())]
        else:
            outputs = [self._buffer(name + ".out", result.type, "workspace")]
        self.buffer_of[result] = outputs[0]

        attrs = {n: op.attributes[n] for n in op.attributes if n not in (TILE_ATTR, SPLITS_ATTR)}
        if fused is not None:
            attrs[param] = value
        info = OpInfo(kind, [_shape(v.type) for v in operands], [_elt_bytes(v.type) for v in operands],
                      _shape(result.type) if kind != "kv_append" else _shape(operands[0].type),
                      _elt_bytes(result.type), domain,
                      {n: python_value(a) for n, a in attrs.items()})
        if kind == "kv_append":
            readers = [u.owner for u in result.uses if u.owner.name == "mpk.attention"]
            if readers:
                info.params["head_dim"] = python_value(readers[0].attributes["head_dim"])
        try:
            tile = self._tile(op, info, operands)
        except ValueError as e:              # no tile of the kind fits the op (kinds/attention_prefill.py: prefill_rows)
            self.fail(op, str(e))
        self.group_tile[outputs[0]] = (tile, domain)
        if kind == "attention" and self._splits(op, info) > 1:      # decode only
            self._split_attention(op, info, name, inputs, outputs[0], attrs, rope)
            return
        if kind == "sample" and (splits := self._sample_splits(op, info)) > 1:
            self._split_sample(op, splits, name, inputs, outputs, attrs)
            return
        inputs = self._row_counts(kind, inputs, attrs, tile, domain[0])
        with op.location:
            self.tasks_of[outputs[0]] = mpk.tasks(name, kind, tiling.grid_for(domain, tile), tile, inputs, outputs,
                                                  params=ir.DictAttr.get(attrs), **extra)

    def _collective(self, op: ir.Operation, kind: str, returned: dict) -> None:
        """A collective of tensor-parallel ranks (mpk-shard). An `allgather` group stores
        each tile of x into every rank's `peer` buffer and bumps every rank's event: the
        gathered [B, ranks * N] of an allgather, or, for a one-shot allreduce, the slots
        [ranks, B, N] that an `allreduce` group then sums. A two-shot allreduce (the cost
        model's choice for large tensors) scatters: a `scatter` group stores each tile
        into the slots [ranks, B, N / ranks] of the rank owning its columns, an
        `allreduce` group sums this rank's chunk, an `allgather` stores the sums (plus the
        residual) into every rank's result."""
        ranks = python_value(op.attributes["ranks"])
        x, residual = op.operands[0], list(op.operands)[1:]
        (rows, cols), element = _shape(x.type), ir.RankedTensorType(x.type).element_type
        name = self._unique(self.buffer_of[x].removesuffix(".out") + "." + kind)
        result = op.results[0]
        per_step = {"per_step": ir.UnitAttr.get()} if result in returned else {}
        params = ir.DictAttr.get({"ranks": op.attributes["ranks"]})
        tile = self._tile(op, OpInfo("allgather", [(rows, cols), (ranks + 1,)], [_elt_bytes(x.type), 8], (rows, cols),
                                     _elt_bytes(x.type), (rows, cols), {"ranks": ranks}), [x])
        if kind == "allgather":
            gathered = self._buffer("logits" if result in returned else name + ".out", result.type, "peer",
                                    **per_step)
            self._push("allgather", name, [self.buffer_of[x], "peers"], gathered, tile, (rows, cols), params)
            self.buffer_of[result] = gathered
            return
        algorithm = self._algorithm(op, rows * cols * _elt_bytes(x.type), ranks, cols, tile)
        chunk = cols // ranks if algorithm == "two-shot" else cols
        slots = self._buffer(name + ".slots", mpk.tensor([ranks, rows, chunk], element), "peer")
        if algorithm == "one-shot":
            if not self._store_in_product(x, slots, ranks):
                self._push("allgather", name + ".push", [self.buffer_of[x], "peers"], slots, tile, (rows, cols),
                           params)
            output = self._buffer(name + ".out", result.type, "io" if result in returned else "workspace", **per_step)
            self._sum(name, [slots] + [self.buffer_of[v] for v in residual], output, ranks, params, _elt_bytes(x.type))
        else:
            scatter_tile = (tile[0], math.gcd(tile[1], chunk))
            self._push("scatter", name + ".scatter", [self.buffer_of[x], "peers"], slots, scatter_tile,
                       (rows, cols), params)
            sums = self._buffer(name + ".sums", mpk.tensor([rows, chunk], element), "workspace")
            sum_tile = self._sum(name + ".reduce", [slots], sums, ranks, params, _elt_bytes(x.type))
            output = self._buffer(name + ".out", result.type, "peer", **per_step)
            self._push("allgather", name, [sums, "peers"] + [self.buffer_of[v] for v in residual], output,
                       sum_tile, (rows, chunk), params)
        self.buffer_of[result] = output

    def _store_in_product(self, x, slots: str, ranks: int) -> bool:
        """Make x's producer, a decode linear that only this allreduce reads, store its
        tiles into every rank's `slots` itself (linear `ranks`); False if it cannot."""
        producer = self.tasks_of.get(self.buffer_of[x])
        if not self.store_in_product or producer is None or len(list(x.uses)) != 1 \
                or ir.StringAttr(producer.attributes["kind"]).value != "linear" \
                or gemm_tile_rows(_shape(x.type)[0]) is not None:
            return False
        from mpk.lowering.kinds.linear import LinearParams, linear_roles
        params = {n.name: n.attr for n in ir.DictAttr(producer.attributes["params"])}
        inputs = [ir.FlatSymbolRefAttr(a).value for a in ir.ArrayAttr(producer.attributes["inputs"])]
        if "residual" in linear_roles(LinearParams.of({n: python_value(a) for n, a in params.items()}), len(inputs)):
            return False
        set_param(producer, "ranks", ir.IntegerAttr.get(ir.IntegerType.get_signless(64), ranks))
        producer.attributes["inputs"] = mpk.symbol_refs(inputs + ["peers"])
        producer.attributes["outputs"] = mpk.symbol_refs([slots])
        producer.attributes["domain"] = ir.DenseI64ArrayAttr.get(list(_shape(x.type)))
        self.buffer_ops.pop(self.buffer_of[x]).erase()       # x itself is never stored
        self.group_tile[slots] = self.group_tile[self.buffer_of[x]]
        return True

    def _algorithm(self, op, nbytes: int, ranks: int, cols: int, tile) -> str:
        """The allreduce's algorithm: the op's `mpk.algorithm`, the pass option, or the cost
        model's; two-shot needs chunks of whole 8-column vectors."""
        chosen = python_value(op.attributes[ALGORITHM_ATTR]) if ALGORITHM_ATTR in op.attributes else self.allreduce
        if chosen == "auto":
            chosen = tiling.allreduce_algorithm(nbytes, ranks, self.target)
        if chosen not in tiling.ALLREDUCE_ALGORITHMS:
            self.fail(op, f"'{ALGORITHM_ATTR}' must be {' or '.join(tiling.ALLREDUCE_ALGORITHMS)}, got '{chosen}'")
        if chosen == "two-shot" and (cols % ranks or math.gcd(tile[1], cols // ranks) % 8):
            if ALGORITHM_ATTR in op.attributes or self.allreduce == "two-shot":
                self.fail(op, f"a two-shot allreduce needs {cols} columns in {ranks} chunks of whole "
                              f"8-column vectors (and tiles of them)")
            chosen = "one-shot"
        return chosen

    def _push(self, kind: str, name: str, inputs: list[str], output: str, tile, domain, params) -> None:
        """A group storing into other ranks' memory (allgather, scatter) over `domain`."""
        self.group_tile[output] = (tile, domain)
        mpk.tasks(name, kind, tiling.grid_for(domain, tile), tile, inputs, [output], params=params,
                  domain=ir.DenseI64ArrayAttr.get(list(domain)))

    def _sum(self, name: str, inputs: list[str], output: str, ranks: int, params, elt: int) -> tuple:
        """An `allreduce` group: the slots [ranks, B, N] (+ residual) summed into [B, N]; its tile."""
        rows, cols = self.shape_of[output]
        info = OpInfo("allreduce", [(ranks, rows, cols)] + [(rows, cols)] * (len(inputs) - 1),
                      [elt] * len(inputs), (rows, cols), elt, (rows, cols), {"ranks": ranks})
        tile = tiling.choose_tile(info, self.target)
        self.group_tile[output] = (tile, (rows, cols))
        mpk.tasks(name, "allreduce", tiling.grid_for((rows, cols), tile), tile, inputs, [output], params=params)
        return tile

    def _chosen_splits(self, op: ir.Operation) -> int | None:
        """The op's `mpk.splits`, if it has one."""
        if SPLITS_ATTR not in op.attributes:
            return None
        splits = python_value(op.attributes[SPLITS_ATTR])
        if not isinstance(splits, int) or splits < 1:
            self.fail(op, f"'{SPLITS_ATTR}' must be a positive integer")
        return splits

    def _splits(self, op: ir.Operation, info: OpInfo) -> int:
        if (splits := self._chosen_splits(op)) is not None:
            return splits
        if TILE_ATTR in op.attributes:
            return 1                          # a chosen tile asks for the one-group attention
        return kinds.get("attention").splits(info, self.target, self.min_split_rows)

    def _info(self, op: ir.Operation, kind: str) -> OpInfo:
        """The op's OpInfo as it stands in the graph (no fused operands)."""
        result = _shape(op.results[0].type)
        return OpInfo(kind, [_shape(v.type) for v in op.operands], [_elt_bytes(v.type) for v in op.operands],
                      result, _elt_bytes(op.results[0].type), result,
                      {n: python_value(op.attributes[n]) for n in op.attributes
                       if n not in (TILE_ATTR, SPLITS_ATTR)})

    def _split_attention(self, op, info: OpInfo, name: str, inputs: list[str], output: str,
                         attrs: dict, rope: ir.Operation | None) -> None:
        """Split-KV decode attention: tasks, one per (sequence, KV split, KV head
        group), write f32 partial results, which `attention_combine` tasks merge per
        query head into the op's output, or (`merge-in-attention`) the last split of
        each KV group merges itself: one `attention_split` group. With `rope`, the
        split tasks also do the attention's rope_append."""
        splits = self._splits(op, info)
        (batch, width), head_dim = info.output, info.params["head_dim"]
        heads = width // head_dim
        f32 = ir.F32Type.get()
        partial_shape = (batch, splits, heads * partial_width(head_dim))
        partials = self._buffer(name + ".partials", ir.RankedTensorType.get(list(partial_shape), f32),
                                "workspace")
        attrs = dict(attrs, splits=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), splits))
        part_inputs, part_outputs = inputs, [partials]
        if rope is not None:
            values = list(rope.operands)
            part_inputs = [self.buffer_of[v] for v in values]
            part_outputs = [partials, *part_inputs[3:5]]
            attrs.update({n: rope.attributes[n] for n in ("head_dim", "inv_freq", "eps") if n in rope.attributes})
            info = OpInfo(info.kind, [_shape(v.type) for v in values], [_elt_bytes(v.type) for v in values],
                          info.output, info.output_bytes, info.domain, info.params)
        kind = "attention_split" if self.merge_in_attention else "attention_partial"
        if self.merge_in_attention:
            kv_heads = _shape(op.operands[1].type)[-1] // head_dim
            arrivals = self._buffer(name + ".arrivals", ir.RankedTensorType.get(
                [batch, kv_heads], ir.IntegerType.get_signless(32)), "counters")
            part_outputs = [*part_outputs, output, arrivals]
        part = OpInfo(kind, info.inputs, info.input_bytes, partial_shape, 4, partial_shape,
                      {n: python_value(a) for n, a in attrs.items()})
        with op.location:
            tile = tiling.choose_tile(part, self.target)
            mpk.tasks(name if self.merge_in_attention else self._unique(name + ".partial"), part.kind,
                      tiling.grid_for(partial_shape, tile), tile, part_inputs, part_outputs,
                      params=ir.DictAttr.get(attrs))
            if self.merge_in_attention:
                return
            combine = OpInfo("attention_combine", [partial_shape], [4], info.output, info.output_bytes,
                             info.output, {"head_dim": head_dim})
            tile = tiling.choose_tile(combine, self.target)
            mpk.tasks(name, combine.kind, tiling.grid_for(info.output, tile), tile, [partials], [output],
                      params=ir.DictAttr.get({"head_dim": attrs["head_dim"]}))

    def _sample_splits(self, op: ir.Operation, info: OpInfo) -> int:
        if (splits := self._chosen_splits(op)) is not None:
            if splits > 1 and (why := uneven_splits(info.inputs[0][1], splits)):
                self.fail(op, f"invalid '{SPLITS_ATTR}': {why}")
            return splits
        if not self.split_sample or TILE_ATTR in op.attributes:
            return 1
        batch, vocab = info.inputs[0]
        producer = self.group_tile.get(self.buffer_of[op.operands[0]])
        return kinds.get("sample_split").splits(batch, vocab, self.num_sms, producer and producer[0][-1])

    def _split_sample(self, op, splits: int, name: str, inputs: list[str], outputs: list[str], attrs: dict) -> None:
        """The sampler in P splits of each logits row, merged by the last (`sample_split`)."""
        batch = self.shape_of[inputs[0]][0]
        partials = self._buffer(name + ".partials", mpk.tensor([batch, splits, 4], ir.F32Type.get()), "workspace")
        arrivals = self._buffer(name + ".arrivals", mpk.tensor([batch], ir.IntegerType.get_signless(32)), "counters")
        with op.location:
            self.tasks_of[outputs[0]] = mpk.tasks(name, "sample_split", (batch, splits, 1), (1, 1, 4), inputs,
                                                  [partials, *outputs, arrivals], params=ir.DictAttr.get(attrs))

    def _tile(self, op: ir.Operation, info: OpInfo, operands) -> tuple[int, ...]:
        if TILE_ATTR in op.attributes:
            attr = op.attributes[TILE_ATTR]
            if not isinstance(attr, ir.DenseI64ArrayAttr):
                self.fail(op, f"'{TILE_ATTR}' must be an array<i64: ...>")
            tile = tuple(ir.DenseI64ArrayAttr(attr))
            why = tiling.valid_tile(info, tile)
            if why:
                self.fail(op, f"invalid '{TILE_ATTR}' {list(tile)}: {why}")
            return tile
        kind = kinds.get(info.kind)
        if kind.elementwise(info):
            producer = self.group_tile.get(self.buffer_of[operands[kinds.get(info.kind).main_input]])
            if producer and producer[1] == info.domain:
                tile = tuple(min(math.lcm(t, u), d) if f is None else f for t, u, d, f in
                             zip(producer[0], kind.tile_unit(info), info.domain, kind.fixed_tile(info)))
                if tiling.valid_tile(info, tile) is None:
                    return tile
        target = self._share(op, info)
        tile = tiling.choose_tile(info, target)
        if target is not self.target:      # whole rounds of 16 rows (one a warp; one tensor-core block)
            rows = min(-(-tile[1] // SHARED_TILE_ROWS) * SHARED_TILE_ROWS, info.domain[1])
            row_bytes = info.inputs[1][1] * info.input_bytes[1]
            if info.domain[0] == 1 and 0 < self.shared_tile_max_bytes < rows * row_bytes \
                    <= 2 * self.shared_tile_max_bytes and rows >= 2 * SHARED_TILE_ROWS:
                rows = -(-rows // (2 * SHARED_TILE_ROWS)) * SHARED_TILE_ROWS    # two waves of smaller tiles
            tile = (tile[0], rows)
        return tile

    def _share(self, op: ir.Operation, info: OpInfo) -> tiling.Target:
        """The SMs a decode linear's tile is chosen for: linears that read the same x
        (q, k and v) run side by side, so each gets the share of the SMs that its
        weight is of theirs (at its SM's share of the bandwidth) and together they
        fill one wave, instead of each filling one of its own."""
        if info.kind != "linear" or gemm_tile_rows(info.domain[0]) is not None:
            return self.target
        siblings = [u.owner for u in op.operands[0].uses
                    if u.owner.name == "mpk.linear" and u.operand_number == 0 and TILE_ATTR not in u.owner.attributes]
        if len(siblings) < 2:
            return self.target
        weight = lambda linear: math.prod(_shape(linear.operands[1].type))
        sms = max(1, self.target.num_sms * weight(op) // sum(weight(s) for s in siblings))
        return dataclasses.replace(self.target, num_sms=sms,
                                   hbm_bytes_per_s=self.target.hbm_bytes_per_s * sms / self.target.num_sms)

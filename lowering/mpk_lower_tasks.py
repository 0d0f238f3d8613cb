"""mpk-lower-tasks: task groups to device functions in `gpu.module @mpk_tasks`.

Every task kind with a device lowering contributes one rewrite pattern
(`LowerTasks.patterns`), applied by upstream's walk driver (`mlir.rewrite`;
the greedy driver would also fold the device code as it is built): the
pattern of a group's kind calls the kind's `emit` (lowering/kinds/<kind>.py)
to build one device function specialized on the group's static shapes, tile
and params; groups that differ only in their buffers' names (layer 0's
q_proj and layer 5's) share it. Each group gets the function's id as its `fn` attribute,
and `mpk_dispatch` maps an id to its function:

    extern "C" __device__ void mpk_dispatch(int fn, int task, int step,
                                            const unsigned long long* buffers, char* smem,
                                            const char* staged);

`buffers` holds the group's buffer addresses, inputs then outputs; the
dispatcher moves `per_step` io buffers to copy `step`, so task functions never
see the step. A kind with a `prefetch` lowering also gets `<function>_prefetch`
(task, buffers...), run by one thread of the worker while the task still waits
for its inputs, through

    extern "C" __device__ void mpk_prefetch_dispatch(int fn, int task, int step,
                                                     const unsigned long long* buffers);

and its group the unit attribute `prefetch` (the task table's flag).

Task functions are `(i32 task, !llvm.ptr<1> buffers..., !llvm.ptr<3> smem,
!llvm.ptr<3> staged)`: `staged` holds the task's weight rows when mpk-stage-weights
marked its group (the runtime copied them there), else it is null.
The threads per CTA and the shared-memory budget are recorded on `mpk.kernel`
(`threads`, `smem_bytes`): the runtime must launch with exactly those.

`lower_to_ptx(module)` runs the upstream pipeline from there to PTX text.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from mlir import ir, passmanager, rewrite
from mlir.dialects import arith, func, gpu, llvm, scf

from mpk import defaults
from mpk.dialects.taskir import TaskGraph
from mpk.runtime.build import feature_arch

from . import ModulePass, PassFailure, analyses, kinds
from .kernels import Buffer, Group, Unsupported
from .kernels.emit import Emitter, FlaggedView, View, byte_width, i32, ptr

GPU_MODULE = "mpk_tasks"
DISPATCH = "mpk_dispatch"
PREFETCH_DISPATCH = "mpk_prefetch_dispatch"

# convert-nvvm-to-llvm: NVVM ops without an LLVM intrinsic (wgmma, TMA copies) become inline PTX.
TO_NVVM = ("builtin.module(gpu.module(convert-scf-to-cf,convert-nvvm-to-llvm,"
           "convert-gpu-to-nvvm{use-bare-ptr-memref-call-conv=1},canonicalize,cse),"
           "reconcile-unrealized-casts)")
TO_PTX = ("builtin.module(nvvm-attach-target{{chip={chip} features=+ptx80 O=3}},"
          "gpu-module-to-binary{{format=isa}})")


@dataclasses.dataclass
class LowerTasks(ModulePass):
    name = "mpk-lower-tasks"
    summary = "Lower each mpk.tasks group to a device function and build mpk_dispatch"
    preserves_analyses = True   # adds the gpu.module and `fn`, which the task graph view ignores

    threads: int = defaults.THREADS
    smem_bytes: int = defaults.TASK_SMEM_BYTES

    def run(self, module: ir.Operation) -> None:
        body = module.regions[0].blocks[0]
        kernels = [op for op in body.operations if op.name == "mpk.kernel"]
        if not kernels:
            self.fail(module, "mpk-lower-tasks needs an mpk.kernel header")
        if self.threads % 32 or not 32 <= self.threads <= 1024:
            self.fail(kernels[0], f"threads={self.threads} is not a multiple of 32 in [32, 1024]")
        if any(op.name == "gpu.module" and _name(op) == GPU_MODULE for op in body.operations):
            self.fail(module, f"already lowered: gpu.module @{GPU_MODULE} exists")

        with module.location, ir.InsertionPoint(body):
            gpu_module = gpu.GPUModuleOp(GPU_MODULE)
            gpu_module.bodyRegion.blocks.append()
        block = gpu_module.bodyRegion.blocks[0]

        graph = analyses.task_graph(module)
        self._groups = {tg.name: tg for tg in graph.groups}
        self._graph, self._block, self._functions = graph, block, {}
        self._refused: set[str] = set()
        rewrite.walk_and_apply_patterns(module, self.patterns().freeze())
        for tg in graph.groups:
            if "fn" not in tg.op.attributes and tg.name not in self._refused:
                self.error(tg.op, f"no task lowering for kind '{tg.kind}'")
        functions = self._functions
        if self.failed:
            raise PassFailure()

        with module.location, ir.InsertionPoint(block):
            _dispatch([(symbol, g, maps) for _, symbol, g, maps in functions.values()])  # in fn order
            _prefetch_dispatch([(fn, f"{symbol}_prefetch", g) for fn, symbol, g, _ in functions.values()
                                if "prefetch" in g.op.attributes])
        i64 = ir.IntegerType.get_signless(64)
        kernels[0].attributes["threads"] = ir.IntegerAttr.get(i64, self.threads)
        kernels[0].attributes["smem_bytes"] = ir.IntegerAttr.get(i64, self.smem_bytes)

    # --------------------------------------------------------------- patterns
    def patterns(self) -> rewrite.RewritePatternSet:
        """One pattern per task kind that has a device lowering (its `emit`), each
        lowering the `mpk.tasks` groups of that kind. A subclass may add, drop or
        reorder patterns here."""
        patterns = rewrite.RewritePatternSet()
        for kind in kinds.registry().values():
            if kind.emit is not None:
                patterns.add("mpk.tasks", functools.partial(self.lower_group, kind))
        return patterns

    def lower_group(self, kind: kinds.TaskKind, op, rewriter) -> bool | None:
        """The pattern of `kind`: a device function for the group `op` (shared with
        every equal group), its id as the group's `fn`, its TMA descriptors as
        `tensor_maps`. Returns True (no match) for other kinds and lowered groups."""
        op = op.operation
        if ir.StringAttr(op.attributes["kind"]).value != kind.name or "fn" in op.attributes:
            return True
        tg = self._groups[ir.StringAttr(op.attributes["sym_name"]).value]
        group = self._group(tg, self._graph)
        if group is None:
            self._refused.add(tg.name)
            return True
        key = group.key()
        try:
            maps = kind.tensor_maps(group, self.threads)
            if key not in self._functions:
                symbol = f"mpk_{group.kind}_{len(self._functions)}"
                self._function(self._block, symbol, group, kind.emit, len(maps))
                if kind.prefetch is not None:
                    self._function(self._block, f"{symbol}_prefetch", group, kind.prefetch, prefetch=True)
                self._functions[key] = (len(self._functions), symbol, group, len(maps))
        except Unsupported as e:
            self.error(op, f"cannot lower '{group.kind}' group @{group.name}: {e}")
            self._refused.add(tg.name)
            return True
        op.attributes["fn"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), self._functions[key][0])
        if maps:   # the runtime encodes these TMA descriptors (mpk-materialize's tensor_maps)
            op.attributes["tensor_maps"] = ir.ArrayAttr.get([m.attribute() for m in maps])
        if kind.prefetch is not None:
            op.attributes["prefetch"] = ir.UnitAttr.get()
        return None

    # ------------------------------------------------------------------ views
    def _group(self, tg, graph: TaskGraph) -> Group | None:
        """The lowering's view of one group: buffers with their MLIR element types."""
        missing = [n for n in tg.inputs + tg.outputs if n not in graph.buffers]
        if missing:
            self.error(tg.op, f"'{missing[0]}' is not an mpk.buffer")
            return None
        if not tg.outputs:
            self.error(tg.op, "a task group needs an output buffer")
            return None

        def buffer(name: str) -> Buffer:
            b = graph.buffers[name]
            return Buffer(name, tuple(b.shape), ir.Type.parse(b.dtype), b.space, b.per_step, b.flagged)
        inputs, outputs = tuple(map(buffer, tg.inputs)), tuple(map(buffer, tg.outputs))
        if any(math.prod(b.shape) >= 2**31 for b in inputs + outputs):
            self.error(tg.op, "buffers of 2^31 elements or more need 64-bit indexing")
            return None
        return Group(tg.op, tg.name, tg.kind, tuple(tg.grid), tuple(tg.tile),
                     tuple(graph.domain(tg)), inputs, outputs, dict(tg.params))

    # -------------------------------------------------------------- functions
    def _function(self, block: ir.Block, symbol: str, group: Group, emit, maps: int = 0,
                  prefetch: bool = False) -> None:
        """A task function (a prefetch function: the task and its buffers only, one thread)."""
        global_ptr = ptr(1)
        polls = [i32(), ptr(3)] if group.flagged and not prefetch else []   # the step's flag, the stuck word
        types = [i32()] + [global_ptr] * (len(group.buffers) + maps) + ([] if prefetch else [ptr(3), ptr(3)]) + polls
        with group.op.location, ir.InsertionPoint(block):
            f = func.FuncOp(symbol, ir.FunctionType.get(types, []))
            f.attributes["mpk.group"] = ir.StringAttr.get(group.name)
            entry = f.add_entry_block()
        try:
            with group.op.location, ir.InsertionPoint(entry):
                task, *addresses = entry.arguments
                flag, stuck = (addresses.pop(-2), addresses.pop()) if polls else (None, None)
                addresses, (smem, staged) = (addresses, (None, None)) if prefetch else (addresses[:-2], addresses[-2:])
                addresses, descriptors = addresses[:len(group.buffers)], addresses[len(group.buffers):]
                e = Emitter(self.threads, smem, 0 if prefetch else self.smem_bytes, block, staged)
                e.tensor_maps, e.stuck = descriptors, stuck
                views = [FlaggedView(e, p, b.element, b.shape, flag) if b.flagged else
                         View(e, p, b.element, b.shape, b.readonly) for p, b in zip(addresses, group.buffers)]
                emit(e, group, task, views)
                func.ReturnOp([])
        except Exception:
            f.operation.erase()
            raise


def _dispatch(functions: list[tuple[str, Group, int]]) -> None:
    """`mpk_dispatch`: a switch on `fn` whose case loads the group's buffer
    addresses (then its tensor maps') from the table and calls the task function."""
    generic = ptr(0)
    f = func.FuncOp(DISPATCH, ir.FunctionType.get([i32(), i32(), i32(), generic, generic, generic], []))
    entry = f.add_entry_block()
    with ir.InsertionPoint(entry):
        fn, task, step, table, smem, staged = entry.arguments
        shared, stage = (llvm.AddrSpaceCastOp(ptr(3), p).result for p in (smem, staged))
        cases = [(k, symbol, group, maps) for k, (symbol, group, maps) in enumerate(functions)]
        if any(group.flagged for _, group, _ in functions):
            # mpk-data-flags: step s's flag is s + 1; the stuck word lies 16 bytes before the
            # scratch (mpk_runtime.h MPK_POLL_STUCK_BYTES).
            flags = [arith.addi(step, arith.constant(i32(), 1)),
                     llvm.GEPOp(ptr(3), shared, [], [-16], ir.IntegerType.get_signless(8), 0).result]
        _switch(fn, cases, lambda symbol, group, maps: func.CallOp(
            [], symbol, [task] + _buffer_args(table, step, group, maps) + [shared, stage] +
            (flags if group.flagged else [])))
        func.ReturnOp([])


def _prefetch_dispatch(functions: list[tuple[int, str, Group]]) -> None:
    """`mpk_prefetch_dispatch`: `mpk_dispatch`'s switch over the groups that have a
    prefetch function (`fn`, its symbol, the group); any other `fn` does nothing."""
    generic = ptr(0)
    f = func.FuncOp(PREFETCH_DISPATCH, ir.FunctionType.get([i32(), i32(), i32(), generic], []))
    entry = f.add_entry_block()
    with ir.InsertionPoint(entry):
        fn, task, step, table = entry.arguments
        _switch(fn, [(k, symbol, group, 0) for k, symbol, group in functions],
                lambda symbol, group, _: func.CallOp([], symbol, [task] + _buffer_args(table, step, group, 0)))
        func.ReturnOp([])


def _switch(fn: ir.Value, cases: list[tuple[int, str, Group, int]], call) -> None:
    """A switch on `fn`: case k runs `call(symbol, group, maps)`; others nothing."""
    switch = scf.IndexSwitchOp([], arith.index_cast(ir.IndexType.get(), fn), [k for k, *_ in cases])
    for region, (_, *case) in zip(switch.caseRegions, cases):
        with ir.InsertionPoint(_block(region)):
            call(*case)
            scf.YieldOp([])
    with ir.InsertionPoint(_block(switch.defaultRegion)):
        scf.YieldOp([])


def _buffer_args(table: ir.Value, step: ir.Value, group: Group, maps: int) -> list[ir.Value]:
    """The group's buffer addresses (then its tensor maps') from the table; a per-step
    io buffer's is moved to the copy of `step`."""
    i64 = ir.IntegerType.get_signless(64)
    step64 = arith.extsi(i64, step)
    args = []
    for k, b in enumerate(list(group.buffers) + [None] * maps):
        slot = llvm.GEPOp(ptr(0), table, [], [k], i64, 0).result
        address = llvm.IntToPtrOp(ptr(1), llvm.LoadOp(i64, slot, alignment=8)).result
        if b is not None and b.per_step:  # one copy of the buffer per step of the launch
            nbytes = math.prod(b.shape) * byte_width(b.element)
            offset = arith.muli(step64, arith.constant(i64, nbytes))
            address = llvm.GEPOp(ptr(1), address, [offset], [-2147483648],
                                 ir.IntegerType.get_signless(8), 0).result
        args.append(address)
    return args


def _block(region: ir.Region) -> ir.Block:
    return region.blocks[0] if len(region.blocks) else region.blocks.append()


def _name(op: ir.Operation) -> str:
    return ir.StringAttr(op.attributes["sym_name"]).value


# --------------------------------------------------------------------- PTX

def lower_to_ptx(module: ir.Module | ir.Operation, chip: str = "sm_90", **options) -> str:
    """PTX text of a task module's `gpu.module @mpk_tasks`.

    If `mpk-lower-tasks` has not run yet it runs here first, with `options`
    (threads, smem_bytes), and leaves its `fn`/`threads`/`smem_bytes`
    attributes on `module` for the tables. The task-level module itself is
    not lowered: a copy of the gpu.module goes through the pipeline.
    """
    op = module.operation if isinstance(module, ir.Module) else module
    if _gpu_module(op) is None:
        pm = passmanager.PassManager(context=op.context)
        pm.add(LowerTasks(**options), name=LowerTasks.name)
        pm.run(op)
    with op.context, op.location:
        work = ir.Module.create()
        with ir.InsertionPoint(work.body):
            _gpu_module(op).clone()
        passmanager.PassManager.parse(TO_NVVM).run(work.operation)
        _keep_calls(work.operation)
        passmanager.PassManager.parse(TO_PTX.format(chip=feature_arch(chip))).run(work.operation)
        binary = work.body.operations[0]
        return gpu.ObjectAttr(ir.ArrayAttr(binary.attributes["objects"])[0]).object.decode()


def _gpu_module(op: ir.Operation):
    for child in op.regions[0].blocks[0].operations:
        if child.name == "gpu.module" and _name(child) == GPU_MODULE:
            return child
    return None


def _keep_calls(module: ir.Operation) -> None:
    """Mark task functions `noinline`: they stay PTX `.func`s, each allocating
    its own registers, instead of melting into one huge dispatcher. Prefetch
    functions, a few instructions each, become internal: they melt into theirs."""
    for f in _gpu_module(module).regions[0].blocks[0].operations:
        if f.name != "llvm.func" or _name(f) in (DISPATCH, PREFETCH_DISPATCH):
            continue
        if _name(f).endswith("_prefetch"):
            f.attributes["linkage"] = ir.Attribute.parse("#llvm.linkage<internal>")
        else:
            f.attributes["no_inline"] = ir.UnitAttr.get()

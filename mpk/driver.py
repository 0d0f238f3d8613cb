"""The compiler driver: model -> graph IR -> task IR -> PTX + cubin -> bundle.

Each stage is named (like Triton's stage dictionary) and `--dump-dir`
writes what it produced:

    graph      mpk graph IR (torch.export -> torch-mlir -> torch-to-mpk)
    tasks      mpk-sample, [mpk-prefill], the fusions (mpk-fuse-residual, -gate-up, -norm,
               -silu, -rope-append), mpk-partition: every op split into SM-sized task groups
    events     mpk-build-events: tile-granular dependencies; [mpk-data-flags]
    scheduled  mpk-schedule, mpk-plan-memory: per-SM queues, workspace offsets
    gpu        mpk-lower-tasks: + gpu.module @mpk_tasks with mpk_dispatch
    ptx        the gpu.module through NVVM to PTX text
    cubin      the runtime (NVRTC, LTO-IR) linked with the PTX (nvJitLink)

Each stage's passes are built from the typed `Options` (`task_stages`), the
same pass objects `mpk-opt` makes from their pipeline names; the bundle is
written by mpk.runtime.bundle from `mpk-materialize`'s tables.

A bundle holds two programs compiled from the same graph IR: the decode step
(one row per sequence, `steps` per launch) and, with `prefill_chunk`, the
prefill step (`mpk-prefill`: `prefill_chunk` prompt rows per sequence, GEMM
tiles on the matrix units), each its own persistent kernel, sharing weights
and KV caches by name. The prefill program is written into the bundle's
`prefill/` folder; its stages dump as `prefill-NN-stage.ext`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Callable

from mlir import ir
from mlir.passmanager import PassManager

from mpk import defaults, dialects
from mpk.lowering import FUSIONS, ModulePass, analyses, lookup
from mpk.runtime import build, bundle

PREFILL_SMEM_BYTES = 200 * 1024  # a GEMM tile's shared-memory ring (kernels/gemm.py)
# The prefill program's CTAs: 2 warpgroups of 255 registers a thread, each a 64 x 256
# wgmma accumulator (12% faster GEMM tiles than 4 warpgroups of 64 x 128 at 128
# registers, measured on an H200: bench/NOTES.md, prefill).
PREFILL_THREADS, PREFILL_MAX_REGISTERS = 256, 255
PREFILL_DIR = "prefill"
TIMELESS = contextlib.nullcontext


class CompileError(RuntimeError):
    """A stage failed; `diagnostics` holds MLIR's messages when it was a pass.
    `headline` is the one line; str() adds the first diagnostics, indented, so
    an API caller sees why as the CLI does."""

    SHOWN = 20

    def __init__(self, stage: str, message: str, diagnostics: list[str] = ()):
        self.stage, self.diagnostics = stage, list(diagnostics)
        self.headline = f"{stage}: {message}"
        lines = [line for d in self.diagnostics[:self.SHOWN] for line in str(d).splitlines()]
        super().__init__(self.headline + "".join(f"\n  {line}" for line in lines))


@dataclasses.dataclass(frozen=True)
class Options:
    """What a compile asks for: typed, frozen, passed to the passes as values (`task_stages`)."""
    batch: int = defaults.BATCH
    dtype: str = defaults.DTYPE            # weights, activations, KV caches (defaults.DTYPES)
    max_seq: int = defaults.MAX_SEQ
    arch: str = defaults.ARCH
    num_sms: int = defaults.NUM_SMS
    threads: int = defaults.THREADS
    smem_bytes: int | None = None          # None: mpk-lower-tasks' default
    steps: int = defaults.STEPS            # decode steps per launch (per-step io buffers hold this many)
    max_registers: int = build.DEFAULT_MAX_REGISTERS
    runtime_defines: tuple[tuple[str, str], ...] = ()   # -DNAME=VALUE for the runtime (bench.build's A/B)
    caller_saves: bool = True              # task calls preserve no registers (runtime.build; NOTES round 13)
    ring_bytes: int = 0                    # mpk-stage-weights{ring-bytes}: the weight ring; 0: none (bench/NOTES.md round 12)
    rope_in_attention: bool = True         # mpk-partition{rope-in-attention} (bench/NOTES.md round 6)
    merge_in_attention: bool = True        # mpk-partition{merge-in-attention} (bench/NOTES.md round 8)
    gate_up_in_decode: bool = True         # mpk-fuse-gate-up{decode} (bench/NOTES.md round 8)
    split_sample: bool = True              # mpk-partition{split-sample} (bench/NOTES.md round 15)
    shared_tile_max_bytes: int = 0         # mpk-partition{shared-tile-max-bytes} (bench/NOTES.md rounds 11, 25)
    prefill_chunk: int = defaults.PREFILL_CHUNK  # mpk-prefill{chunk}; 0: no prefill program
    tp: int = 1                            # mpk-shard{tp}: tensor-parallel ranks (one program for all)
    allreduce: str = "auto"                # mpk-partition{allreduce}: auto (cost model), one-shot, two-shot
    store_in_product: bool = True          # mpk-partition{store-in-product}: o_proj/down store into the ranks' slots
    prefill_all_logits: bool = False       # mpk-prefill{all-logits}: logits of every prompt row
    data_flags: int = defaults.DATA_FLAG_ROWS   # mpk-data-flags{max-rows}: activations of this many rows at most
                                           # carry flags; 0: none (bench/NOTES.md rounds 21-23)
    report: bool = False                   # the passes' statistics on stderr (`mpk compile` without --quiet)

    def prefill(self) -> "Options":
        """The options of the prefill program: one step a launch, a chunk no longer than the cache."""
        return dataclasses.replace(self, steps=1, smem_bytes=self.smem_bytes or PREFILL_SMEM_BYTES,
                                   prefill_chunk=min(self.prefill_chunk, self.max_seq), ring_bytes=0,
                                   threads=PREFILL_THREADS, max_registers=PREFILL_MAX_REGISTERS)


# The task-level stages, by name; a prefill program runs mpk-prefill right after mpk-sample.
STAGES = ("graph", "tasks", "events", "scheduled", "gpu", "ptx", "cubin", "bundle")


def task_stages(options: Options, prefill: bool = False) -> list[tuple[str, list[ModulePass]]]:
    """The passes of each task-level stage, configured from `options` (typed values, no
    pipeline text in between; `mpk-opt` runs the same passes by their pipeline names)."""
    from mpk.lowering.mpk_build_events import MpkBuildEvents
    from mpk.lowering.mpk_data_flags import MpkDataFlags
    from mpk.lowering.mpk_partition import MpkPartition
    from mpk.lowering.mpk_plan_memory import MpkPlanMemory
    from mpk.lowering.mpk_prefill import MpkPrefill
    from mpk.lowering.mpk_sample import MpkSample
    from mpk.lowering.mpk_schedule import MpkSchedule
    from mpk.lowering.mpk_shard import MpkShard
    from mpk.lowering.mpk_stage_weights import MpkStageWeights

    fusion_options = {"mpk-fuse-gate-up": {"decode": options.gate_up_in_decode}}
    fusions = [lookup(name)(**fusion_options.get(name, {})) for name in FUSIONS]
    prefill_pass = [MpkPrefill(chunk=options.prefill_chunk, all_logits=options.prefill_all_logits)] if prefill else []
    return [
        ("tasks", [*([MpkShard(tp=options.tp)] if options.tp > 1 else []), MpkSample(), *prefill_pass, *fusions,
                   MpkPartition(num_sms=options.num_sms, arch=options.arch,
                                rope_in_attention=options.rope_in_attention,
                                merge_in_attention=options.merge_in_attention,
                                split_sample=options.split_sample,
                                shared_tile_max_bytes=options.shared_tile_max_bytes,
                                allreduce=options.allreduce, store_in_product=options.store_in_product),
                   MpkStageWeights(ring_bytes=options.ring_bytes)]),
        ("events", [MpkBuildEvents(report=options.report),
                    *([MpkDataFlags(max_rows=options.data_flags, report=options.report,
                                    smem_bytes=options.smem_bytes or defaults.TASK_SMEM_BYTES)]
                      if options.data_flags and not prefill else [])]),
        ("scheduled", [MpkSchedule(report=options.report), MpkPlanMemory(report=options.report)]),
    ]


def stages(options: Options) -> tuple[str, ...]:
    """The stages a compile with `options` goes through (for progress bars)."""
    return STAGES + ((PREFILL_DIR,) if options.prefill_chunk > 0 else ())


class Dumper:
    """Writes each stage's output as `[prefix]NN-stage.ext` into a folder (or nowhere)."""

    def __init__(self, folder: Path | None, prefix: str = ""):
        self.folder = Path(folder) if folder else None
        self.prefix = prefix
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def program(self, name: str) -> "Dumper":
        return Dumper(self.folder, f"{name}-")

    def __call__(self, stage: str, content, ext: str = "mlir") -> None:
        if not self.folder:
            return
        path = self.folder / f"{self.prefix}{STAGES.index(stage)}-{stage}.{ext}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content))


def run_passes(module: ir.Module, stage: str, passes: list[ModulePass]) -> None:
    """Run mpk passes; failures become CompileError with MLIR's diagnostics."""
    elements = [p.pipeline_element() for p in passes]     # for messages: what mpk-opt would run
    from mpk.diagnostics import Collector
    collector = Collector(module.context)
    try:
        with module.context, collector.catching():
            pm = PassManager("builtin.module", context=module.context)
            for p in passes:
                pm.add(p, name=p.name)
            with analyses.session():
                pm.run(module.operation)
    except Exception as e:  # a bug in a pass: say where, keep the traceback for MPK_DEBUG=1
        if os.environ.get("MPK_DEBUG"):
            raise
        raise CompileError(stage, f"internal error in {', '.join(elements)}: {type(e).__name__}: {e} "
                                  "(MPK_DEBUG=1 shows the traceback)") from None
    finally:
        collector.detach()
    if collector.has_errors:
        lines = [f"{d.location}: {d.severity}: {d.message}" for d in collector.diags
                 if not d.message.startswith("see current operation")]
        raise CompileError(stage, f"{stage} failed", lines)


def compile_task_module(module: ir.Module, options: Options, out: Path, *, model_config: dict | None = None,
                        dump: Dumper | None = None, stage: Callable[[str], contextlib.AbstractContextManager] = None,
                        task_ptx: str | None = None, source: Path | None = None) -> Path:
    """Graph IR (or scheduled task IR) in `module` -> bundle at `out`: the decode
    program, and the prefill program in `out/prefill` (`options.prefill_chunk`).

    With `task_ptx` the task code is given (a hand-written stub in tests)
    and `module` must already be scheduled task IR; mpk-lower-tasks is skipped
    and there is no prefill program. `source`: the Hugging Face folder the
    model came from (the bundle records it and copies its tokenizer).
    """
    dump = dump or Dumper(None)
    stage = stage or (lambda _name: TIMELESS())
    prefill = options.prefill_chunk > 0 and task_ptx is None and _weights_are_bf16(module) and options.tp == 1
    graph_ir = str(module) if prefill else None
    programs = {PREFILL_DIR: {"chunk": options.prefill().prefill_chunk,
                              "logits": "all" if options.prefill_all_logits else "last"}} if prefill else {}
    path = _compile_program(module, options, out, model_config, dump, stage, task_ptx, programs=programs)
    if prefill:
        with stage("prefill"):
            prefill_module = ir.Module.parse(graph_ir, context=module.context)
            _compile_program(prefill_module, options.prefill(), out / PREFILL_DIR, model_config,
                             dump.program(PREFILL_DIR), lambda _name: TIMELESS(), None,
                             prefill=True)
    if source is not None:
        bundle.record_source(path, source)
    return path


def _compile_program(module: ir.Module, options: Options, out: Path, model_config, dump: Dumper, stage,
                     task_ptx: str | None, programs: dict | None = None,
                     prefill: bool = False) -> Path:
    """One program (a persistent kernel and its tables) into the bundle folder `out`."""
    from mpk.dialects.taskir import TaskGraph
    from mpk.lowering.mpk_materialize import MaterializeError, materialize

    if task_ptx is None:
        for name, passes in task_stages(options, prefill=prefill):
            with stage(name):
                run_passes(module, name, passes)
                _set_kernel_attr(module, "steps", options.steps)
                dump(name, module)
    task_ir = str(module)   # scheduled task IR, before the gpu.module joins it
    if task_ptx is None:
        with stage("gpu"):
            from mpk.lowering.mpk_lower_tasks import LowerTasks
            sizes = {"smem_bytes": options.smem_bytes} if options.smem_bytes is not None else {}
            run_passes(module, "gpu", [LowerTasks(threads=options.threads, **sizes)])
            dump("gpu", module)
        with stage("ptx"):
            from mpk.lowering.mpk_lower_tasks import lower_to_ptx
            try:
                task_ptx = lower_to_ptx(module, chip=options.arch)
            except ir.MLIRError as e:
                raise CompileError("ptx", str(e)) from None
            dump("ptx", task_ptx, "ptx")

    graph = TaskGraph.from_module(module)
    try:
        tables = materialize(graph)
    except MaterializeError as e:
        raise CompileError("bundle", str(e)) from None

    with stage("cubin"):
        try:
            cubin = build.build_cubin([("tasks.ptx", task_ptx)], options.arch, options.max_registers,
                                      dict(options.runtime_defines), options.caller_saves)
        except build.BuildError as e:
            raise CompileError("cubin", str(e)) from None
        dump("cubin", cubin, "cubin")

    with stage("bundle"):
        kernel = {"name": graph.kernel_attr("sym_name"), "entry": build.KERNEL_NAME,
                  **_from_ir(graph, options), "ring_bytes": int(graph.kernel_attr("ring_bytes", 0)),
                  "ring_depth": int(graph.kernel_attr("ring_depth", 0)),
                  "max_registers": options.max_registers, "caller_saves": options.caller_saves,
                  "num_tasks": graph.num_tasks, "num_workers": tables.num_workers}
        batch, max_seq = cache_sizes(module) or (options.batch, options.max_seq)    # the IR is the truth
        if (batch, max_seq) != (options.batch, options.max_seq):
            raise CompileError("bundle", f"the module's KV caches hold batch {batch} x {max_seq} rows, but "
                                         f"the options ask for batch {options.batch} x max_seq {options.max_seq}")
        dtypes = sorted({b.dtype for b in graph.buffers.values() if b.space == "weight"})
        plan = {"kernel": kernel, "toolkit": build.toolkit().describe(), "model": model_config, "tp": options.tp,
                "batch": batch, "max_seq": max_seq, "weight_dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
                "programs": programs or {},
                "buffers": tables.buffers, "events": tables.events, "groups": tables.groups,
                "dependent_stages": graph.dependent_stages().as_dict(),   # bench/decode.py's limit
                "weights": _weights(tables.buffers)}
        return bundle.write(out, plan=plan, tables=tables.tables, cubin=cubin, ptx=task_ptx,
                            task_ir=task_ir, runtime_sources=build.runtime_source())


def _weights(buffers: list[dict]) -> list[dict]:
    """The checkpoint's tensors the program reads, whole (a sharded one's full shape: each
    rank cuts its slice at load time), once each."""
    weights = {}
    for b in buffers:
        if b["space"] == "weight":
            shape = list(b["shape"])
            if "shard" in b:                           # dim, size, each rank's start
                shape[b["shard"][0]] = max(b["shard"][2:]) + b["shard"][1]
            weights.setdefault(b["weight_name"], {"name": b["weight_name"], "shape": shape, "dtype": b["dtype"]})
    return list(weights.values())


def _from_ir(graph, options: Options) -> dict:
    """The launch facts `mpk.kernel` records (the passes wrote them), each checked against
    what `options` asked for; an option's value only where the IR has none (a stub)."""
    asked = {"arch": options.arch, "num_sms": options.num_sms, "threads": options.threads,
             "smem_bytes": options.smem_bytes, "steps": options.steps}
    facts = {}
    for name, want in asked.items():
        value = graph.kernel_attr(name, None)
        if value is not None and want is not None and value != want:
            raise CompileError("bundle", f"mpk.kernel records {name} = {value}, but the options ask for {want}")
        facts[name] = value if value is not None else (want or 0)
    return facts


def _weights_are_bf16(module: ir.Module) -> bool:
    """The prefill program's GEMM and attention tiles run on the matrix units in bf16:
    a float32 or float16 model's prompts go through its decode kernel instead."""
    types = []

    def visit(op):
        if op.name == "mpk.weight":
            types.append(str(ir.RankedTensorType(op.results[0].type).element_type))
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    return bool(types) and set(types) == {"bf16"}


def _set_kernel_attr(module: ir.Module, name: str, value: int) -> None:
    for op in module.body.operations:
        if op.operation.name == "mpk.kernel" and name not in op.operation.attributes:
            with module.context:
                op.operation.attributes[name] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)


def cache_sizes(module: ir.Module) -> tuple[int, int] | None:
    """(batch, max_seq) as a module's KV caches hold them ([B, S, width] states, of
    graph or task IR), or None for a module without caches."""
    shapes = []

    def visit(op):
        if op.name == "mpk.state":
            shapes.append(tuple(ir.RankedTensorType(op.results[0].type).shape))
        elif op.name == "mpk.buffer" and ir.StringAttr(op.attributes["space"]).value == "state":
            shapes.append(tuple(ir.RankedTensorType(ir.TypeAttr(op.attributes["type"]).value).shape))
        return ir.WalkResult.ADVANCE
    module.operation.walk(visit)
    caches = {shape[:2] for shape in shapes if len(shape) == 3}
    return caches.pop() if len(caches) == 1 else None


def import_graph(source, kind: str, options: Options, stage=None):
    """Graph IR from a preset name, an HF config.json, a graph .mlir file
    (which keeps its own element types: `options.dtype` is for models), or a
    ModelConfig (kind "model").

    Returns (module, model config as a dict or None).
    """
    stage = stage or (lambda _name: TIMELESS())
    if kind == "mlir":
        from mpk.dialects.verify import verify
        from mpk.errors import checked_parse, read_text
        module, diagnostics = checked_parse(read_text(Path(source)), str(source), dialects.context(), verify)
        if module is None:
            raise CompileError("graph", f"{source} is not valid mpk graph IR", diagnostics)
        return module, None
    from mpk import frontend, models
    try:
        config = (source if isinstance(source, models.ModelConfig) else
                  models.preset(source) if kind == "model" else models.from_hf_config(source))
    except models.ConfigError as e:
        raise CompileError("graph", str(e)) from None
    models.check_lowerable(config, options.dtype, prefill=options.prefill_chunk > 0, threads=options.threads,
                           source=None if isinstance(source, models.ModelConfig) else str(source))
    try:
        module = frontend.import_model(config, batch=options.batch, max_seq=options.max_seq,
                                        dtype=options.dtype, progress=stage)
    except frontend.FrontendError as e:
        from mpk.diagnostics import format_diag
        raise CompileError("graph", f"cannot convert {source if isinstance(source, str) else 'the model'} "
                                    "to mpk graph IR",
                           [format_diag(d, "<torch>") for d in e.diagnostics]) from None
    return module, dataclasses.asdict(config)

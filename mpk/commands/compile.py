"""Compile a model's decode step into a bundle (one persistent GPU kernel).

    mpk compile --model qwen3-tiny -o qwen3-tiny.mpk
    mpk compile --model qwen3-0.6b --dtype float32 --steps 32 -o qwen3-0.6b-f32.mpk
    mpk compile --config path/to/config.json --batch 4 --max-seq 2048 -o model.mpk
    mpk compile path/to/hf-folder -o model.mpk          # config.json + tokenizer (for `mpk generate`)
    mpk compile graph.mlir --num-sms 114 --dump-dir stages/ -o model.mpk

Runs on any machine (no GPU): torch.export -> torch-mlir -> mpk graph IR ->
task IR -> PTX, then NVRTC + nvJitLink link the runtime into kernel.cubin.
--dump-dir writes the output of every stage: 0-graph.mlir ... 6-cubin.cubin.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mpk import defaults
from mpk.cli import Progress, UserError, failure


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("graph", nargs="?",
                        help="mpk graph-IR file (.mlir), or a Hugging Face model folder (config.json; its "
                             "tokenizer is copied into the bundle, and the folder is where `mpk generate` and "
                             "`mpk run` find the weights)")
    source.add_argument("--model", help="a model preset (e.g. qwen3-tiny, qwen3-0.6b, llama3.2-1b)")
    source.add_argument("--config", help="a Hugging Face config.json (or the folder holding it)")
    parser.add_argument("-o", "--output", required=True, help="bundle directory to write")
    parser.add_argument("--batch", type=int,
                        help=f"sequences decoded together (default {defaults.BATCH}; a graph file: its own)")
    parser.add_argument("--dtype", choices=defaults.DTYPES, default=defaults.DTYPE,
                        help=f"element type of weights, activations and KV caches (default {defaults.DTYPE}); "
                             "a graph file keeps its own")
    parser.add_argument("--max-seq", type=int,
                        help=f"KV cache length (default {defaults.MAX_SEQ}; a graph file: its caches' own)")
    parser.add_argument("--arch", default=defaults.ARCH, help=f"GPU architecture (default {defaults.ARCH})")
    parser.add_argument("--num-sms", type=int, default=defaults.NUM_SMS,
                        help=f"SMs to schedule for (default {defaults.NUM_SMS}, an H100 SXM or H200)")
    parser.add_argument("--threads", type=int, default=defaults.THREADS,
                        help=f"threads per worker CTA (default {defaults.THREADS})")
    parser.add_argument("--steps", type=int, default=defaults.STEPS,
                        help=f"decode steps per launch (default {defaults.STEPS})")
    parser.add_argument("--ring-bytes", type=int, default=0,
                        help="a ring of this many bytes of shared memory per SM into which the runtime "
                             "copies decode linears' weight tiles ahead of their tasks (mpk-stage-weights; "
                             "a multiple of 128; default 0: off, bench/NOTES.md round 12; at most about "
                             "120 KiB beside the tasks' 96 KiB and the task cache)")
    parser.add_argument("--data-flags", type=int, nargs="?", const=defaults.DATA_FLAG_ROWS,
                        default=defaults.DATA_FLAG_ROWS, metavar="MAX_ROWS",
                        help=f"activations of at most MAX_ROWS rows (default {defaults.DATA_FLAG_ROWS}; 0: none) "
                             "carry a readiness flag in every element, so the events between the linears and the "
                             "attention that write and read them need no counter and no release (mpk-data-flags; "
                             "on an H200 3.5-9.9%% faster at batch 1, 0.4-4.9%% at batch 8: bench/NOTES.md "
                             "rounds 22-23)")
    parser.add_argument("--no-caller-saves", dest="caller_saves", action="store_false",
                        help="link calls into the task code under the default calling convention, in which "
                             "every task function saves and restores the registers it uses (about 5-18%% "
                             "slower at batch 1: bench/NOTES.md round 13)")
    parser.add_argument("--prefill-chunk", type=int, default=defaults.PREFILL_CHUNK,
                        help="prompt tokens per sequence in one prefill launch (mpk-prefill; default "
                             f"{defaults.PREFILL_CHUNK}, "
                             "at most --max-seq); 0: no prefill program, prompts go through the decode "
                             "kernel one token per launch")
    parser.add_argument("--prefill-logits", choices=("last", "all"), default="last",
                        help="logits the prefill program returns: of each sequence's last prompt token "
                             "(default), or of every prompt token (for checking against a reference)")
    parser.add_argument("--tp", type=int, default=1,
                        help="tensor-parallel ranks (mpk-shard): one program every rank runs, each on its "
                             "own GPU with its slice of the weights (default 1). No prefill program yet: "
                             "prompts go through the decode kernel. To run N ranks side by side on one GPU "
                             "(`--emulate`), give each 1/N of the SMs: --num-sms 66 for 2 ranks on an H200")
    parser.add_argument("--allreduce", choices=("auto", "one-shot", "two-shot"), default="auto",
                        help="the tensor-parallel allreduce: one-shot (every rank stores its partial into "
                             "every other's memory), two-shot (reduce-scatter, then all-gather), or auto: "
                             "the cheaper by the cost model at each tensor's size (default)")
    parser.add_argument("--dump-dir", help="write the IR after every stage into this folder")
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing but errors (no progress bar, no pass statistics)")


def _validate(args) -> None:
    from mpk.api import check_arch
    from mpk.runtime.bundle import check_output
    for name in ("batch", "max_seq", "num_sms", "threads", "steps", "tp"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.threads % 32:
        raise UserError(f"--threads must be a multiple of 32, got {args.threads}")
    if args.prefill_chunk < 0:
        raise UserError(f"--prefill-chunk must be 0 or positive, got {args.prefill_chunk}")
    if args.data_flags < 0:
        raise UserError(f"--data-flags must be 0 (off) or a number of rows, got {args.data_flags}")
    if args.ring_bytes < 0 or args.ring_bytes % 128:
        raise UserError(f"--ring-bytes must be 0 or a positive multiple of 128, got {args.ring_bytes}")
    check_arch(args.arch)
    if args.graph and not (Path(args.graph).is_file() or (Path(args.graph) / "config.json").is_file()):
        raise UserError(f"no such file: {args.graph}" if not Path(args.graph).is_dir()
                        else f"{args.graph} is a folder without config.json")
    if args.config:
        path = Path(args.config)
        if not (path.is_file() or (path / "config.json").is_file()):
            raise UserError(f"no config.json at {args.config}")
    check_output(args.output)      # before the compile, not after it


def _graph_sizes(module, options, args):
    """A graph file's batch and cache length are its caches' own: the options take
    them, and --batch / --max-seq may only repeat them."""
    from mpk import driver
    sizes = driver.cache_sizes(module)
    if sizes is None:
        return options
    for flag, asked, held in (("--batch", args.batch, sizes[0]), ("--max-seq", args.max_seq, sizes[1])):
        if asked is not None and asked != held:
            raise UserError(f"{args.graph}: its KV caches are for {flag} {held}, not {asked} (a graph "
                            f"file's sizes are fixed: leave {flag} out)")
    return dataclasses.replace(options, batch=sizes[0], max_seq=sizes[1])


def run(args) -> int:
    _validate(args)
    from mpk import driver
    options = driver.Options(batch=args.batch or defaults.BATCH, dtype=args.dtype,
                             max_seq=args.max_seq or defaults.MAX_SEQ,
                             arch=args.arch, num_sms=args.num_sms, threads=args.threads, steps=args.steps,
                             ring_bytes=args.ring_bytes, caller_saves=args.caller_saves, prefill_chunk=args.prefill_chunk if args.tp == 1 else 0,
                             tp=args.tp, allreduce=args.allreduce,
                             prefill_all_logits=args.prefill_logits == "all", data_flags=args.data_flags,
                             report=not args.quiet)
    folder = args.graph if args.graph and Path(args.graph).is_dir() else None
    kind, source = (("config", folder) if folder else ("mlir", args.graph) if args.graph else
                    ("model", args.model) if args.model else ("config", args.config))
    dump = driver.Dumper(args.dump_dir)
    try:
        with Progress(quiet=args.quiet, stages=driver.stages(options), unit="stage", leave=True, done="done",
                      bar_format="{desc:<28}{bar:20} {n_fmt}/{total_fmt} [{elapsed}]") as progress:
            with progress.stage("graph"):
                module, config = driver.import_graph(source, kind, options, stage=progress.stage)
                dump("graph", module)
            if kind == "mlir":
                options = _graph_sizes(module, options, args)
            path = driver.compile_task_module(module, options, Path(args.output), model_config=config,
                                              dump=dump, stage=progress.stage,
                                              source=Path(folder) if folder else None)
    except driver.CompileError as e:
        raise failure(e.headline, e.diagnostics[:e.SHOWN]) from None
    if not args.quiet:
        print(f"wrote {path}")
    return 0

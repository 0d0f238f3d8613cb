"""Compile the benchmark's bundles (on the compiling machine: needs MLIR, no GPU).

    python -m bench.build                      # every model x batch of bench/decode.py
    python -m bench.build --models qwen3-0.6b --batches 1
    python -m bench.build --hop-only           # only the hop microbenchmark's cubin (no MLIR)
    python -m bench.build --root .bundles/spin --runtime-define MPK_WAIT_SPIN_NS=2000   # a runtime switch

One bundle per (model, batch), bf16, into .bundles/bench/<model>-b<batch>/,
and bench.hop's cubin next to them (.bundles/bench/hop.cubin).
Its KV cache holds MAX_SEQ rows, enough for the largest context plus one
launch of steps: `bench.decode` picks the context at run time through the
positions, since attention reads only rows 0..pos.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mpk import defaults

MODELS = ("qwen3-0.6b", "qwen3-1.7b", "qwen3-8b", "llama3.2-1b")
BATCHES = (1, 8)
CONTEXTS = (1024, 4096)
STEPS = 16                                  # decode steps per launch
MAX_SEQ = max(CONTEXTS) + STEPS
ROOT = Path(".bundles/bench")
PREFILL_ROOT = Path(".bundles/prefill")   # bench.prefill's
PREFILL_CHUNK = 1024


def bundle_path(model: str, batch: int, root: Path = ROOT) -> Path:
    return root / f"{model}-b{batch}"


def build(model: str, batch: int, root: Path = ROOT, num_sms: int = defaults.NUM_SMS,
          ring_bytes: int | None = None, rope_in_attention: bool = True, prefill_chunk: int = 0,
          merge_in_attention: bool = True, gate_up_in_decode: bool = True,
          runtime_defines: dict[str, str] | None = None, shared_tile_max_bytes: int | None = None,
          tp: int = 1, store_in_product: bool = True, smem_bytes: int | None = None,
          caller_saves: bool = True, split_sample: bool = True,
          data_flags: int = defaults.DATA_FLAG_ROWS) -> Path:
    from mpk import driver, frontend, models
    import dataclasses
    config = models.preset(model)
    options = driver.Options(batch=batch, max_seq=MAX_SEQ, num_sms=num_sms, steps=STEPS,
                             rope_in_attention=rope_in_attention, prefill_chunk=prefill_chunk,
                             merge_in_attention=merge_in_attention, gate_up_in_decode=gate_up_in_decode,
                             runtime_defines=tuple(sorted((runtime_defines or {}).items())), tp=tp,
                             store_in_product=store_in_product, caller_saves=caller_saves,
                             split_sample=split_sample, data_flags=data_flags)
    if ring_bytes is not None:
        options = dataclasses.replace(options, ring_bytes=ring_bytes)
    if smem_bytes is not None:
        options = dataclasses.replace(options, smem_bytes=smem_bytes)
    if shared_tile_max_bytes is not None:
        options = dataclasses.replace(options, shared_tile_max_bytes=shared_tile_max_bytes)
    module = frontend.import_model(config, batch=batch, max_seq=MAX_SEQ, dtype="bfloat16")
    path = bundle_path(model, batch, root)
    return driver.compile_task_module(module, options, path.with_name(f"{path.name}-tp{tp}") if tp > 1 else path,
                                      model_config=dataclasses.asdict(config))


def parse_define(text: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name.isidentifier():
        parser.error(f"--runtime-define {text!r}: expected NAME=VALUE with a C identifier as NAME")
    return name, value if equals else "1"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--num-sms", type=int, default=defaults.NUM_SMS)
    parser.add_argument("--ring-bytes", type=int, help="mpk-stage-weights{ring-bytes}: the weight ring "
                        "(0: none, for an A/B comparison); default: the compiler's")
    parser.add_argument("--no-caller-saves", dest="caller_saves", action="store_false",
                        help="task functions save the registers they use (the default calling convention; "
                             "runtime.build.caller_saves_ptx; NOTES round 13)")
    parser.add_argument("--smem-bytes", type=int, help="mpk-lower-tasks{smem-bytes}: the tasks' shared-memory "
                        "scratch (room for a larger ring); default: the compiler's")
    parser.add_argument("--no-rope-in-attention", dest="rope_in_attention", action="store_false",
                        help="keep rope_append a group of its own (mpk-partition{rope-in-attention=false})")
    parser.add_argument("--no-merge-in-attention", dest="merge_in_attention", action="store_false",
                        help="merge a split attention in a combine group of its own "
                             "(mpk-partition{merge-in-attention=false})")
    parser.add_argument("--no-split-sample", dest="split_sample", action="store_false",
                        help="one sampler task per row (mpk-partition{split-sample=false}; NOTES round 15)")
    parser.add_argument("--no-gate-up-in-decode", dest="gate_up_in_decode", action="store_false",
                        help="keep an MLP's gate, up and silu_mul apart at decode rows "
                             "(mpk-fuse-gate-up{decode=false})")
    parser.add_argument("--prefill", action="store_true",
                        help=f"bench.prefill's bundles: a prefill kernel of --prefill-chunk rows per sequence, "
                             f"into {PREFILL_ROOT}/ unless --root says otherwise (decode's bundles have none)")
    parser.add_argument("--prefill-chunk", type=int, default=PREFILL_CHUNK)
    parser.add_argument("--runtime-define", action="append", default=[], metavar="NAME=VALUE",
                        help="compile the persistent runtime with -DNAME=VALUE (the switches at the top of "
                             "runtime/mpk_runtime.cu), for an A/B build; repeatable; recorded in "
                             "<root>/runtime-defines.json")
    parser.add_argument("--shared-tile-max-bytes", type=int,
                        help="mpk-partition{shared-tile-max-bytes}: q/k/v tiles of more weight bytes than this "
                             "(at most twice) take two waves at batch 1 (default 0: never; round 11's rule was "
                             "65536, the runtime's prefetch bound)")
    parser.add_argument("--tp", type=int, default=1,
                        help="tensor-parallel ranks (bench.tp's bundles, <model>-b<batch>-tp<N>); for ranks "
                             "emulated on one GPU give --num-sms SMs/N")
    parser.add_argument("--no-store-in-product", dest="store_in_product", action="store_false",
                        help="mpk-partition{store-in-product=false}: an allgather task after o_proj/down (A/B)")
    parser.add_argument("--data-flags", type=int, nargs="?", const=defaults.DATA_FLAG_ROWS,
                        default=defaults.DATA_FLAG_ROWS, metavar="MAX_ROWS",
                        help="mpk-data-flags{max-rows}: activations of at most MAX_ROWS rows carry their flags, "
                             f"no counter between their linears and attention (default {defaults.DATA_FLAG_ROWS}; "
                             "0: off; NOTES rounds 22-23)")
    parser.add_argument("--hop-only", action="store_true", help="build only bench.hop's cubin")
    args = parser.parse_args(argv)
    defines = dict(parse_define(d, parser) for d in args.runtime_define)
    if args.prefill and args.root == ROOT:
        args.root = PREFILL_ROOT
    if not args.prefill:      # bench.decode's bundles come with bench.hop's cubin
        from bench import hop
        print(f"{hop.build(args.root / 'hop.cubin')}: the hop microbenchmark", flush=True)
    if args.hop_only:
        return 0
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "runtime-defines.json").write_text(json.dumps(defines, indent=1) + "\n")
    for model in args.models:
        for batch in args.batches:
            start = time.perf_counter()
            path = build(model, batch, args.root, args.num_sms, args.ring_bytes, args.rope_in_attention,
                         args.prefill_chunk if args.prefill else 0, args.merge_in_attention,
                         args.gate_up_in_decode, defines, args.shared_tile_max_bytes, args.tp,
                         args.store_in_product, args.smem_bytes, args.caller_saves,
                         split_sample=args.split_sample, data_flags=args.data_flags)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            print(f"{path}: {size / 2**20:.1f} MiB in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

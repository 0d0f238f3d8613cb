"""Import a PyTorch decoder's decode step as mpk graph IR.

Builds the model on the meta device (no weights are read or allocated),
exports the decode step with torch.export, imports it with torch-mlir and
converts it with the torch-to-mpk pass. Weights appear as `mpk.weight` ops
named like the Hugging Face checkpoint's tensors.

examples:
  mpk import --model qwen3-0.6b -o qwen3-0.6b.mlir
  mpk import --config path/to/config.json --batch 8 --max-seq 2048
"""

from __future__ import annotations

import argparse
import sys

from mpk import defaults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME", help="a preset (see --list-models)")
    source.add_argument("--config", metavar="CONFIG_JSON",
                        help="a Hugging Face config.json (or the folder holding it)")
    source.add_argument("--list-models", action="store_true", help="print the presets and exit")
    parser.add_argument("--batch", type=_positive, default=defaults.BATCH, metavar="B",
                        help=f"sequences per step (default {defaults.BATCH})")
    parser.add_argument("--max-seq", type=_positive, default=defaults.MAX_SEQ, metavar="S",
                        help=f"KV cache length (default {defaults.MAX_SEQ})")
    parser.add_argument("--dtype", choices=defaults.DTYPES, default="float32",
                        help="weights, activations and KV caches (default float32)")
    parser.add_argument("-o", "--output", metavar="FILE", default="-", help="output file (default stdout)")
    parser.add_argument("--emit", choices=("mpk", "torch"), default="mpk",
                        help="mpk graph IR (default) or the torch-dialect input of torch-to-mpk (generic form)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from mpk.cli import UserError, failure
    from mpk.models import PRESETS, ConfigError, check_lowerable, from_hf_config, preset

    if args.list_models:
        for name, config in PRESETS.items():
            print(f"{name:20} {config.family:6} {config.num_parameters / 1e6:10.2f}M parameters")
        return 0
    try:
        config = preset(args.model) if args.model else from_hf_config(args.config)
        check_lowerable(config, args.dtype, source=args.config or args.model)
    except ConfigError as e:
        raise UserError(str(e)) from None

    from mpk import frontend
    from mpk.cli import Progress
    # On a terminal a bar over the slow steps; a line with each step's time in any case.
    steps = ("torch.export", "torch-mlir import") + (() if args.emit == "torch" else ("torch-to-mpk",))
    try:
        with Progress(quiet=args.quiet, stages=steps, timings=True, terminal_only=True,
                      bar_format="{desc}: step {n}/{total} [{elapsed}]") as progress:
            if args.emit == "torch":
                with progress.stage("torch.export"):
                    program = frontend.export_decode_step(config, args.batch, args.max_seq, args.dtype)
                with progress.stage("torch-mlir import"):
                    text = frontend.import_torch_dialect(program, config)
            else:
                module = frontend.import_model(config, args.batch, args.max_seq, args.dtype,
                                               progress=progress.stage)
                text = str(module)
    except frontend.FrontendError as e:     # as `mpk compile` says it (driver.import_graph)
        raise failure(f"cannot convert {args.model or args.config} to mpk graph IR", [e]) from None
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w") as f:
                f.write(text)
        except OSError as e:
            raise UserError(f"cannot write {args.output!r}: {e.strerror}") from None
    return 0

"""Compile a small Qwen3-shaped model, run it, check it against PyTorch, time it.

    mpk demo                            # on the GPU if the driver sees one, else the CPU task interpreter
    mpk demo --backend interp --new-tokens 8
    mpk demo --bundle .bundles/demo     # compile into DIR once; later runs (and machines
                                        # without MLIR) load it from there

The model is the `qwen3-demo` preset (4 layers, hidden 256, 8 query and
2 KV heads of 32, vocabulary 4096, tied embeddings) with seeded random
weights and a random prompt. It prints the generated tokens, the check of
every step's logits and token against a float64 PyTorch reference, the time
per decode step and how close that is to the memory-bandwidth floor of the
machine it ran on. Exits with 1 if the check fails.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mpk.check import TOLERANCE
from mpk.cli import UserError, resolve_backend

MODEL = "qwen3-demo"
BUNDLE_ENV = "MPK_DEMO_BUNDLE"


def add_arguments(parser) -> None:
    parser.add_argument("--backend", choices=("auto", "gpu", "interp"), default="auto",
                        help="gpu: the persistent kernel; interp: the CPU task interpreter; "
                             "auto (default): gpu when there is one")
    parser.add_argument("--bundle", default=os.environ.get(BUNDLE_ENV), metavar="DIR",
                        help=f"use the bundle in DIR, or compile into DIR if there is none "
                             f"(default: ${BUNDLE_ENV}, else a temporary directory)")
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded together when compiling (default 1)")
    parser.add_argument("--prompt-len", type=int, default=4, help="random prompt tokens per sequence (default 4)")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens to generate (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the prompt (default 0)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="largest relative logit error per step (default: mpk run --check's)")


def run(args) -> int:
    for name in ("batch", "prompt_len", "new_tokens"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    with tempfile.TemporaryDirectory(prefix="mpk-demo-") as scratch:
        return _demo(args, _bundle(args, Path(scratch) / "demo.mpk"))


def _demo(args, bundle) -> int:
    from mpk import api
    from mpk.check import check_generation
    from mpk.runtime.loader import LoaderError
    from mpk.runtime.weights import random_weights

    model = bundle.plan.get("model")
    if not model:
        raise UserError(f"{bundle.path} was compiled from a graph file: the demo needs a model's bundle")
    print(f"model: {model['family']}, {model['num_layers']} layers, hidden {model['hidden_size']}, "
          f"vocabulary {model['vocab_size']}, {_dtype(bundle)}; batch "
          f"{bundle.plan['batch']}, {bundle.kernel['num_tasks']} tasks per step on {bundle.kernel['num_sms']} "
          f"workers, {bundle.kernel['steps']} steps per launch")

    rng = np.random.default_rng(args.seed)
    batch, vocab = bundle.plan["batch"], model["vocab_size"]
    prompt = rng.integers(0, vocab, (batch, args.prompt_len))
    weights = random_weights(bundle.weights(), args.seed)
    try:
        with api.load(bundle, weights, backend=resolve_backend(args.backend)) as session:
            where = (f"the GPU ({session.device})" if session.backend == "gpu"
                     else "the CPU task interpreter" + ("" if args.backend == "interp" else " (no GPU found)"))
            print(f"running on {where}")
            out = session.generate(prompt, args.new_tokens)
            for row in range(batch):
                print(f"prompt[{row}]:    {' '.join(map(str, prompt[row]))}")
                print(f"generated[{row}]: {' '.join(map(str, out.tokens[row]))}")
            if bundle.prefill is not None and args.prompt_len > 1:
                print(f"prefill: {args.prompt_len} prompt tokens per sequence through the prefill kernel "
                      f"(chunks of {bundle.prefill_chunk}) in {out.prefill_seconds * 1e3:.1f} ms, host included")
            report = check_generation(bundle, weights, prompt, out, args.tolerance)
            print("check against PyTorch (float64, fed the same tokens), per step:")
            print(report.table())
            _speed(session, bundle, out, args.prompt_len)
    except (LoaderError, ValueError) as e:         # the bundle does not fit this machine, bad arguments
        raise UserError(str(e)) from None
    return 0 if report.ok else 1


def _bundle(args, scratch: Path):
    """The bundle in --bundle if there is one there, else a fresh compile into --bundle (or `scratch`)."""
    from mpk.runtime import bundle as bundles
    if args.bundle and (Path(args.bundle) / bundles.PLAN).is_file():
        try:
            bundle = bundles.read(args.bundle)
        except bundles.BundleError as e:
            raise UserError(str(e)) from None
        print(f"bundle: {bundle.path} (compiled earlier; delete it to recompile)")
        return bundle
    if args.bundle and Path(args.bundle).exists():
        raise UserError(f"--bundle {args.bundle} exists and is not a bundle; give a new folder to compile into")
    try:
        import mlir.ir  # noqa: F401
    except ImportError as e:
        raise UserError(f"compiling needs the MLIR bindings, which do not import here ({e}); install mpk's "
                        f"dependencies, or give --bundle DIR (or ${BUNDLE_ENV}) a bundle compiled elsewhere "
                        f"with `mpk demo --bundle DIR`") from None
    from mpk import api, driver
    start = time.perf_counter()
    try:
        bundle = api.compile(MODEL, batch=args.batch, max_seq=256, path=args.bundle or scratch)
    except (driver.CompileError, ValueError) as e:           # ValueError: --bundle is something else
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write the bundle to {args.bundle}: {e.strerror}") from None
    where = f"into {bundle.path}" if args.bundle else "(a temporary one: --bundle DIR keeps it)"
    print(f"bundle: compiled in {time.perf_counter() - start:.1f} s {where}")
    return bundle


def _dtype(bundle) -> str:
    return next(iter(bundle.weights().values()))["dtype"]


def _speed(session, bundle, out, prompt_len: int) -> None:
    """ms per step, and the bandwidth floor: bytes a step reads / memory bandwidth of this machine."""
    from mpk.runtime import bandwidth

    if session.backend == "gpu":
        seconds = session.benchmark(launches=5, position=prompt_len - 1)
        position = prompt_len - 1 + (session.steps_per_launch - 1) / 2
        how = f"CUDA events around one launch of {session.steps_per_launch} steps, median of 5"
        bytes_per_s = bandwidth.device_bandwidth()
        memory = f"{session.device} memory, torch.sum read stream"
    else:
        prefilled = bundle.prefill is not None and prompt_len > 1
        steps = out.tokens.shape[1] - 1 if prefilled else prompt_len - 1 + out.tokens.shape[1]
        seconds = (out.decode_seconds if prefilled else out.seconds) / max(steps, 1)
        position = (prompt_len + steps / 2) if prefilled else (steps - 1) / 2
        how = f"wall time of the {steps} decode steps above"
        bytes_per_s = bandwidth.host_read_bandwidth()
        memory = "host memory, one-core numpy read stream"
    nbytes = bandwidth.step_bytes(bundle.plan, position).total
    floor = nbytes / bytes_per_s
    print(f"speed: {seconds * 1e3:.3f} ms/step ({how})")
    print(f"floor: {nbytes / 1e6:.2f} MB read per step / {bytes_per_s / 1e9:.1f} GB/s ({memory}) = "
          f"{floor * 1e3:.4f} ms/step: mpk runs at {floor / seconds:.1%} of the bandwidth floor")

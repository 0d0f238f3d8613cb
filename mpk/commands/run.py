"""Run a compiled bundle: greedy decoding on the GPU (or the CPU task interpreter).

    mpk run model.mpk --seed 0 --prompt-ids 1 2 3 --steps 16
    mpk run model.mpk --weights path/to/hf-folder --steps 32 --check
    mpk run model.mpk --backend interp --steps 4 --check

Weights: random from --seed (default 0), or --weights, a folder of
*.safetensors with Hugging Face names (random weights take the bundle's dtype).
--check runs the PyTorch model in float64 on the same weights, fed the same
tokens, and prints a per-step table (mpk.check): relative logit error under
--tolerance and the same greedy token wherever the margin is clear, else exit
code 1. On the GPU the run is followed by --repeat timed launches (ms/step).
Without --backend it runs on the GPU when the CUDA driver sees one, else on
the CPU task interpreter (a progress bar on stderr when that takes a while).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

from mpk.check import TOLERANCE
from mpk.cli import UserError


def add_arguments(parser) -> None:
    parser.add_argument("bundle", help="bundle directory written by `mpk compile`")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="folder of *.safetensors (Hugging Face parameter names)")
    source.add_argument("--seed", type=int, default=0, help="random weights from this seed (default 0)")
    parser.add_argument("--prompt-ids", type=int, nargs="+", default=[1], help="prompt token ids (default: 1)")
    parser.add_argument("--steps", type=int, default=8, help="tokens to generate (default 8)")
    parser.add_argument("--backend", choices=("auto", "gpu", "interp"), default="auto",
                        help="gpu: the persistent kernel; interp: the CPU task interpreter; "
                             "auto (default): gpu when the CUDA driver sees one")
    parser.add_argument("--check", action="store_true", help="compare logits with the PyTorch model")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"largest relative logit error ||ours - ref|| / ||ref|| per step that --check "
                             f"accepts (default {TOLERANCE:g})")
    parser.add_argument("--tp", type=int, default=None,
                        help="tensor-parallel ranks; must be the bundle's (`mpk compile --tp N`), which runs "
                             "its ranks on N GPUs, or side by side on one")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds a task may wait for its inputs before the kernel gives up (default 2)")
    parser.add_argument("--profile", nargs="?", const=True, metavar="TRACE.json",
                        help="time every task of the last launch (gpu): print the time per task kind and "
                             "where each dependent stage's time goes; with a "
                             "file name, also write a Perfetto/Chrome trace there (ui.perfetto.dev)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed launches after the run, which warms up (gpu; default 5, 0: none)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar for the interpreter, no note on the backend chosen")


def run(args) -> int:
    from mpk import api
    from mpk.cli import interp_progress, resolve_backend
    from mpk.runtime import bundle as bundles
    from mpk.runtime.loader import LoaderError

    if args.steps < 1 or args.repeat < 0:
        raise UserError(f"--steps must be positive and --repeat not negative, got {args.steps}, {args.repeat}")
    backend = resolve_backend(args.backend)
    if args.profile and backend != "gpu":
        raise UserError("--profile reads the persistent kernel's timers: it needs --backend gpu")
    bundle = bundles.read(args.bundle)
    if args.backend == "auto" and backend == "interp" and not args.quiet:
        print("mpk run: no CUDA GPU here: running on the CPU task interpreter (--backend interp)", file=sys.stderr)
    options = {"timeout_s": args.timeout, "profile": bool(args.profile)} if backend == "gpu" else {}
    try:
        weights = api.resolve_weights(bundle, args.weights if args.weights else args.seed)
        with api.load(bundle, weights, backend=backend, tp=args.tp, **options) as session:
            progress = (interp_progress(session.runner, _task_runs(bundle, len(args.prompt_ids), args.steps),
                                        args.quiet) if backend == "interp" else contextlib.nullcontext())
            with progress:
                start = time.perf_counter()
                out = session.generate(args.prompt_ids, args.steps)     # the prompt for every sequence
                elapsed = time.perf_counter() - start
            if args.profile:
                _profile(session.runner, args.profile)
            per_step = (_time_launches(session.runner, args.prompt_ids, args.steps, args.repeat)
                        if backend == "gpu" and args.repeat > 0 else None)
    except LoaderError as e:
        raise UserError(str(e)) from None

    from mpk.runtime.ranks import launched_by_torchrun
    if launched_by_torchrun() and os.environ["RANK"] != "0":
        return 0                      # one rank of several (torchrun): rank 0 reports
    for row, tokens in enumerate(out.tokens):
        print(f"tokens[{row}]: {' '.join(str(int(t)) for t in tokens)}")
    launches = -(-args.steps // session.steps_per_launch)
    prompt = len(args.prompt_ids)
    prompt_how = (f"prompt of {prompt} in {-(-prompt // bundle.prefill_chunk)} prefill launch(es)"
                  if bundle.prefill is not None and prompt > 1 else f"+{prompt - 1} prompt tokens, one launch each")
    print(f"{backend} ({session.device}): {args.steps} steps in {launches} launch(es) of at most "
          f"{session.steps_per_launch} ({prompt_how}) in {elapsed * 1e3:.1f} ms, host round trips included")
    if per_step is not None:
        n = min(args.steps, session.steps_per_launch)
        print(f"kernel: {per_step * 1e3:.3f} ms/step (CUDA events around one launch of {n} steps from "
              f"position {len(args.prompt_ids) - 1}, median of {args.repeat}, after the run above as warm-up)")
    if args.check:     # teacher-forced float64 PyTorch on the same weights: a per-step table
        from mpk.check import check_generation
        report = check_generation(bundle, weights, args.prompt_ids, out, args.tolerance, what="--check")
        print(report.table())
        return 0 if report.ok else 1
    return 0


def _task_runs(bundle, prompt_len: int, steps: int) -> int:
    """The task runs of `generate` for one prompt of `prompt_len` tokens and `steps` new tokens
    (mpk.runtime.loader.generate's launches: prefill chunks then decode steps, or one decode
    step per position), for the interpreter's progress bar."""
    from mpk.runtime.loader import chunk_starts
    decode = bundle.kernel["num_tasks"]
    if bundle.prefill is not None and prompt_len > 1:
        chunks = len(chunk_starts(prompt_len, bundle.prefill_chunk, bundle.plan["max_seq"]))
        return chunks * bundle.prefill.kernel["num_tasks"] + (steps - 1) * decode
    return (prompt_len - 1 + steps) * decode


def _time_launches(session, prompt_ids, steps: int, repeat: int) -> float:
    """Seconds per step of the first decode launch of the run, repeated (same tokens, same positions)."""
    batch = session.bundle.buffer("tokens")["shape"][0]
    return session.seconds_per_step(np.full(batch, prompt_ids[-1]), np.full(batch, len(prompt_ids) - 1),
                                    min(steps, session.steps_per_launch), repeat)


def _profile(session, trace_path) -> None:
    """The last launch as the in-kernel profiler saw it: time per task kind, and a trace file."""
    from mpk.runtime import trace
    records = session.profile_ns()
    print(trace.format_summary(trace.summarize(session.plan, session.bundle.tables, records)))
    if stages := trace.format_stages(trace.stages(session.plan, records)):
        print(stages)
    if trace_path is not True:
        try:
            path = trace.write_trace(trace_path, session.plan, session.bundle.tables, records,
                                     device=session.device_name, bundle=session.bundle.path)
        except OSError as e:
            raise UserError(f"cannot write {trace_path}: {e.strerror}") from None
        print(f"wrote {path}: {records.shape[0]} steps x {records.shape[1]} tasks on "
              f"{session.num_workers} worker tracks (open it in ui.perfetto.dev)")

"""Run a compiled bundle: greedy decoding on the GPU (or the CPU task interpreter).

    mpk run model.mpk --seed 0 --prompt-ids 1 2 3 --steps 16
    mpk run model.mpk --weights path/to/hf-folder --steps 32 --check
    mpk run model.mpk --backend interp --steps 4 --check

Weights: random from --seed (default 0), or --weights, a folder of
*.safetensors with Hugging Face names. --check runs the PyTorch model on the
same weights and tokens and compares the logits of every step.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from mpk.cli import UserError


def add_arguments(parser) -> None:
    parser.add_argument("bundle", help="bundle directory written by `mpk compile`")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="folder of *.safetensors (Hugging Face parameter names)")
    source.add_argument("--seed", type=int, default=0, help="random weights from this seed (default 0)")
    parser.add_argument("--prompt-ids", type=int, nargs="+", default=[1], help="prompt token ids (default: 1)")
    parser.add_argument("--steps", type=int, default=8, help="tokens to generate (default 8)")
    parser.add_argument("--backend", choices=("gpu", "interp"), default="gpu",
                        help="gpu: the persistent kernel; interp: the CPU task interpreter")
    parser.add_argument("--check", action="store_true", help="compare logits with the PyTorch model")
    parser.add_argument("--tolerance", type=float, default=3e-2,
                        help="largest relative logit error --check accepts (default 0.03)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds a task may wait for its inputs before the kernel gives up (default 2)")
    parser.add_argument("--profile", action="store_true", help="print per-group task times (gpu)")


def run(args) -> int:
    from mpk.backends import open_backend
    from mpk.runtime import bundle as bundles
    from mpk.runtime.loader import LoaderError, generate
    from mpk.runtime.weights import load_safetensors, random_weights

    if args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    try:
        bundle = bundles.read(args.bundle)
        specs = bundle.weights()
        weights = load_safetensors(args.weights, specs) if args.weights else random_weights(specs, args.seed)
        options = {"timeout_s": args.timeout, "profile": args.profile} if args.backend == "gpu" else {}
        with open_backend(bundle, args.backend, **options) as backend:
            backend.bind_weights(weights)
            start = time.perf_counter()
            result = generate(backend, args.prompt_ids, args.steps)
            elapsed = time.perf_counter() - start
            if args.profile:
                _print_profile(backend)
    except (bundles.BundleError, LoaderError) as e:
        raise UserError(str(e)) from None

    tokens = result["tokens"]
    for row in range(tokens.shape[1]):
        print(f"tokens[{row}]: {' '.join(str(int(t)) for t in tokens[:, row])}")
    where = getattr(backend, "device_name", "CPU")
    print(f"{args.backend} ({where}): {args.steps} steps (+{len(args.prompt_ids) - 1} prompt tokens) "
          f"in {elapsed * 1e3:.1f} ms, host round trips included")
    if args.check:
        return _check(bundle, weights, args.prompt_ids, result, args.tolerance)
    return 0


def _print_profile(session, top: int = 10) -> None:
    """Per-kind totals and the busiest groups of the last launch (globaltimer)."""
    times = session.profile_ns().astype(np.int64)           # [steps, tasks, 2]
    busy = (times[..., 1] - times[..., 0]).mean(axis=0)     # per task, mean over steps
    groups = session.plan["groups"]
    per_group = [(busy[g["first_task"]:g["first_task"] + g["num_tasks"]].sum() / 1e3, g) for g in groups]
    kinds: dict[str, float] = {}
    for us, g in per_group:
        kinds[g["kind"]] = kinds.get(g["kind"], 0.0) + us
    step = (times[..., 1].max(axis=1) - times[..., 0].min(axis=1)) / 1e3
    workers = session.num_workers
    print(f"profile of the last launch: {times.shape[0]} steps of {', '.join(f'{s:.1f}' for s in step)} us")
    print(f"  task time summed over {workers} workers, us per step (SM time available: {workers * step.mean():.0f}):")
    for kind, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"    {kind:<12} {us:10.1f}")
    print("  busiest groups:")
    for us, g in sorted(per_group, key=lambda x: -x[0])[:top]:
        print(f"    {g['name'][:48]:<48} {g['num_tasks']:>5} tasks {us:10.1f}")


def _check(bundle, weights, prompt_ids, result, tolerance: float) -> int:
    """Teacher-forced PyTorch run on the same weights and tokens; compares every step's logits."""
    if "logits" not in result:
        raise UserError("--check needs a per-step 'logits' io buffer in the bundle")
    if not bundle.plan.get("model"):
        raise UserError("--check needs the model config; this bundle was compiled from a graph file")
    try:
        import torch
    except ImportError:
        raise UserError("--check needs PyTorch") from None
    from mpk.backends import as_float32
    from mpk.models import Decoder, ModelConfig

    config = ModelConfig(**bundle.plan["model"])
    batch = result["tokens"].shape[1]
    model = Decoder(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in as_float32(weights).items()}, strict=True)
    model.setup_caches(batch, int(bundle.plan.get("max_seq", 4096)))
    prompt = np.broadcast_to(np.atleast_2d(np.asarray(prompt_ids)), (batch, len(prompt_ids)))
    fed = np.concatenate([prompt.T, result["tokens"][:-1]])        # the token each step consumed
    ours = np.concatenate([result["prompt_logits"], result["logits"]])
    worst = 0.0
    with torch.no_grad():
        for position, tokens in enumerate(fed):
            _, reference = model(torch.from_numpy(tokens.astype(np.int64)), torch.full((batch,), position))
            reference = reference.float().numpy()
            error = np.abs(ours[position] - reference).max() / max(np.abs(reference).max(), 1e-6)
            worst = max(worst, error)
            agree = np.mean(ours[position].argmax(-1) == reference.argmax(-1))
            print(f"check step {position:3d}: max relative logit error {error:.2e}, argmax agrees {agree:.0%}")
    verdict = "ok" if worst <= tolerance else "FAILED"
    print(f"check {verdict}: worst relative error {worst:.2e} (tolerance {tolerance:g})")
    return 0 if worst <= tolerance else 1

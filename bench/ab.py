"""Two builds of the same bundles, timed against each other on one GPU.

    python -m bench.ab .bundles/bench-base .bundles/bench --models qwen3-0.6b --batches 1 8

For a change whose gain is a few percent, machine-to-machine spread is as
large as the effect: this loads both bundles of a (model, batch) in one
process with the same random weights and KV cache rows, checks each against
PyTorch as `bench.decode` does (models under 8B parameters: the fp32
reference of an 8B model beside two sessions does not fit an 80 GB card),
then times them interleaved (`--rounds` rounds of `--launches` launches
each, alternating), and reports the medians, the p10-p90 spread and, with
`--profile`, the in-kernel profile of each. Writes `--out` (JSON).

Each (model, batch) runs in a child process of its own: a build that faults
on the GPU leaves its CUDA context unusable, and would otherwise take every
later row with it. Such a row (or one whose logit check failed) is recorded
with its error, the rows after it run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench.build import bundle_path
from bench.decode import (WARMUP, MpkRun, card_name, check, fill_caches, profile_summary,
                          torch_model)

CHECK_MAX_PARAMS = 4e9


def compare(model_name: str, batch: int, ctx: int, roots: list[Path], args) -> dict:
    from mpk.models import preset
    config = preset(model_name)
    model = torch_model(config, args.seed)
    checkable = sum(p.numel() for p in model.parameters()) < CHECK_MAX_PARAMS
    rng = np.random.default_rng([args.seed, batch])
    tokens = rng.integers(0, config.vocab_size, batch)
    runs, row = [], {"model": model_name, "batch": batch, "ctx": ctx, "builds": {}}
    try:
        roots = [root for root in roots if bundle_path(model_name, batch, root).is_dir()]
        for root in roots:
            run = MpkRun(bundle_path(model_name, batch, root), model, profile=args.profile)
            runs.append(run)
            fill_caches(model, run, batch, ctx, args.seed)   # same seed: the same rows for every build
            row["builds"][str(root)] = {"check": check(model, run, tokens, ctx) if checkable else "skipped"}
        samples = [[] for _ in runs]
        for run in runs:
            for _ in range(WARMUP):
                run.launch(tokens, ctx - 1, timed=True)
        for _ in range(args.rounds):
            for run, out in zip(runs, samples):
                out += [run.launch(tokens, ctx - 1, timed=True) / run.steps * 1e3
                        for _ in range(args.launches)]
        for root, run, ms in zip(roots, runs, samples):
            entry = row["builds"][str(root)]
            entry.update(ms=float(np.median(ms)), ms_p10=float(np.percentile(ms, 10)),
                         ms_p90=float(np.percentile(ms, 90)))
            if args.profile:
                run.profiled_launch(tokens, ctx - 1)
                entry["profile"] = profile_summary(run)
    finally:
        for run in runs:
            run.session.close()
        del model
        torch.cuda.empty_cache()
    return row


def isolated(run, *args) -> dict:
    """`run(*args)` (a row) in a fresh child process; if it raises or the child
    dies, the row is {"error": ...} instead."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(run, *args).result()
        except Exception as err:          # what run raised, or BrokenProcessPool
            return {"error": f"{type(err).__name__}: {err}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="bundle roots (python -m bench.build --root)")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--launches", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("ab.json"))
    args = parser.parse_args(argv)
    rows = []
    for model_name in args.models:
        for batch in args.batches:
            row = {"model": model_name, "batch": batch, "ctx": args.ctx,
                   **isolated(compare, model_name, batch, args.ctx, args.roots, args)}
            rows.append(row)
            args.out.write_text(json.dumps({"card": card_name(), "rows": rows}, indent=1))
            if "error" in row:
                print(f"{model_name:12s} b{batch} ctx {args.ctx}: {row['error']}", flush=True)
                continue
            base = next(iter(row["builds"].values()))["ms"]
            print(f"{model_name:12s} b{batch} ctx {args.ctx}: " + "  ".join(
                f"{root}: {b['ms']:.3f} ms ({b['ms_p10']:.3f}-{b['ms_p90']:.3f}, "
                f"{100 * (b['ms'] / base - 1):+.1f}%)" for root, b in row["builds"].items()), flush=True)
    return int(any("error" in row for row in rows))


if __name__ == "__main__":
    raise SystemExit(main())

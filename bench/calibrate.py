"""The cost model's task times against the in-kernel profiler's: measure, fit, compare grids.

    python -m bench.calibrate features .bundles/r10/head          # here (MLIR): per task, bytes and flops
    python -m bench.calibrate measure .bundles/r10/head --out cal.json   # on the GPU: per task, its time
    python -m bench.calibrate fit bench/results/history/ab-r10-calibration.json   # anywhere: the fit table
    python -m bench.calibrate grids .bundles/r10/head .bundles/r10/cand   # anywhere: grids of two builds

`features` reads every bundle's task IR (tasks.mlir) under a `bench.build` root
and writes <bundle>/features.json: per group, each task's bytes (what
`tiling.task_cost` prices: the boxes it writes and loads) and flops, and for the
split-KV attention kinds the bytes per cache row, since the rows a split reads
depend on the position (data), which the cost model prices at the cache's full
length. `measure` runs each bundle (bench.decode's random bf16 weights and cache
rows, `--ctx` cache rows) with the in-kernel profiler and records per group the
median (mean, p10, p90) over its tasks of each task's mean time over the
launches' steps (the first of each, which warms caches, left out), with those
features (attention bytes at the launch's real rows). `fit` fits, per task kind
and decode path (batch 1: the CUDA cores' matrix-vector; 2-8: the tensor
cores'), time = fixed + bytes / rate by least squares of the relative error over
the groups' median tasks, and prints per kind: fixed cost, rate per SM (and
times the SMs: the device rate it implies), the relative error of the fit (RMS
and worst over its groups), that of the cost model the bundles were built with
("model", from the features) and that of the measured costs lowering/tiling.py
holds for sm_90 now ("sm_90", where MLIR is importable). `grids` compares two
builds' plans group by group (tile, tasks) and per bundle (tasks, tasks per SM,
dependent stages). `compact` rewrites a result holding per-task lists (this
script's first version) as per-group medians.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FEATURES = "features.json"
ATTENTION_SPLIT_KINDS = ("attention_split", "attention_partial")


def bundles(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).iterdir() if (p / "plan.json").is_file())


# ----------------------------------------------------------------- features

def group_features(graph, g, target) -> dict:
    """One group's per-task bytes, flops (CUDA cores) and matrix-unit flops, as
    `tiling.task_cost` counts them, and its cost-model time on `target`."""
    from mpk.lowering import kinds, tiling
    from mpk.lowering.kinds import volume
    info = tiling.op_info(graph, g)
    kind = kinds.get(g.kind)
    out = tiling.tile_boxes(info.domain, g.grid, g.tile)
    nbytes = volume(kind.writes(info, out)) * info.output_bytes
    traffic = kind.traffic(info, out)
    row_bytes = np.zeros_like(nbytes)
    for i, (box, size) in enumerate(zip(traffic, info.input_bytes)):
        nbytes = nbytes + volume(box) * size
        if g.kind in ATTENTION_SPLIT_KINDS and i in ((3, 4) if "inv_freq" in info.params else (1, 2)):
            rows = np.maximum(box[1][:, 1] - box[0][:, 1], 1)
            row_bytes = row_bytes + volume(box) // rows * size
    mma = kind.mma_flops(info, out)
    entry = {"name": g.name, "kind": g.kind, "grid": list(g.grid), "tile": list(g.tile),
             "rows": int(info.domain[0]) if len(info.domain) == 2 else None,
             "bytes": nbytes.tolist(), "flops": (kind.flops(info, out) - mma).tolist(), "mma_flops": mma.tolist(),
             "model_us": (tiling.task_cost(info, out, target) * 1e6).round(4).tolist()}
    if g.kind in ATTENTION_SPLIT_KINDS:
        splits = int(info.output[1])
        entry.update(splits=splits, cache_rows=int(info.inputs[3 if "inv_freq" in info.params else 1][1]),
                     cache_row_bytes=row_bytes.tolist(),
                     model_rows=-(-int(info.inputs[3 if "inv_freq" in info.params else 1][1]) // splits))
    return entry


def features(root: Path) -> None:
    from mpk import dialects
    from mpk.dialects.taskir import TaskGraph
    from mpk.lowering import tiling
    for path in bundles(root):
        with dialects.context():
            module = dialects.parse((path / "tasks.mlir").read_text())
            graph = TaskGraph.from_module(module)
            target = tiling.target(graph.kernel_attr("arch"), graph.kernel_attr("num_sms"))
            groups = [group_features(graph, g, target) for g in graph.groups]
        (path / FEATURES).write_text(json.dumps({"target": _target_dict(target), "groups": groups}))
        print(f"{path / FEATURES}: {len(groups)} groups, {sum(len(g['bytes']) for g in groups)} tasks", flush=True)


def _target_dict(target) -> dict:
    import dataclasses
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in dataclasses.asdict(target).items()}


# ------------------------------------------------------------------ measure

def measure(args) -> int:
    import torch
    from bench.build import bundle_path
    from bench.decode import MpkRun, fill_caches, torch_model
    from mpk.models import preset
    rows = []
    for model_name in args.models:
        for batch in args.batches:
            path = bundle_path(model_name, batch, args.root)
            if not (path / FEATURES).is_file():
                print(f"skip {path}: no {FEATURES} (python -m bench.calibrate features)", flush=True)
                continue
            try:
                model = torch_model(preset(model_name), args.seed)
                run = MpkRun(path, model, profile=True)
            except Exception as e:   # a bundle that does not load is reported, the rest measured
                print(f"{model_name} b{batch}: {type(e).__name__}: {e}", flush=True)
                continue
            try:
                tokens = np.random.default_rng([args.seed, batch]).integers(0, model.config.vocab_size, batch)
                for ctx in args.ctx:
                    fill_caches(model, run, batch, ctx, args.seed)
                    for _ in range(3):
                        run.launch(tokens, ctx - 1)
                    records = []
                    for _ in range(args.launches):
                        run.profiled_launch(tokens, ctx - 1)
                        run.session.profile = run.profile_buffer
                        try:
                            records.append(run.session.profile_ns().astype(np.int64)[1:])
                        finally:
                            run.session.profile = None
                    rows.append(_measured_row(model_name, batch, ctx, run, records, path))
                    r = rows[-1]
                    print(f"{model_name} b{batch} ctx {ctx}: step {r['step_us']:.1f} us, "
                          f"{r['tasks_per_sm']:.1f} tasks per SM", flush=True)
            finally:
                run.session.close()
                del model
                torch.cuda.empty_cache()
            args.out.write_text(json.dumps({"card": torch.cuda.get_device_name(), "ctx": args.ctx, "rows": rows},
                                           separators=(",", ":")) + "\n")
    print(fit_table(json.loads(args.out.read_text())))
    return 0


def _measured_row(model_name, batch, ctx, run, records: list[np.ndarray], path) -> dict:
    """`records`: the profiler's [steps, tasks, 2] ns of each profiled launch, first step dropped."""
    from mpk.runtime import trace
    feats = json.loads((path / FEATURES).read_text())
    plan = run.bundle.plan
    times = np.concatenate(records)                                       # [steps, tasks, 2]
    task_us = (times[..., 1] - times[..., 0]).mean(axis=0) / 1e3          # per task, mean over steps
    steps = run.steps
    # Steps 1..steps-1 of a launch from position ctx-1: a sequence attends pos + 1 rows.
    rows_read = ctx + steps / 2
    summary = trace.summarize(plan, run.bundle.tables, records[0])      # one launch: its span is the steps'
    groups = []
    for g, f in zip(plan["groups"], feats["groups"]):
        assert g["name"] == f["name"], (g["name"], f["name"])
        us = task_us[g["first_task"]:g["first_task"] + g["num_tasks"]]
        nbytes = np.asarray(f["bytes"], np.float64)
        if f["kind"] in ATTENTION_SPLIT_KINDS:      # the rows of this launch's splits, not of the full cache
            nbytes = nbytes + (np.ceil(rows_read / f["splits"]) - f["model_rows"]) * np.asarray(f["cache_row_bytes"])
        groups.append(summarize_group({**{k: f[k] for k in ("name", "kind", "grid", "tile", "rows")},
                                       "tasks": g["num_tasks"], "us": us, "bytes": nbytes, "flops": f["flops"],
                                       "mma_flops": f["mma_flops"], "model_us": f["model_us"]}))
    workers = summary.num_workers
    return {"model": model_name, "batch": batch, "ctx": ctx, "target": feats["target"],
            "step_us": float(np.median(summary.step_us)), "tasks_per_sm": times.shape[1] / workers,
            "busy_fraction": summary.busy, "groups": groups}


def summarize_group(g: dict) -> dict:
    """A group's per-task lists (us, bytes, flops, mma_flops, model_us) as their median
    (and the time's mean, p10, p90): what `fit` reads, small enough to commit."""
    out = {k: v for k, v in g.items() if k not in ("us", "bytes", "flops", "mma_flops", "model_us")}
    us = np.asarray(g["us"], np.float64)
    r = lambda x: float(f"{float(x):.5g}")
    out.update(us_median=r(np.median(us)), us_mean=r(us.mean()), us_p10=r(np.percentile(us, 10)),
               us_p90=r(np.percentile(us, 90)))
    for k in ("bytes", "flops", "mma_flops"):
        out[f"{k}_median"] = round(float(np.median(np.asarray(g[k], np.float64))))
    out["model_us_median"] = r(np.median(np.asarray(g["model_us"], np.float64)))
    return out


# ---------------------------------------------------------------------- fit

def path_of(kind: str, batch: int) -> str:
    """The decode path of a kind's tasks: matrix-vector on the CUDA cores at batch 1, on the
    tensor cores at 2-8 (linear, gate_up); attention per batch; the rest one path."""
    if kind in ("linear", "gate_up") or kind in ATTENTION_SPLIT_KINDS:
        return "b1" if batch == 1 else "b2-8"
    return "all"


def points(result: dict) -> dict[tuple[str, str], list[tuple]]:
    """(kind, path) -> [(bytes, us, model_us, tasks, label)], one point per group: the
    median over its tasks of bytes and time (the LM head's and embedding's groups alike)."""
    out: dict[tuple[str, str], list[tuple]] = {}
    for r in result["rows"]:
        for g in r["groups"]:
            if "us" in g:                 # per-task lists (an early measure's file)
                g = summarize_group(g)
            out.setdefault((g["kind"], path_of(g["kind"], r["batch"])), []).append(
                (g["bytes_median"], g["us_median"], g["model_us_median"], g["tasks"],
                 f"{r['model']}-b{r['batch']}-{r['ctx']}:{g['name']}"))
    return out


def fit_kind(pts: list[tuple], rate: float | None = None) -> dict:
    """time = fixed + bytes / rate, fitted over the groups (each group one point, so a
    model's 28-36 layers weigh as much as its other groups) by least squares of the
    relative error: most tasks are small, and a tile is chosen on their times, not the LM
    head's. A kind whose groups all move the same bytes gets its median as the fixed cost
    and no rate. With `rate` given, only the fixed cost is fitted."""
    b = np.array([p[0] for p in pts])
    t = np.array([p[1] for p in pts]) * 1e-6
    if rate:
        # min sum((fixed + b / rate - t)^2 / t^2) over fixed
        fixed, per_byte = float(np.sum((t - b / rate) / t ** 2) / np.sum(1 / t ** 2)), 1 / rate
    elif np.ptp(b) < 0.05 * max(b.mean(), 1):
        fixed, per_byte = float(np.median(t)), 0.0
    else:
        a = np.stack([np.ones_like(b), b], 1) / t[:, None]
        (fixed, per_byte), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
        if per_byte <= 0:        # no bandwidth term visible: fixed only
            fixed, per_byte = float(np.median(t)), 0.0
        elif fixed < 0:          # through the origin
            fixed, per_byte = 0.0, float(np.mean(t / b))
    pred = fixed + per_byte * b
    rel = (pred - t) / t
    model = np.array([p[2] for p in pts]) * 1e-6
    return {"fixed_s": float(fixed), "sm_bytes_per_s": (1 / per_byte) if per_byte > 0 else None,
            "groups": len(pts), "tasks": int(sum(p[3] for p in pts)),
            "bytes_min": float(b.min()), "bytes_max": float(b.max()),
            "us_min": float(t.min() * 1e6), "us_max": float(t.max() * 1e6),
            "rms_rel_err": float(np.sqrt(np.mean(rel ** 2))), "max_rel_err": float(np.abs(rel).max()),
            "model_rms_rel_err": float(np.sqrt(np.mean(((model - t) / t) ** 2)))}


def fit(result: dict, rates: dict[str, float] | None = None) -> dict[tuple[str, str], dict]:
    """Per (kind, path): `fit_kind`; `rates`: "kind/path" -> a rate to take instead of fitting one."""
    rates = rates or {}
    return {key: fit_kind(pts, rates.get("/".join(key))) for key, pts in sorted(points(result).items())}


def target_error(key: tuple[str, str], pts: list[tuple]) -> float | None:
    """RMS relative error on `pts` of the measured cost that lowering/tiling.py's sm_90
    target holds for this kind and path (None: it holds none, or MLIR is not here)."""
    try:
        from mpk.lowering import tiling
    except ImportError:
        return None
    costs = dict(tiling.target("sm_90", 132).kind_costs)
    cost = costs.get("/".join(key), costs.get(key[0]))
    if cost is None:
        return None
    b = np.array([p[0] for p in pts])
    t = np.array([p[1] for p in pts]) * 1e-6
    return float(np.sqrt(np.mean(((cost.fixed_s + b / cost.sm_bytes_per_s - t) / t) ** 2)))


def fit_table(result: dict, rates: dict[str, float] | None = None) -> str:
    num_sms = next((r["target"]["num_sms"] for r in result["rows"]), 132)
    pts = points(result)
    contexts = sorted({r["ctx"] for r in result["rows"]})
    lines = [f"{result.get('card', '?')}, ctx {'/'.join(map(str, contexts))}: per kind and decode path, "
             "time = fixed + bytes / rate (least relative squares over the groups' median tasks)"
             + (f"; rate given for {', '.join(sorted(rates))}" if rates else ""),
             f"{'kind':<18} {'path':<5} {'groups':>6} {'tasks':>6} {'KB/task':>13} {'us/task':>13} "
             f"{'fixed us':>8} {'GB/s/SM':>8} {'x SMs TB/s':>10} {'fit rms':>7} {'max':>6} {'model rms':>9} "
             f"{'sm_90 rms':>9}"]
    for (kind, path), f in fit(result, rates).items():
        rate = f["sm_bytes_per_s"]
        lines.append(f"{kind:<18} {path:<5} {f['groups']:>6} {f['tasks']:>6} "
                     f"{f['bytes_min'] / 1e3:>6.1f}-{f['bytes_max'] / 1e3:<6.1f} "
                     f"{f['us_min']:>6.2f}-{f['us_max']:<6.2f} {f['fixed_s'] * 1e6:>8.2f} "
                     + (f"{rate / 1e9:>8.1f} {rate * num_sms / 1e12:>10.2f}" if rate else f"{'-':>8} {'-':>10}")
                     + f" {f['rms_rel_err']:>7.1%} {f['max_rel_err']:>6.1%} {f['model_rms_rel_err']:>9.1%} "
                     + (f"{err:>9.1%}" if (err := target_error((kind, path), pts[(kind, path)])) is not None
                        else f"{'-':>9}"))
    lines.append("steps: " + ", ".join(f"{r['model']}-b{r['batch']}-{r['ctx']} {r['step_us']:.0f} us "
                                       f"({r['tasks_per_sm']:.1f} tasks/SM, busy {r['busy_fraction']:.0%})"
                                       for r in result["rows"]))
    return "\n".join(lines)


# -------------------------------------------------------------------- grids

def grids_table(roots: list[Path]) -> str:
    """Per bundle: tasks, tasks per SM, dependent stages of each root; then every group
    whose tile differs between the first root and another (consecutive layers collapsed)."""
    import re
    lines = []
    names = sorted({p.name for root in roots for p in bundles(root)})
    for name in names:
        plans = [json.loads((root / name / "plan.json").read_text()) if (root / name / "plan.json").is_file()
                 else None for root in roots]
        if plans[0] is None:
            continue
        cells = []
        for plan in plans:
            if plan is None:
                cells.append("-")
                continue
            k = plan["kernel"]
            cells.append(f"{k['num_tasks']} tasks, {k['num_tasks'] / k['num_workers']:.1f}/SM, "
                         f"{plan['dependent_stages']['per_step']} stages")
        lines.append(f"{name}: " + " | ".join(cells))
        base = {g["name"]: g for g in plans[0]["groups"]}
        for root, plan in zip(roots[1:], plans[1:]):
            if plan is None:
                continue
            changed: dict[str, list] = {}
            for g in plan["groups"]:
                b = base.get(g["name"])
                if b is None or b["tile"] != g["tile"] or b["grid"] != g["grid"]:
                    key = re.sub(r"layers\.\d+\.", "layers.*.", g["name"])
                    before = f"tile {b['tile']} x{b['num_tasks']}" if b else "new"
                    changed.setdefault(f"{key} ({g['kind']}): {before} -> tile {g['tile']} x{g['num_tasks']}",
                                       []).append(g["name"])
            for text, members in changed.items():
                lines.append(f"  {root.name}: {text}" + (f" [{len(members)} groups]" if len(members) > 1 else ""))
            if not changed:
                lines.append(f"  {root.name}: every group's tile as in {roots[0].name}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("features", help="per task bytes and flops of every bundle under a root (needs MLIR)")
    p.add_argument("roots", nargs="+", type=Path)
    p = sub.add_parser("measure", help="per task times on the GPU (in-kernel profiler), with the features")
    p.add_argument("root", type=Path)
    p.add_argument("--models", nargs="+", default=["qwen3-0.6b", "llama3.2-1b", "qwen3-1.7b", "qwen3-8b"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--ctx", type=int, nargs="+", default=[1024], help="cache rows attended (several: each)")
    p.add_argument("--launches", type=int, default=2, help="profiled launches per bundle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("calibration.json"))
    p = sub.add_parser("fit", help="the per-kind fit table of a `measure` result")
    p.add_argument("result", type=Path)
    p.add_argument("--json", action="store_true", help="print the fit as JSON")
    p.add_argument("--rate", action="append", default=[], metavar="KIND/PATH=BYTES_PER_S",
                   help="take this per-SM rate for a kind and path, fit only its fixed cost (repeatable)")
    p = sub.add_parser("compact", help="rewrite a result with per-task lists as per-group medians")
    p.add_argument("result", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("grids", help="tiles and tasks of the same bundles built from two or more roots")
    p.add_argument("roots", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command == "features":
        for root in args.roots:
            features(root)
    elif args.command == "measure":
        return measure(args)
    elif args.command == "fit":
        result = json.loads(args.result.read_text())
        rates = {k: float(v) for k, _, v in (r.partition("=") for r in args.rate)}
        if args.json:
            print(json.dumps({f"{k}/{p}": v for (k, p), v in fit(result, rates).items()}, indent=1))
        else:
            print(fit_table(result, rates))
    elif args.command == "compact":
        result = json.loads(args.result.read_text())
        for r in result["rows"]:
            r["groups"] = [summarize_group(g) if "us" in g else g for g in r["groups"]]
        args.out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    else:
        print(grids_table(args.roots))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One decode step of real-size models: mpk against PyTorch, on one GPU, in one run.

    python -m bench.decode                                  # all bundles under .bundles/bench
    python -m bench.decode --models qwen3-0.6b --batches 1 --contexts 1024 --profile

Runs on the GPU machine without MLIR: it loads the bundles `python -m
bench.build` compiled (bf16, one per model and batch) and builds the
plain-PyTorch model of mpk/models with the same random bf16 weights. For
every (model, batch, context) it

1. checks mpk: one launch of `steps` decode steps from position ctx-1 (the
   step attends ctx cache rows; the rows before hold the same random keys and
   values in both systems), then the PyTorch model in fp32 (the same bf16
   weights, upcast) teacher-forced on mpk's tokens, judged by mpk.check as
   `mpk run --check` is: every step's logits must agree (||mpk - ref|| /
   ||ref|| < TOLERANCE, or within BF16_SLACK of the bf16 PyTorch model's own
   error) and its tokens wherever the margin is clear, or the run stops with
   an error (see `check`);
2. times mpk: CUDA events around each launch of `steps` steps, after warm-up,
   median over launches, divided by `steps`;
3. times PyTorch eager, the same forward captured in a CUDA graph, and
   torch.compile (inductor) captured in a CUDA graph: CUDA events around each
   step, median. PyTorch's decode attends a static cache with a mask, so its
   cache holds exactly the ctx rows the step reads;
4. derives the bytes a step must read from the bundle's plan
   (mpk.runtime.bandwidth.step_bytes: every weight matrix incl. the LM head,
   one embedding row per sequence, norm weights, K and V rows 0..ctx-1 of
   every layer) and the floor: those bytes over the read bandwidth measured
   in the same run (mpk.runtime.bandwidth.device_bandwidth: torch.sum over a
   4 GiB bf16 tensor);
5. and the limit: the floor plus the per-stage overhead that bench.hop
   measures in the same run times the step's dependent stages (the bundle's
   plan: mpk-stats' count), `stage_limit_ms`. `--no-hop` skips it.

Writes <out>/<card>.json (every number; nothing is edited by hand) and
prints a table; `python -m bench.plot <json>` draws the chart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.build import BATCHES, CONTEXTS, MODELS, ROOT, bundle_path
from mpk.check import TOLERANCE, compare
from mpk.runtime.bandwidth import device_bandwidth

BF16_SLACK = 1.25         # a step passes under TOLERANCE, or at most this times PyTorch-bf16's own error
WARMUP, REPEATS = 5, 30   # per timed system: un-timed runs, then timed runs (median)


class CheckFailed(RuntimeError):
    """mpk's logits disagree with PyTorch's."""


# ----------------------------------------------------------------- timing

def time_cuda(fn, warmup: int = WARMUP, repeats: int = REPEATS) -> list[float]:
    """Seconds of each of `repeats` calls of fn, between CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end) / 1e3)
    return times


# ------------------------------------------------------------------ models

def torch_model(config, seed: int):
    """The PyTorch decoder in bf16 on the GPU, random weights (`random_bf16_model`)."""
    from mpk.models import Decoder
    return random_bf16_model(lambda: Decoder(config), seed)


def random_bf16_model(make, seed: int):
    """The module `make()` builds, in bf16 on the GPU, random weights at an O(1)
    activation scale (as mpk.runtime.weights.random_weights: norms near 1,
    matrices N(0, 1/fan_in)), drawn on the GPU."""
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)       # no fp32 copy of an 8B model on the way
    try:
        with torch.device("cuda"):
            model = make()
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p, dtype=torch.float32))
            else:
                p.copy_(torch.randn_like(p, dtype=torch.float32) / math.sqrt(p.shape[-1]))
    return model.eval()


def stage_limit_ms(floor_ms: float, stage_overhead_us: float, dependent_stages: int) -> float:
    """The limit of a step: the floor, plus what each of the step's dependent
    stages (groups that run one after another) costs beyond streaming its bytes,
    as bench.hop measures it on the same GPU."""
    return floor_ms + stage_overhead_us * dependent_stages / 1e3


def measure_hop(bandwidth: float, bundles: Path) -> dict:
    """bench.hop's probe (flag latency, per-stage overhead), measured in this process
    with the cubin bench.build put beside the bundles."""
    from bench import hop
    result = hop.measure(bundles / "hop.cubin", bandwidth=bandwidth)
    print(f"hop probe: one-way flag latency {result['flag_one_way_ns']:.0f} ns, per-stage overhead "
          f"{result['stage_overhead_us']:.2f} us", flush=True)
    return result


# -------------------------------------------------------------------- mpk

class MpkRun:
    """A bundle on the GPU with the PyTorch model's weights bound (device to device)."""

    def __init__(self, path: Path, model, profile: bool):
        from mpk.runtime import bundle as bundles
        from mpk.runtime.loader import Session
        self.bundle = bundles.read(path)
        self.session = Session(self.bundle, profile=profile)
        # Timed launches run without the profiler; `profiled_launch` turns it on for one.
        self.profile_buffer, self.session.profile = self.session.profile, None
        self.steps = self.session.steps_per_launch
        state = model.state_dict()
        needed = self.bundle.weights()
        for name in needed:
            self.session.write(name, state[name])
        self.session.bound_weights |= set(needed)
        self.max_seq = int(self.bundle.plan["max_seq"])

    def set_cache(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Rows 0..n-1 of a layer's caches ([B, n, M], n <= max_seq); the rest zero."""
        batch, rows, width = k.shape
        for name, rows_in in ((f"layers.{layer}.k_cache", k), (f"layers.{layer}.v_cache", v)):
            full = torch.zeros(batch, self.max_seq, width, dtype=k.dtype, device=k.device)
            full[:, :rows] = rows_in
            self.session.write(name, full)

    def profiled_launch(self, tokens: np.ndarray, position: int) -> None:
        self.session.profile = self.profile_buffer
        try:
            self.launch(tokens, position)
        finally:
            self.session.profile = None

    def launch(self, tokens: np.ndarray, position: int, timed: bool = False):
        self.session.write("tokens", tokens)
        self.session.write("positions", np.full(tokens.shape[0], position))
        return self.session.launch(timed=timed)


def fill_caches(model, mpk: MpkRun, batch: int, ctx: int, seed: int) -> None:
    """The same random K and V rows 0..ctx-2 in both systems (row ctx-1 on is written by the
    steps). PyTorch's cache is ctx + steps - 1 rows long: enough for the checked steps."""
    c = model.config
    width = c.num_kv_heads * c.head_dim
    g = torch.Generator(device="cuda").manual_seed(seed)
    rows = ctx + mpk.steps - 1
    for i, layer in enumerate(model.model.layers):
        k = torch.randn(batch, rows, width, device="cuda", generator=g).to(torch.bfloat16)
        v = torch.randn(batch, rows, width, device="cuda", generator=g).to(torch.bfloat16)
        k[:, ctx - 1:] = 0
        v[:, ctx - 1:] = 0
        layer.self_attn.register_buffer("k_cache", k, persistent=False)
        layer.self_attn.register_buffer("v_cache", v, persistent=False)
        mpk.set_cache(i, k, v)


def check(model, mpk: MpkRun, tokens: np.ndarray, ctx: int) -> dict:
    """One launch from position ctx-1 against the PyTorch model in fp32 (its bf16
    weights and cache rows upcast exactly), teacher-forced on mpk's tokens, judged
    by mpk.check.compare as `mpk run --check` is.

    Per step: ||logits - ref|| / ||ref|| over the [B, V] logits, for mpk and for
    the PyTorch model itself in bf16. Random weights give deep models a bf16
    rounding error of a few percent even in PyTorch, so a step passes when mpk's
    error is under TOLERANCE or no worse than BF16_SLACK times PyTorch-bf16's on
    the same step (mpk.check.logits_ok); both errors are reported. mpk's tokens
    must be the reference's argmax wherever its margin is clear of the error, and
    exactly the argmax of mpk's own logits (the greedy sampler's)."""
    mpk.launch(tokens, ctx - 1)
    logits = mpk.session.read("logits")                  # [steps, B, V] float32
    generated = mpk.session.read("next_tokens")          # [steps, B]
    fed = np.concatenate([tokens[None], generated[:-1]])
    positions = [torch.full((tokens.shape[0],), ctx - 1 + s, device="cuda") for s in range(mpk.steps)]
    fed_t = [torch.from_numpy(f.astype(np.int64)).cuda() for f in fed]
    with torch.no_grad():
        bf16 = np.stack([model(t, p)[1].double().cpu().numpy() for t, p in zip(fed_t, positions)])
        model.float()
        try:
            ref = np.stack([model(t, p)[1].double().cpu().numpy() for t, p in zip(fed_t, positions)])
        finally:
            model.to(torch.bfloat16)      # exact: every weight was a bf16 value
    report = compare(logits, ref, generated, prompt_len=1, tolerance=TOLERANCE, torch_same_dtype=bf16,
                     first_position=ctx - 1, slack=BF16_SLACK)
    for s, step in enumerate(report.steps):
        if not step.verdict.startswith("ok"):
            raise CheckFailed(f"step {s} (position {step.position}): {step.verdict}: relative logit error "
                              f"{step.error:.3e} against PyTorch fp32 (passes under {TOLERANCE:g} or "
                              f"{BF16_SLACK:g} x PyTorch-bf16's {step.torch_error:.3e}); tokens (mpk, ref) "
                              f"{step.tokens}, margin {step.margin:.3e}, 2 max|err| {step.threshold:.3e}")
    own = logits.argmax(-1)
    if not np.array_equal(generated, own):         # greedy: the first maximum of the logits it was given
        s, b = np.argwhere(generated != own)[0]
        raise CheckFailed(f"step {s}, row {b}: the sampler chose token {generated[s, b]}, the argmax of mpk's "
                          f"own logits is {own[s, b]}")
    agree = float(np.mean(own == ref.argmax(-1)))
    return {"mpk_rel_err": report.worst, "torch_bf16_rel_err": max(s.torch_error for s in report.steps),
            "argmax_agreement": agree}


def profile_summary(mpk: MpkRun) -> dict:
    """Per kind: tasks, SM time, mean task time (mpk.runtime.trace.summarize); per
    worker: time between one task's end and the next one's start (waiting on
    events, dispatch; trace.previous_end); the event hop of the tasks that
    waited (trace.event_hops: last trigger to start); per dependent stage, its
    period, hop and tasks (trace.stages); from the in-kernel profiler of the
    last launch."""
    from mpk.runtime import trace
    mpk.session.profile = mpk.profile_buffer
    try:
        times = mpk.session.profile_ns().astype(np.int64)        # [steps, tasks, 2]
    finally:
        mpk.session.profile = None
    times = times[1:] if times.shape[0] > 1 else times             # the first step warms caches
    summary = trace.summarize(mpk.bundle.plan, mpk.bundle.tables, times)
    groups_per_kind: dict[str, int] = {}
    for g in mpk.bundle.plan["groups"]:
        groups_per_kind[g["kind"]] = groups_per_kind.get(g["kind"], 0) + 1
    kinds = {k.kind: {"tasks": k.count, "groups": groups_per_kind[k.kind], "sm_us": k.total_us,
                      "mean_task_us": k.mean_us} for k in summary.kinds}
    busy_total = sum(k.total_us for k in summary.kinds)
    step_us = float(np.median(summary.step_us))
    previous = trace.previous_end(mpk.bundle.tables, times)
    gaps = (times[..., 0] - previous)[previous >= 0] / 1e3
    gaps = gaps if gaps.size else np.zeros(1)
    hops = trace.event_hops(mpk.bundle.plan, mpk.bundle.tables, times) / 1e3
    workers, tasks = summary.num_workers, int(times.shape[1])
    return {"step_us": step_us, "workers": workers, "tasks": tasks, "tasks_per_sm": tasks / workers,
            "busy_fraction": busy_total / (workers * step_us),
            "gap_us_median": float(np.median(gaps)), "gap_us_mean": float(gaps.mean()),
            "hops": int(hops.size), "hop_us_median": float(np.median(hops)) if hops.size else None,
            "hop_us_p90": float(np.percentile(hops, 90)) if hops.size else None, "kinds": kinds,
            "stages": [dataclasses.asdict(s) for s in trace.stages(mpk.bundle.plan, times)]}


def weight_stream(profile: dict, bandwidth: float) -> dict | None:
    """How near the stage that streams the most weight bytes a step comes to the read
    bandwidth: its median task's rate against one SM's share of it (the task's wait
    for its inputs included, so a lower bound), and its bytes over its period against
    the whole card."""
    stages = [s for s in profile["stages"] if s["weight_bytes"]]
    if not stages:
        return None
    s = max(stages, key=lambda s: s["count"] * s["tasks"] * s["weight_bytes"])
    return {"stage": s["name"], "weight_bytes_per_task": s["weight_bytes"],
            "task_fraction": s["weight_bytes"] / (s["task_us"] * 1e-6) / (bandwidth / profile["workers"]),
            "stage_fraction": s["tasks"] * s["weight_bytes"] / (s["period_us"] * 1e-6) / bandwidth}


# --------------------------------------------------------------- baselines

def baselines(model, tokens: torch.Tensor, position: int, compile_budget_s: float) -> dict:
    """Seconds per step of PyTorch eager, CUDA graph and torch.compile + CUDA graph."""
    positions = torch.full_like(tokens, position)
    out = {}
    with torch.no_grad():
        out["eager"] = time_cuda(lambda: model(tokens, positions))
        out["cuda_graph"] = time_cuda(_graphed(lambda: model(tokens, positions)))
        if compile_budget_s > 0:
            torch._dynamo.reset()
            compiled = torch.compile(model, fullgraph=True)
            start = time.perf_counter()
            try:
                graph = _graphed(lambda: compiled(tokens, positions))
                out["compile_s"] = time.perf_counter() - start
                out["compiled_graph"] = time_cuda(graph)
            except Exception as e:  # a compiler failure is reported, never hidden
                out["compile_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return out


def _graphed(fn):
    """fn captured in a CUDA graph (warmed up on a side stream first); returns its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


# ------------------------------------------------------------------ driver

def card_name() -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-").lower()


def run_config(model_name, batch, contexts, args, bandwidth, compile_left, stage_overhead_us=None):
    from mpk.models import preset
    from mpk.runtime.bandwidth import step_bytes
    config = preset(model_name)
    path = bundle_path(model_name, batch, args.bundles)
    if not path.is_dir():
        print(f"skip {model_name} batch {batch}: no bundle at {path} (python -m bench.build)", flush=True)
        return []
    model = torch_model(config, args.seed)
    mpk = MpkRun(path, model, profile=args.profile)
    stages = mpk.bundle.plan.get("dependent_stages", {}).get("per_step")
    if stages is None and stage_overhead_us is not None:
        print(f"no limit for {model_name} batch {batch}: its bundle does not count its dependent stages "
              "(rebuild it: python -m bench.build)", flush=True)
    rows = []
    try:
        rng = np.random.default_rng([args.seed, batch])
        for ctx in contexts:
            if ctx + mpk.steps > mpk.max_seq:
                print(f"skip ctx {ctx}: the bundle's cache holds {mpk.max_seq} rows", flush=True)
                continue
            fill_caches(model, mpk, batch, ctx, args.seed)
            tokens = rng.integers(0, config.vocab_size, batch)
            try:
                checked, failure = check(model, mpk, tokens, ctx), None
            except CheckFailed as e:
                if not args.keep_going:
                    raise
                checked, failure = {}, str(e)
                print(f"CHECK FAILED: {model_name} batch {batch} ctx {ctx}: {e}", flush=True)
            # Timed launches: the first step attends ctx rows, the last ctx + steps - 1.
            timed_launch = lambda: mpk.launch(tokens, ctx - 1, timed=True)
            for _ in range(WARMUP):
                timed_launch()
            mpk_s = [timed_launch() / mpk.steps for _ in range(args.mpk_launches)]
            profile = None
            if args.profile:
                mpk.profiled_launch(tokens, ctx - 1)
                profile = profile_summary(mpk)
                profile["weight_stream"] = weight_stream(profile, bandwidth)
            # PyTorch's cache: exactly the ctx rows the step attends.
            for layer in model.model.layers:
                attn = layer.self_attn
                attn.k_cache, attn.v_cache = attn.k_cache[:, :ctx].clone(), attn.v_cache[:, :ctx].clone()
            t = torch.from_numpy(tokens.astype(np.int64)).cuda()
            budget = compile_left[0] if ctx in args.compile_contexts else 0
            start = time.perf_counter()
            base = baselines(model, t, ctx - 1, budget)
            compile_left[0] -= time.perf_counter() - start
            nbytes = step_bytes(mpk.bundle.plan, ctx - 1)          # the step at ctx appends row ctx-1
            floor_ms = nbytes.total / bandwidth * 1e3
            limit_ms = (stage_limit_ms(floor_ms, stage_overhead_us, stages)
                        if stages is not None and stage_overhead_us is not None else None)
            row = {"model": model_name, "batch": batch, "ctx": ctx, "steps_per_launch": mpk.steps,
                   "tasks": int(mpk.bundle.kernel["num_tasks"]), "bytes": nbytes.as_dict(), "floor_ms": floor_ms,
                   "dependent_stages": stages, "limit_ms": limit_ms, "read_bandwidth_bytes_per_s": bandwidth,
                   "stage_overhead_us": stage_overhead_us, "check": checked, "systems": {}}
            if failure:
                row["check_failed"] = failure
            for system, samples in (("mpk", mpk_s), ("eager", base.get("eager")),
                                    ("cuda_graph", base.get("cuda_graph")),
                                    ("compiled_graph", base.get("compiled_graph"))):
                if samples:
                    ms = float(np.median(samples)) * 1e3
                    row["systems"][system] = {"ms": ms, "ms_p10": float(np.percentile(samples, 10)) * 1e3,
                                              "ms_p90": float(np.percentile(samples, 90)) * 1e3,
                                              "ratio_to_floor": ms / floor_ms}
                    if limit_ms is not None:
                        row["systems"][system]["ratio_to_limit"] = ms / limit_ms
            for key in ("compile_s", "compile_error"):
                if key in base:
                    row[key] = base[key]
            m = row["systems"]["mpk"]["ms"]
            row["mpk_speedup"] = {s: v["ms"] / m for s, v in row["systems"].items() if s != "mpk"}
            if profile:
                row["profile"] = profile
            rows.append(row)
            print(_line(row), flush=True)
            if profile:
                hop = profile["hop_us_median"]
                print("    profile: step %.1f us, busy %.0f%%, %.1f tasks per SM, gap between tasks median %.2f us, "
                      "event hop median %s; per kind (SM us / tasks / mean us): %s" % (
                          profile["step_us"], 100 * profile["busy_fraction"], profile["tasks_per_sm"],
                          profile["gap_us_median"], "-" if hop is None else f"{hop:.2f} us",
                          ", ".join(f"{k} {v['sm_us']:.0f}/{v['tasks']}/{v['mean_task_us']:.2f}"
                                    for k, v in sorted(profile["kinds"].items(), key=lambda kv: -kv[1]["sm_us"]))),
                      flush=True)
                if stream := profile["weight_stream"]:
                    print(f"    weights: {stream['stage']} streams {stream['weight_bytes_per_task'] / 1024:.0f} KB "
                          f"a task at {100 * stream['task_fraction']:.0f}% of an SM's share of the read bandwidth, "
                          f"the stage at {100 * stream['stage_fraction']:.0f}% of the card's", flush=True)
    finally:
        mpk.session.close()
        del model
        torch.cuda.empty_cache()
    return rows


def _line(row) -> str:
    s = row["systems"]
    cell = lambda k: f"{s[k]['ms']:7.3f} ({s[k]['ratio_to_floor']:.2f}x)" if k in s else f"{'-':>15}"
    limit = (f" limit {row['limit_ms']:6.3f} ms ({row['dependent_stages']} stages; mpk "
             f"{s['mpk']['ratio_to_limit']:.2f}x)" if row.get("limit_ms") else "")
    return (f"{row['model']:<12} b{row['batch']:<2} ctx {row['ctx']:<5} floor {row['floor_ms']:6.3f} ms{limit} | mpk "
            f"{cell('mpk')} | eager {cell('eager')} | graph {cell('cuda_graph')} | compile+graph "
            f"{cell('compiled_graph')} | err {row['check'].get('mpk_rel_err', float('nan')):.1e} (torch bf16 "
            f"{row['check'].get('torch_bf16_rel_err', float('nan')):.1e})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--contexts", nargs="+", type=int, default=list(CONTEXTS))
    parser.add_argument("--bundles", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mpk-launches", type=int, default=20, help="timed launches (median)")
    parser.add_argument("--profile", action="store_true",
                        help="one more launch with the in-kernel profiler: per-kind task times")
    parser.add_argument("--compile-contexts", nargs="*", type=int, default=list(CONTEXTS),
                        help="contexts at which torch.compile is measured (none: skip it)")
    parser.add_argument("--compile-budget", type=float, default=900.0,
                        help="seconds of torch.compile work across all configs; later ones skip it")
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    parser.add_argument("--keep-going", action="store_true",
                        help="record a failed logit check and go on timing (exit status 1 at the end)")
    parser.add_argument("--append", action="store_true",
                        help="add to the result file's rows instead of starting it anew (a run split over "
                             "several calls; every row keeps its own run's bandwidth and stage overhead)")
    parser.add_argument("--no-hop", dest="hop", action="store_false",
                        help="skip bench.hop's probe, and with it the limit (floor + stage overhead x stages)")
    args = parser.parse_args(argv)

    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    card = card_name()
    bandwidth = device_bandwidth()
    print(f"{torch.cuda.get_device_name()}: read bandwidth (torch.sum, 4 GiB bf16) {bandwidth / 1e12:.3f} TB/s",
          flush=True)
    hop = measure_hop(bandwidth, args.bundles) if args.hop else None
    stage_overhead_us = hop["stage_overhead_us"] if hop else None
    compile_left = [args.compile_budget]
    result = {"card": torch.cuda.get_device_name(), "read_bandwidth_bytes_per_s": bandwidth, "hop": hop,
              "torch": torch.__version__, "python": platform.python_version(),
              "tolerance": TOLERANCE, "bf16_slack": BF16_SLACK, "profile": args.profile,
              "compile_contexts": args.compile_contexts, "compile_budget_s": args.compile_budget,
              "results": []}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{card}{'-' + args.tag if args.tag else ''}.json"
    if args.append and path.exists():
        earlier = json.loads(path.read_text())
        result["earlier_runs"] = earlier.pop("earlier_runs", []) + [
            {k: earlier.get(k) for k in ("read_bandwidth_bytes_per_s", "hop", "compile_budget_s")}]
        result["results"] = earlier["results"]
    for model_name in args.models:
        for batch in args.batches:
            result["results"] += run_config(model_name, batch, args.contexts, args, bandwidth, compile_left,
                                            stage_overhead_us)
            result["results"].sort(key=_row_order)    # a run split over calls in any order reads as one
            path.write_text(json.dumps(result, indent=1))     # after every configuration: a cut run keeps them
    path.write_text(json.dumps(result, indent=1))
    rows = result["results"]
    print(f"\nwrote {path}\n")
    print(table(result))
    failed = [r for r in rows if "check_failed" in r]
    for r in failed:
        print(f"CHECK FAILED: {r['model']} batch {r['batch']} ctx {r['ctx']}: {r['check_failed']}")
    return 1 if failed else 0


def _row_order(row) -> tuple:
    """The presets' order (bench.build.MODELS), then any other model by name."""
    model = row["model"]
    return MODELS.index(model) if model in MODELS else len(MODELS), model, row["batch"], row["ctx"]


def table(result) -> str:
    """The short table: ms/step and ratio to the floor per system, the limit and
    mpk's ratio to it, mpk's speedups."""
    runs = result.get("earlier_runs", []) + [result]   # a run split over calls: each row has its own
    bandwidths = "/".join(f"{r['read_bandwidth_bytes_per_s'] / 1e12:.2f}" for r in runs)
    overheads = "/".join(f"{r['hop']['stage_overhead_us']:.2f}" for r in runs if r.get("hop"))
    lines = [f"{result['card']}, read bandwidth {bandwidths} TB/s; ms/step (ratio to floor)"
             + (f"; limit = floor + {overheads} us stage overhead x dependent stages" if overheads else "")
             + ("" if len(runs) == 1 else f" ({len(runs)} runs: each row is timed against its own run's)"),
             f"{'model':<12} {'b':>2} {'ctx':>5} {'floor':>6} {'limit':>6} {'mpk':>14} {'/limit':>6} {'eager':>14} "
             f"{'graph':>14} {'compile+graph':>14}  speedup vs compile+graph, mpk b8/b1 step"]
    mpk_ms = {(r["model"], r["batch"], r["ctx"]): r["systems"]["mpk"]["ms"] for r in result["results"]}
    for r in result["results"]:
        s = r["systems"]
        one = mpk_ms.get((r["model"], 1, r["ctx"])) if r["batch"] != 1 else None
        cell = lambda k: f"{s[k]['ms']:6.3f} ({s[k]['ratio_to_floor']:4.2f})" if k in s else f"{'-':>14}"
        sp = r["mpk_speedup"].get("compiled_graph")
        limit, to_limit = ((f"{r['limit_ms']:.3f}", f"{s['mpk']['ratio_to_limit']:.2f}") if r.get("limit_ms")
                           else ("-", "-"))
        lines.append(f"{r['model']:<12} {r['batch']:>2} {r['ctx']:>5} {r['floor_ms']:6.3f} {limit:>6} "
                     f"{cell('mpk'):>14} {to_limit:>6} {cell('eager'):>14} {cell('cuda_graph'):>14} "
                     f"{cell('compiled_graph'):>14}  "
                     + (f"{sp:.2f}x" if sp else "-") + (f", {s['mpk']['ms'] / one:.2f}" if one else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""Time to first token: mpk's prefill kernel against PyTorch, on one GPU, in one run.

    python -m bench.prefill                                  # bundles under .bundles/prefill
    python -m bench.prefill --models qwen3-8b --batches 1 --prompts 1024

Runs on the GPU machine without MLIR: it loads the bundles `python -m
bench.build --prefill` compiled (bf16, one per model and batch, a prefill
kernel of `chunk` rows per sequence) and builds the Hugging Face
`transformers` model of the same config with the same random bf16 weights
(bound to mpk device to device). For every (model, batch, prompt length) it

1. checks mpk: the logits of each sequence's last prompt token against
   transformers in float32 on the same (bf16) weights (mpk.check's relative
   error under its TOLERANCE, or at most BF16_SLACK times transformers-bf16's
   own error: mpk.check.logits_ok;
   `--no-check-fp32`: against transformers-bf16, under TOLERANCE);
2. times mpk: `generate(prompt, 1 token)` wall clock from the call to the
   first token on the host (every chunk's launch, the host's writes and
   reads included) and the prefill kernel alone (CUDA events around each
   launch, summed over the chunks), median of several runs;
3. times PyTorch: transformers' forward over the prompt (cuBLAS GEMMs,
   scaled_dot_product_attention, `logits_to_keep=1`) and the argmax of the
   last token, eager and `torch.compile`d (at the prompt lengths
   `--compile-prompts` names), CUDA events around each call, median;
4. derives the flops of the step (2 per weight per prompt token, the LM head
   once per sequence, causal attention) and each system's rate, against the
   card's bf16 matrix rate measured in the same run (a 8192^3 torch.matmul).

Writes <out>/<card>-prefill.json (every number, nothing edited by hand) and
prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.build import bundle_path
from bench.decode import card_name, random_bf16_model, time_cuda
from mpk.check import TOLERANCE, logits_ok, relative_error

MODELS = ("qwen3-8b", "llama3.2-1b")
BATCHES = (1, 8)
PROMPTS = (128, 1024, 4096)
ROOT = Path(".bundles/prefill")
BF16_SLACK = 1.5          # mpk.check.logits_ok: under TOLERANCE, or at most this times transformers-bf16's error
REPEATS = 5


def matmul_rate(n: int = 8192) -> float:
    """bf16 FLOP/s of torch.matmul on n x n x n (the card's matrix rate, as cuBLAS reaches it)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    seconds = float(np.median(time_cuda(lambda: a @ b, warmup=5, repeats=20)))
    return 2 * n ** 3 / seconds


def hf_model(config, seed: int):
    """transformers' model of a mpk ModelConfig, random weights as bench.decode draws them."""
    import transformers

    from mpk.models import to_hf_config
    hf = to_hf_config(config)
    cls = transformers.Qwen3ForCausalLM if config.family == "qwen3" else transformers.LlamaForCausalLM
    cfg_cls = transformers.Qwen3Config if config.family == "qwen3" else transformers.LlamaConfig
    cfg = cfg_cls(**{k: v for k, v in hf.items() if k not in ("model_type", "architectures", "torch_dtype")})
    return random_bf16_model(lambda: cls(cfg), seed)


def prefill_flops(config, batch: int, length: int) -> float:
    """2 flops per weight per prompt token (LM head: once per sequence), causal attention."""
    from mpk.models import weight_shapes
    per_token = sum(math.prod(s) for n, s in weight_shapes(config).items()
                    if "embed_tokens" not in n and "lm_head" not in n and s[-1] > 1 and len(s) == 2)
    head = config.vocab_size * config.hidden_size
    attention = 4 * config.num_layers * config.num_heads * config.head_dim * length * (length + 1) / 2
    return batch * (2 * per_token * length + 2 * head + attention)


class Mpk:
    """A bundle on the GPU with the transformers model's weights (device to device)."""

    def __init__(self, path: Path, model, profile: bool = False):
        from mpk.runtime import bundle as bundles
        from mpk.runtime.loader import Session
        self.bundle = bundles.read(path)
        if self.bundle.prefill is None:
            raise SystemExit(f"{path} has no prefill program: build with `python -m bench.build --prefill`")
        self.session = Session(self.bundle, profile=profile)
        # Timed runs go without the in-kernel profiler; `profiled` turns it on for one.
        self.profile_buffer, self.session.prefill.profile = self.session.prefill.profile, None
        state = model.state_dict()
        for name in self.bundle.weights():
            self.session.write(name, state[name])
        self.session.bound_weights |= set(self.bundle.weights())
        self.kernel_seconds, self.launch_seconds = [], []
        launch = self.session.prefill.launch

        def timed(n=None, **kw):
            start = time.perf_counter()
            self.kernel_seconds.append(launch(n, timed=True))
            self.launch_seconds.append(time.perf_counter() - start)
        self.session.prefill.launch = timed

    def profiled(self, prompt: np.ndarray) -> dict:
        """The prefill kernel's in-kernel profile of one prompt's last chunk: time per task kind."""
        from mpk.runtime import trace
        runner = self.session.prefill
        runner.profile = self.profile_buffer
        try:
            self.first_token(prompt)
        finally:
            runner.profile = None
        records = self.profile_buffer.download(np.uint64, (1, runner.num_tasks, 2)).astype(np.int64)
        summary = trace.summarize(runner.plan, runner.bundle.tables, records)
        print(trace.format_summary(summary), flush=True)
        return {"launch_us": summary.launch_us, "busy_fraction": summary.busy,
                "kinds": {k.kind: {"tasks": k.count, "sm_us": k.total_us, "mean_task_us": k.mean_us}
                          for k in summary.kinds},
                "groups": [{"name": n, "tasks": c, "sm_us": u} for n, c, u in summary.groups[:12]]}

    def first_token(self, prompt: np.ndarray) -> tuple[float, float, float, dict]:
        """(wall seconds to the first token, prefill kernel seconds, host seconds of the
        launches (the kernel's included), generate()'s result)."""
        from mpk.runtime.loader import generate
        self.kernel_seconds, self.launch_seconds = [], []
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = generate(self.session, prompt, 1)     # [B, n] token ids, as a tokenizer gives them
        return (time.perf_counter() - start, float(sum(self.kernel_seconds)), float(sum(self.launch_seconds)),
                out)


def baseline(step) -> dict:
    """A PyTorch baseline's kernel times; a failure (inductor, or memory beside the
    fp32 reference and the mpk session) is recorded as the result, not a crash."""
    try:
        step()
        return {"kernel": time_cuda(step, warmup=2, repeats=REPEATS)}
    except Exception as e:
        torch.cuda.empty_cache()
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}


def run_config(name: str, batch: int, args, rate: float, compile_left: list) -> list[dict]:
    from mpk.models import preset
    config = preset(name)
    model = hf_model(config, args.seed)
    mpk = Mpk(bundle_path(name, batch, args.bundles), model, profile=args.profile)
    reference = None
    rows = []
    try:
        for length in args.prompts:
            if length > mpk.bundle.plan["max_seq"]:
                continue
            prompt = np.random.default_rng(args.seed + length).integers(0, config.vocab_size, (batch, length))
            ids = torch.from_numpy(prompt).cuda()
            samples = [mpk.first_token(prompt) for _ in range(REPEATS + 1)][1:]
            out = samples[-1][3]
            # Checked on the first sequence (a float32 forward of all of them would not fit beside).
            ours = out["logits"][0][:1]
            with torch.no_grad():
                bf16 = model(ids[:1], logits_to_keep=1).logits[:, -1].double().cpu().numpy()
                if reference is None and args.check_fp32:     # the same bf16 weights, upcast
                    reference = copy.deepcopy(model).float()
                ref = (reference(ids[:1], logits_to_keep=1).logits[:, -1].double().cpu().numpy()
                       if reference is not None else bf16)
            err, torch_err = relative_error(ours, ref), relative_error(bf16, ref)
            ok = logits_ok(err, torch_err if reference is not None else None, TOLERANCE, BF16_SLACK)

            def forward(m):
                with torch.no_grad():
                    return m(ids, logits_to_keep=1).logits[:, -1].argmax(-1)
            systems = {"mpk": {"wall": [s[0] for s in samples], "kernel": [s[1] for s in samples],
                               "launch": [s[2] for s in samples]},
                       "eager": baseline(lambda: forward(model))}
            if length in args.compile_prompts and compile_left[0] > 0:
                start = time.perf_counter()
                compiled = torch.compile(model, dynamic=False)
                systems["compiled"] = baseline(lambda: forward(compiled))
                compile_left[0] -= time.perf_counter() - start
                del compiled
                torch._dynamo.reset()                  # its graphs and buffers go before the next shape
            flops = prefill_flops(config, batch, length)
            row = {"model": name, "batch": batch, "prompt": length, "chunk": mpk.bundle.prefill_chunk,
                   "chunks": -(-length // mpk.bundle.prefill_chunk), "flops": flops,
                   "check": {"mpk_rel_err": err, "torch_bf16_rel_err": torch_err, "ok": ok,
                             "reference": "fp32" if reference is not None else "bf16"},
                   "systems": {}}
            for system, times in systems.items():
                if "error" in times:
                    row["systems"][system] = times
                    continue
                entry = {f"{k}_ms": float(np.median(v)) * 1e3 for k, v in times.items()}
                best = entry["kernel_ms"] / 1e3
                entry.update(tokens_per_s=batch * length / best, tflops=flops / best / 1e12,
                             fraction_of_matmul_rate=flops / best / rate)
                row["systems"][system] = entry
            base = min((s["kernel_ms"] for k, s in row["systems"].items() if k != "mpk" and "kernel_ms" in s),
                       default=None)
            if base:
                row["mpk_vs_best_torch"] = row["systems"]["mpk"]["wall_ms"] / base
            print(_line(row), flush=True)
            if args.profile:
                row["profile"] = mpk.profiled(prompt)
            rows.append(row)
    finally:
        mpk.session.close()
        del model, reference
        torch.cuda.empty_cache()
    return rows


def _line(row) -> str:
    s = row["systems"]
    cell = lambda k, f="kernel_ms": f"{s[k][f]:8.2f}" if k in s and f in s[k] else f"{'-':>8}"
    return (f"{row['model']:<12} b{row['batch']:<2} prompt {row['prompt']:<5} | mpk first token {cell('mpk', 'wall_ms')} ms "
            f"(kernel {cell('mpk')}, {s['mpk']['fraction_of_matmul_rate']:.0%} of matmul rate) | eager "
            f"{cell('eager')} | compiled {cell('compiled')} | err {row['check']['mpk_rel_err']:.1e} "
            f"(torch bf16 {row['check']['torch_bf16_rel_err']:.1e})")


def table(result) -> str:
    lines = [f"{result['card']}: time to first token, ms (bf16 matrix rate {result['matmul_flops'] / 1e12:.0f} "
             f"TFLOP/s by torch.matmul)",
             f"{'model':<12} {'b':>2} {'prompt':>6} {'mpk':>8} {'kernel':>8} {'% mm':>5} {'eager':>8} "
             f"{'compiled':>8}  mpk / best torch"]
    for r in result["results"]:
        s = r["systems"]
        get = lambda k, f="kernel_ms": f"{s[k][f]:8.2f}" if k in s and f in s[k] else f"{'-':>8}"
        lines.append(f"{r['model']:<12} {r['batch']:>2} {r['prompt']:>6} {get('mpk', 'wall_ms')} {get('mpk')} "
                     f"{s['mpk']['fraction_of_matmul_rate'] * 100:5.0f} {get('eager')} {get('compiled')}  "
                     + (f"{r['mpk_vs_best_torch']:.2f}x" if "mpk_vs_best_torch" in r else "-"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--prompts", nargs="+", type=int, default=list(PROMPTS))
    parser.add_argument("--bundles", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile-prompts", nargs="*", type=int, default=[1024],
                        help="prompt lengths at which torch.compile is measured")
    parser.add_argument("--compile-budget", type=float, default=600.0)
    parser.add_argument("--no-check-fp32", dest="check_fp32", action="store_false",
                        help="check against transformers in bf16 only (no float32 copy of the model: "
                             "half the memory), by the same relative error without the bf16 slack")
    parser.add_argument("--tag", default="")
    parser.add_argument("--profile", action="store_true",
                        help="one more run with the in-kernel profiler: the prefill kernel's time per task kind")
    args = parser.parse_args(argv)

    card = card_name()
    rate = matmul_rate()
    print(f"{torch.cuda.get_device_name()}: bf16 matmul {rate / 1e12:.0f} TFLOP/s", flush=True)
    result = {"card": torch.cuda.get_device_name(), "matmul_flops": rate, "torch": torch.__version__,
              "python": platform.python_version(), "tolerance": TOLERANCE, "bf16_slack": BF16_SLACK,
              "repeats": REPEATS, "results": []}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{card}-prefill{'-' + args.tag if args.tag else ''}.json"
    compile_left = [args.compile_budget]
    for name in args.models:
        for batch in args.batches:
            result["results"] += run_config(name, batch, args, rate, compile_left)
            path.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {path}\n")
    print(table(result))
    failed = [r for r in result["results"] if not r["check"]["ok"]]
    for r in failed:
        print(f"CHECK FAILED: {r['model']} batch {r['batch']} prompt {r['prompt']}: {r['check']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

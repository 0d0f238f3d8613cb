"""Tensor-parallel decode: one step of PyTorch TP=N (NCCL) and of mpk's TP bundles.

    python -m bench.tp --models qwen3-8b --tp 2 4 --batches 1 8 --contexts 1024 --out bench/results
    torchrun --nproc-per-node 4 -m bench.tp --models qwen3-8b --tp 4       # ranks started by torchrun

For every model, TP degree N, batch and context it

1. times PyTorch TP=N: bench/decode.py's plain-PyTorch decoder (mpk/models,
   the same seeded random bf16 weights, every rank cutting its slice from the
   full tensors), sharded Megatron-style as mpk-shard shards it: q/k/v and
   gate/up column-parallel (a rank keeps its query heads, its KV heads -- with
   fewer KV heads than ranks KV head rank * kv_heads // N, replicated -- and
   its MLP columns), o_proj and down_proj row-parallel with an all-reduce, the
   residual added once after it, norms and embedding replicated, the LM head
   vocabulary-parallel with an all-gather of the logits, so every rank takes
   the same greedy token. One process per GPU (torch.multiprocessing spawn,
   or torchrun), NCCL. One step at position ctx-1 over a static cache of ctx
   rows, eager and captured in a CUDA graph, CUDA events on rank 0, median;
2. times NCCL at the decode sizes: an all-reduce of [batch, hidden] bf16 (each
   o_proj and down_proj) and an all-gather of [batch, vocab / N] bf16 (the LM
   head), COLLECTIVES back to back in a CUDA graph, microseconds each;
3. times mpk TP=N (`mpk_tp_row`): the bundle `python -m bench.build --tp N`
   compiled (`tp_bundle_path`), loaded by mpk.runtime.ranks.RankSet, given the
   whole checkpoint and bench.decode's random cache rows (each rank cuts its
   slice) and checked against the PyTorch fp32 model first, as bench.decode
   checks one GPU; CUDA events around each launch of `steps` steps (the
   slowest rank), median, divided by `steps`. With fewer GPUs than N the ranks
   are emulated, N kernels side by side on one GPU ("emulated": true);
4. times TP=1, the plain single-GPU step (eager, CUDA graph): the reference.

NCCL refuses two ranks on one GPU: with fewer GPUs than N the PyTorch and NCCL
rows are recorded as skipped, with the reason. NVLink multicast stays off
(NCCL_NVLS_ENABLE=0). Writes <out>/<card>-tp.json (every number; nothing is
edited by hand) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from bench.build import ROOT, bundle_path
from mpk.models import Decoder, preset, rope_inv_freq

BATCHES, CONTEXTS, TPS = (1, 8), (1024,), (2, 4)
COLLECTIVES = 100           # back-to-back collectives in one CUDA graph (NCCL latency)
MPK_WARMUP = 5              # untimed mpk launches before the timed ones
ROWS = ("o_proj", "down_proj")          # row-parallel: input columns split, then all-reduce
# torch 2.13 renames all_gather_into_tensor (the same collective: one flat output).
all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


# ------------------------------------------------------------------ sharding

def check_tp(config, tp: int) -> None:
    """Refuse a TP degree the model does not split over (mpk-shard's rules, and the vocabulary)."""
    c = config
    if c.num_heads % tp:
        raise ValueError(f"{c.num_heads} query heads do not split over tp={tp} ranks")
    if c.num_kv_heads % tp and tp % c.num_kv_heads:
        raise ValueError(f"{c.num_kv_heads} KV heads neither split over tp={tp} ranks nor replicate on them")
    for what, n in (("MLP columns", c.intermediate_size), ("vocabulary rows", c.vocab_size)):
        if n % tp:
            raise ValueError(f"{n} {what} do not split over tp={tp} ranks")


def shard_range(name: str, config, rank: int, tp: int) -> tuple[int, int, int] | None:
    """(dim, start, size): rank's slice of the full checkpoint tensor `name`; None: replicated."""
    c, role = config, name.removesuffix(".weight").rsplit(".", 1)[-1]
    if role in ("q_proj", "o_proj"):
        size = c.num_heads // tp * c.head_dim
        start = rank * size
    elif role in ("k_proj", "v_proj"):
        size = max(c.num_kv_heads // tp, 1) * c.head_dim           # replicated: one KV head a rank
        start = rank * c.num_kv_heads // tp * c.head_dim
    elif role in ("gate_proj", "up_proj", "down_proj"):
        size = c.intermediate_size // tp
        start = rank * size
    elif role == "lm_head":
        size = c.vocab_size // tp
        start = rank * size
    else:
        return None
    return (1 if role in ROWS else 0), start, size


def shard(name: str, tensor: torch.Tensor, config, rank: int, tp: int) -> torch.Tensor:
    """Rank's slice of a full tensor: a copy of its own (so the full one can be freed)."""
    where = shard_range(name, config, rank, tp)
    return tensor if where is None else tensor.narrow(*where).clone()


def rank_config(config, tp: int):
    """The shapes of one rank's layers: its query heads, KV heads and MLP columns. Tied,
    so Decoder makes no LM head: TPDecoder keeps its vocabulary rows itself."""
    return config.replace(num_heads=config.num_heads // tp, num_kv_heads=max(config.num_kv_heads // tp, 1),
                          intermediate_size=config.intermediate_size // tp, tie_word_embeddings=True)


class TPDecoder(Decoder):
    """Rank `rank` of the TP=`tp` decoder, cut from the full checkpoint `state` (Hugging
    Face names; on the device and in the dtype it is to run in). `forward(tokens,
    positions) -> (next_tokens [B] int32, logits [B, V])` as Decoder's, the full logits on
    every rank; collectives over `group` (default: the world)."""

    def __init__(self, config, state: dict, rank: int, tp: int, group=None):
        check_tp(config, tp)
        with torch.device("meta"):
            super().__init__(rank_config(config, tp))
        self.rank, self.tp, self.group = rank, tp, group
        self.load_state_dict({name: shard(name, state[name], config, rank, tp) for name in self.state_dict()},
                             assign=True)
        head = state["model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight"]
        self.register_buffer("head", shard("lm_head.weight", head, config, rank, tp), persistent=False)
        self.inv_freq = torch.tensor(rope_inv_freq(config), dtype=torch.float32, device=head.device)
        for layer in self.model.layers:
            for linear in (layer.self_attn.o_proj, layer.mlp.down_proj):
                linear.register_forward_hook(self._all_reduce)

    def _all_reduce(self, module, inputs, partial):
        """A row-parallel product's partial sums -> the full product on every rank."""
        if self.tp > 1:
            dist.all_reduce(partial, group=self.group)
        return partial

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor):
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x, positions, self.inv_freq)            # residuals added after the all-reduces
        local = F.linear(self.model.norm(x), self.head)        # [B, V / tp]: this rank's vocabulary
        logits = local
        if self.tp > 1:
            parts = local.new_empty(self.tp * local.shape[0], local.shape[1])
            all_gather(parts, local, group=self.group)
            logits = parts.view(self.tp, *local.shape).permute(1, 0, 2).reshape(local.shape[0], -1)
        return torch.argmax(logits, dim=-1).to(torch.int32), logits


# ------------------------------------------------------------------ PyTorch TP

def summary(samples: list[float]) -> dict:
    return {"ms": float(np.median(samples)) * 1e3, "ms_p10": float(np.percentile(samples, 10)) * 1e3,
            "ms_p90": float(np.percentile(samples, 90)) * 1e3}


def tokens_for(config, seed: int, batch: int, ctx: int) -> np.ndarray:
    return np.random.default_rng([seed, batch, ctx]).integers(0, config.vocab_size, batch)


def step_times(model, config, batch: int, ctx: int, seed: int) -> dict:
    """Eager and CUDA-graph ms/step at position ctx-1 over a static cache of ctx rows."""
    from bench.decode import baselines
    model.setup_caches(batch, ctx)
    tokens = torch.from_numpy(tokens_for(config, seed, batch, ctx)).cuda()
    return {system: summary(samples) for system, samples in baselines(model, tokens, ctx - 1, 0).items()}


def nccl_latency(config, tp: int, batch: int, count: int = COLLECTIVES) -> dict:
    """Microseconds of one all-reduce of [batch, hidden] bf16 and one all-gather of
    [batch, vocab / tp] bf16: `count` back to back in a CUDA graph, replayed (median)."""
    from bench.decode import _graphed, time_cuda
    x = torch.zeros(batch, config.hidden_size, dtype=torch.bfloat16, device="cuda")
    part = torch.zeros(batch, config.vocab_size // tp, dtype=torch.bfloat16, device="cuda")
    gathered = part.new_empty(tp * batch, part.shape[1])
    out = {}
    for name, one, nbytes in (("allreduce", lambda: dist.all_reduce(x), x.nbytes),
                              ("allgather", lambda: all_gather(gathered, part), gathered.nbytes)):
        replay = _graphed(lambda one=one: [one() for _ in range(count)])
        out[f"{name}_us"] = float(np.median(time_cuda(replay))) / count * 1e6
        out[f"{name}_bytes"] = nbytes
    return out


def measure_tp(model_name: str, rank: int, tp: int, batches, contexts, seed: int) -> list[dict]:
    """This rank's share of the TP=tp rows of one model (process group up, this rank's
    GPU current); every rank runs the same steps, rank 0's numbers are reported."""
    from bench.decode import torch_model
    config = preset(model_name)
    full = torch_model(config, seed)                       # bench.decode's weights, the same on every rank
    model = TPDecoder(config, full.state_dict(), rank, tp)
    del full
    torch.cuda.empty_cache()
    rows = []
    for batch in batches:
        nccl = nccl_latency(config, tp, batch)
        for ctx in contexts:
            rows.append({"model": model_name, "tp": tp, "batch": batch, "ctx": ctx,
                         "systems": step_times(model, config, batch, ctx, seed), "nccl": nccl})
            if rank == 0:
                print(_line(rows[-1]), flush=True)
    del model
    torch.cuda.empty_cache()
    return rows


def run_ranks(rank: int, tp: int, local_rank: int, models, batches, contexts, seed: int) -> list[dict]:
    """Join the NCCL group (env://: MASTER_ADDR, MASTER_PORT) and measure every model."""
    os.environ["NCCL_NVLS_ENABLE"] = "0"                    # NVLink multicast stays off
    torch.cuda.set_device(local_rank)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    dist.init_process_group("nccl", rank=rank, world_size=tp)
    try:
        rows = [row for name in models for row in measure_tp(name, rank, tp, batches, contexts, seed)]
        dist.barrier()                  # no rank leaves (rank 0 takes the store with it) while another works
        return rows
    finally:
        dist.destroy_process_group()


def _spawned(rank: int, tp: int, port: str, job: dict, out: str) -> None:
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = port
    rows = run_ranks(rank, tp, rank, **job)
    if rank == 0:
        Path(out).write_text(json.dumps(rows))


def spawn_ranks(tp: int, job: dict) -> list[dict]:
    """run_ranks in tp processes (one per GPU), started by torch.multiprocessing; rank 0's rows."""
    port = os.environ.get("MASTER_PORT") or str(free_port())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        torch.multiprocessing.spawn(_spawned, args=(tp, port, job, str(out)), nprocs=tp, join=True)
        return json.loads(out.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------ mpk

def tp_bundle_path(model: str, batch: int, tp: int, root: Path = ROOT) -> Path:
    """Where `python -m bench.build --tp N` writes a TP bundle: <model>-b<batch>-tp<N>."""
    path = bundle_path(model, batch, root)
    return path.with_name(f"{path.name}-tp{tp}")


def _as_mpk_run(ranks):
    """A RankSet dressed as bench.decode's MpkRun, for its fill_caches and check: whole
    KV caches written (each rank keeps its slice), one launch of every rank, rank 0's
    logits and tokens read."""
    from bench.decode import MpkRun
    run = MpkRun.__new__(MpkRun)
    run.session, run.bundle, run.steps = ranks, ranks.bundle, ranks.steps_per_launch
    run.max_seq = int(ranks.bundle.plan["max_seq"])
    return run


def mpk_tp_row(model: str, tp: int, batch: int, ctx: int, bundles_root: Path = ROOT, seed: int = 0,
               launches: int = 20, torch_full=None) -> dict:
    """mpk's TP=tp step: ms/step (median of `launches` timed launches, after a check of one
    launch against the PyTorch fp32 model), "emulated" when the ranks share one GPU. A row
    that cannot run (no mpk.runtime.ranks, no bundle, no GPU) is {"skipped": reason};
    a failure is {"error": ...}. `torch_full`: bench.decode.torch_model(model, seed), if built."""
    try:
        from mpk.runtime.ranks import RankSet
    except ImportError as e:
        return {"skipped": f"mpk.runtime.ranks is not available ({e})"}
    path = tp_bundle_path(model, batch, tp, bundles_root)
    if not path.is_dir():
        return {"skipped": f"no bundle at {path} (python -m bench.build --tp {tp})"}
    if gpu_count() == 0:
        return {"skipped": "needs a GPU, this machine has none"}
    from bench.decode import CheckFailed, check, fill_caches, torch_model
    config = preset(model)
    ranks = None
    try:
        ranks = RankSet(path, device=0)
        run = _as_mpk_run(ranks)
        if ctx + run.steps > run.max_seq:
            return {"skipped": f"the bundle's cache holds {run.max_seq} rows: ctx {ctx} + {run.steps} steps "
                               "do not fit"}
        full = torch_full if torch_full is not None else torch_model(config, seed)
        ranks.bind_weights(full.state_dict())               # whole tensors: each rank cuts its slice
        fill_caches(full, run, batch, ctx, seed)            # bench.decode's random rows 0..ctx-2, both systems
        tokens = tokens_for(config, seed, batch, ctx)
        row = {"emulated": bool(ranks.emulated), "steps_per_launch": run.steps, "bundle": str(path)}
        try:
            row["check"] = check(full, run, tokens, ctx)
        except CheckFailed as e:
            row["check_failed"] = str(e)
            print(f"CHECK FAILED: {model} tp {tp} batch {batch} ctx {ctx}: {e}", flush=True)
        # Timed launches: the first step attends ctx rows, the last ctx + steps - 1.
        seconds = ranks.seconds_per_step(tokens, np.full(batch, ctx - 1), run.steps, repeat=launches,
                                         warmup=MPK_WARMUP)
        return {"ms": seconds * 1e3, **row}
    except Exception as e:          # recorded, never hidden: the other rows still run
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    finally:
        if ranks is not None:
            ranks.close()


# ------------------------------------------------------------------ driver

def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def nccl_version() -> str:
    v = torch.cuda.nccl.version()
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _without_torch(row: dict, why: dict) -> dict:
    """PyTorch's systems (and NCCL's) not measured: {"skipped": reason} or {"error": ...}."""
    row["systems"].update(eager=dict(why), cuda_graph=dict(why))
    if row["tp"] > 1:
        row["nccl"] = dict(why)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["qwen3-8b"])
    parser.add_argument("--tp", nargs="+", type=int, default=list(TPS), help="TP degrees (TP=1 always runs)")
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--contexts", nargs="+", type=int, default=list(CONTEXTS))
    parser.add_argument("--bundles", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mpk-launches", type=int, default=20, help="timed mpk launches (median)")
    parser.add_argument("--no-mpk", dest="mpk", action="store_false", help="PyTorch and NCCL rows only")
    args = parser.parse_args(argv)
    if min(args.tp + args.batches + args.contexts) < 1:
        parser.error("--tp, --batches and --contexts take positive integers")
    for name in args.models:
        try:
            for tp in args.tp:
                check_tp(preset(name), tp)
        except ValueError as e:                 # an unknown model (ConfigError) or a TP it does not split over
            parser.error(f"{name}: {e}")

    os.environ["NCCL_NVLS_ENABLE"] = "0"                    # before any NCCL init, inherited by the ranks
    job = dict(models=args.models, batches=args.batches, contexts=args.contexts, seed=args.seed)
    tps = sorted(set(args.tp) - {1})
    measured: dict[int, list[dict] | dict] = {}     # tp -> rank 0's rows, or {"skipped"/"error": why}
    launcher = "torchrun" if "RANK" in os.environ and "WORLD_SIZE" in os.environ else "spawn"
    if launcher == "torchrun":
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        if world > 1:
            tps = sorted(set(tps) | {world})
            measured[world] = run_ranks(rank, world, int(os.environ.get("LOCAL_RANK", rank)), **job)
        if rank != 0:
            return 0
        for tp in tps:
            measured.setdefault(tp, {"skipped": f"torchrun started {world} ranks"})
    gpus = gpu_count()
    for tp in tps:
        if tp in measured:
            continue
        if tp > gpus:
            measured[tp] = {"skipped": f"needs {tp} GPUs, this machine has {gpus} "
                                       "(NCCL refuses two ranks on one GPU)"}
            continue
        try:
            measured[tp] = spawn_ranks(tp, job)
        except Exception as e:           # a rank failed (its traceback is above): its rows say so
            measured[tp] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}

    if gpus:
        from bench.decode import card_name
        card, card_label = card_name(), torch.cuda.get_device_name()
    else:
        card, card_label = "cpu", "no GPU"
    result = {"card": card_label, "gpus": gpus, "launcher": launcher, "torch": torch.__version__,
              "nccl_version": nccl_version() if gpus else None,
              "nccl_nvls_enable": os.environ["NCCL_NVLS_ENABLE"], "python": platform.python_version(),
              "collectives_per_graph": COLLECTIVES, "results": []}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{card}-tp.json"
    for name in args.models:
        result["results"] += model_rows(name, [1] + tps, measured, gpus, args)
        path.write_text(json.dumps(result, indent=1))       # after every model: a cut run keeps them
    print(f"\nwrote {path}\n")
    print(table(result))
    failed = [r for r in result["results"] if "check_failed" in r["systems"].get("mpk", {})]
    return 1 if failed else 0


def model_rows(name: str, tps: list[int], measured: dict, gpus: int, args) -> list[dict]:
    """Every (tp, batch, ctx) row of one model: PyTorch (measured by the ranks, or by this
    process for TP=1), NCCL, mpk."""
    config = preset(name)
    by_key = {(r["tp"], r["batch"], r["ctx"]): r for rows in measured.values() if isinstance(rows, list)
              for r in rows if r["model"] == name}
    full = None
    if gpus:
        from bench.decode import torch_model
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
        full = torch_model(config, args.seed)
    rows = []
    for tp in tps:
        for batch in args.batches:
            for ctx in args.contexts:
                row = by_key.get((tp, batch, ctx)) or {"model": name, "tp": tp, "batch": batch, "ctx": ctx,
                                                       "systems": {}}
                if tp == 1:
                    if full is None:
                        _without_torch(row, {"skipped": "needs a GPU, this machine has none"})
                    else:
                        row["systems"] = step_times(full, config, batch, ctx, args.seed)
                elif not row["systems"]:
                    _without_torch(row, measured[tp])
                if tp > 1 and args.mpk:
                    row["systems"]["mpk"] = mpk_tp_row(name, tp, batch, ctx, args.bundles, args.seed,
                                                       args.mpk_launches, full)
                print(_line(row), flush=True)
                rows.append(row)
    del full
    if gpus:
        torch.cuda.empty_cache()
    return rows


def _cell(system: dict | None, width: int = 8) -> str:
    if not system or "ms" not in system:
        return f"{'-':>{width}}"
    return f"{system['ms']:{width - 1}.3f}*" if system.get("emulated") else f"{system['ms']:{width}.3f}"


def _line(row: dict) -> str:
    s, nccl = row["systems"], row.get("nccl") or {}
    why = sorted({v.get("skipped") or v.get("error") for v in [*s.values(), nccl]} - {None})
    return (f"{row['model']:<12} tp{row['tp']} b{row['batch']:<2} ctx {row['ctx']:<5} | eager {_cell(s.get('eager'))} "
            f"| graph {_cell(s.get('cuda_graph'))} | mpk {_cell(s.get('mpk'))} ms"
            + (f" | allreduce {nccl['allreduce_us']:.1f} us, allgather {nccl['allgather_us']:.1f} us"
               if "allreduce_us" in nccl else "") + (f"  ({'; '.join(why)})" if why else ""))


def table(result: dict) -> str:
    """ms/step per system (rank 0's CUDA events), NCCL microseconds per collective."""
    lines = [f"{result['card']} x{result['gpus']}; ms/step, NCCL us per collective "
             f"({result['collectives_per_graph']} in a CUDA graph)",
             f"{'model':<12} {'tp':>2} {'b':>2} {'ctx':>5} {'eager':>8} {'graph':>8} {'mpk':>9} "
             f"{'allreduce':>9} {'allgather':>9}"]
    for r in result["results"]:
        s, nccl = r["systems"], r.get("nccl") or {}
        us = lambda k: f"{nccl[k]:9.1f}" if k in nccl else f"{'-':>9}"
        lines.append(f"{r['model']:<12} {r['tp']:>2} {r['batch']:>2} {r['ctx']:>5} {_cell(s.get('eager'))} "
                     f"{_cell(s.get('cuda_graph'))} {_cell(s.get('mpk'), 9)} {us('allreduce_us')} {us('allgather_us')}")
    lines.append("* mpk's ranks emulated on one GPU (N kernels side by side); - skipped or failed "
                 "(the reason is in the JSON)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

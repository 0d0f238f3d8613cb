"""One rank of a tensor-parallel bundle in this process (the processes of
test_gpu_tp.py's process test, or torchrun's): generates from a seeded prompt and,
on rank 0, checks against PyTorch and prints the worst error.

    RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29511 \
        python3 test/runtime/tp_processes.py .bundles/qwen3-tiny-tp2 [--sms 66] [--stall]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from mpk.runtime import loader
from mpk.runtime.ranks import DistributedRank
from mpk.runtime.weights import random_weights


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--sms", type=int, help="SMs this rank may use (ranks sharing one GPU)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--stall", action="store_true",
                        help="this rank joins the first launch but never starts its kernel (a peer that never signals)")
    args = parser.parse_args()
    with DistributedRank(args.bundle, device=int(os.environ.get("LOCAL_RANK", 0)), sms=args.sms,
                         timeout_s=args.timeout) as rank:
        weights = random_weights(rank.bundle.weights(), 7)
        rank.bind_weights(weights)
        if args.stall:
            rank.session.prepare()
            rank.launches += 1
            rank._barrier(f"launch{rank.launches}")
            print(f"rank {rank.rank}: joined launch 1, never starts its kernel", flush=True)
            time.sleep(4 * args.timeout)
            return 0
        prompt = np.array([3, 1, 4])
        out = loader.generate(rank, prompt, args.steps)
        if rank.rank == 0:
            from mpk.check import check_run
            report = check_run(rank.bundle.plan["model"], weights, prompt, out, rank.bundle.plan["max_seq"], slack=1.25)
            print(report.table())
            print("tokens", out["tokens"][:, 0].tolist(), "ok" if report.ok else "DIFFERS", flush=True)
            return 0 if report.ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Draw a bench/decode.py result file as a PNG (needs matplotlib: pip install -e '.[bench]').

    python -m bench.plot bench/results/nvidia-h200.json     # writes ....png beside it

One panel per (batch, context): for every model, each system's time per
step as a multiple of the same run's floor (bytes a step must read over the
measured read bandwidth); 1.0 is the floor. Where the run measured it, a
dashed line over each model marks its limit (floor + per-stage overhead x
dependent stages). Numbers come from the JSON only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SYSTEMS = (("mpk", "mpk", "#d62728"), ("compiled_graph", "torch.compile + CUDA graph", "#1f77b4"),
           ("cuda_graph", "PyTorch CUDA graph", "#9ecae1"), ("eager", "PyTorch eager", "#c7c7c7"))


def plot(result: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    panels = sorted({(r["batch"], r["ctx"]) for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharey=True, squeeze=False)
    width = 0.8 / len(SYSTEMS)
    for ax, (batch, ctx) in zip(axes[0], panels):
        for k, (key, label, color) in enumerate(SYSTEMS):
            xs, ys = [], []
            for i, model in enumerate(models):
                row = next((r for r in rows if (r["model"], r["batch"], r["ctx"]) == (model, batch, ctx)), None)
                if row and key in row["systems"]:
                    xs.append(i + (k - (len(SYSTEMS) - 1) / 2) * width)
                    ys.append(row["systems"][key]["ratio_to_floor"])
            ax.bar(xs, ys, width, label=label, color=color)
            if key == "mpk":
                for x, y in zip(xs, ys):
                    ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        limits = [(i, row["limit_ms"] / row["floor_ms"]) for i, model in enumerate(models)
                  for row in rows if (row["model"], row["batch"], row["ctx"]) == (model, batch, ctx)
                  and row.get("limit_ms")]
        for n, (i, y) in enumerate(limits):
            ax.hlines(y, i - 0.4, i + 0.4, colors="black", linestyles="dashed", linewidth=1,
                      label="limit: floor + stage overhead x stages" if n == 0 else None)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"batch {batch}, context {ctx}", fontsize=10)
    axes[0][0].set_ylabel("time per decode step / floor (log scale)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    runs = result.get("earlier_runs", []) + [result]     # a run split over calls: each row has its own
    bw = "/".join(f"{r['read_bandwidth_bytes_per_s'] / 1e12:.2f}" for r in runs)
    fig.suptitle(f"Decode step on {result['card']} (floor: bytes to read / {bw} TB/s measured in the "
                 f"{'run' if len(runs) == 1 else f'{len(runs)} runs, by row'})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=130)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = Path(argv[0])
    out = path.with_suffix(".png")
    plot(json.loads(path.read_text()), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

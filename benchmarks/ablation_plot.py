"""The learning curves of the full-length ablation rows (the default profile, the `long` profile, ...) on one plot:
the training's own validation against training minutes, so what more compute buys is seen beside where the default
30-minute budget stops. Used by benchmarks/ablation.py."""

from __future__ import annotations

import json
from pathlib import Path


def curves(work: Path, names: list[str]) -> dict[str, dict]:
    """name -> {"minutes": [...], "window_recall": [...], "top1": [...], "steps": int} for every row under `work`
    with a train.json history. Minutes of each validation point: its step x the run's mean time per step (fit_s /
    steps, validation passes included), so runs of different length share one time axis."""
    out = {}
    for name in names:
        path = work / name / "model" / "train.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        history = s.get("history") or []
        if not history or not s.get("steps"):
            continue
        per_step_min = s["fit_s"] / 60.0 / s["steps"]
        out[name] = {"minutes": [0.0] + [h["step"] * per_step_min for h in history], "steps": s["steps"]}
        for key in ("window_recall", "top1"):  # the untrained model's figure at minute 0
            out[name][key] = [s.get(f"val_{key}_untrained", 0.0)] + [h[key] for h in history]
    return out


def plot_curves(data: dict[str, dict], path: Path, budget_min: float = 30.0) -> str | None:
    """Window recall@10 and 3 s top-1 (training val) against training minutes, one line per run, with the default
    profile's budget marked; written atomically as PNG to `path`. Returns the file name, or None with under 2 runs."""
    if len(data) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resonance.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), sharex=True)
    for ax, key, title in ((axes[0], "window_recall", "window recall@10"), (axes[1], "top1", "3 s query top-1")):
        for name, d in data.items():
            ax.plot(d["minutes"], d[key], marker="o", markersize=3, label=f"{name} ({d['steps']} steps)")
        ax.axvline(budget_min, color="grey", linestyle="--", linewidth=1)
        ax.text(budget_min, 0.02, f"{budget_min:g} min budget ", color="grey", fontsize=8, ha="right")
        ax.set(xlabel="training minutes (2 CPU cores)", ylabel="validation", ylim=(0, 1), title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("learning curves: val songs among 50k distractor windows", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path.name


def main() -> None:
    """Draw the plot alone from the rows on record (benchmarks/ablation.py draws it with every table)."""
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ablation import VARIANTS

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="data/ablation", help="the ablation rows' folder")
    parser.add_argument("--out", default="benchmarks/ablation_curves.png")
    args = parser.parse_args()
    name = plot_curves(curves(Path(args.work), list(VARIANTS)), Path(args.out))
    print(f"wrote {args.out}" if name else f"fewer than two full-length rows with a history under {args.work}")


if __name__ == "__main__":
    main()

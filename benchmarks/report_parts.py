"""Parts of the results report that are not the test tables: the model's paragraph and learning curve (from its
train.json), and the other generated reports embedded in it (the ablation, the tuning reports, what another
training profile reaches on the test targets). results_report.py imports them.

Run on its own, it draws a model's learning curve:
  .venv/bin/python benchmarks/report_parts.py data/model/train.json --out /tmp/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from resonance.io import atomic_path


def _cores(summary: dict[str, Any]) -> str:
    """' on N CPU cores' from the training summary, else the cores of the machine making this report."""
    import os

    cores = summary.get("cpus")
    return f" on {cores} CPU cores" if cores else f" (this report's machine: {os.cpu_count()} CPU cores)"


def training_lines(summary: dict[str, Any] | None, curve: str | None) -> list[str]:
    if not summary:
        return []
    best = lambda k: "-" if summary.get(k) is None else f"{summary[k]:.1%}"  # noqa: E731
    lines = [f"`{summary['encoder']}` encoder, {summary['parameters'] / 1e6:.2f} M parameters, `{summary['loss']}` loss, "
             f"profile `{summary['profile']}`: {summary['steps']} steps ({summary['epochs']} epochs, stopped by "
             f"{summary.get('stopped_by', '?')}) on {summary['train_tracks']} `train` tracks: **training "
             f"{summary['fit_s'] / 60:.1f} min**, the whole stage (validation set, export, MLflow) "
             f"{summary['wall_s'] / 60:.1f} min{_cores(summary)}. Validation ({summary['val_queries']} concert "
             f"queries of val songs among {summary.get('val_reference_windows', 0):,} reference windows; checkpoint "
             f"chosen by `{summary.get('monitor', 'top1')}`): top-1 {best('best_val_top1')} (untrained "
             f"{best('val_top1_untrained')}), window recall@10 {best('best_val_window_recall')} (untrained "
             f"{best('val_window_recall_untrained')}). ONNX matches torch within {summary['onnx_max_abs_diff']:.1e}.", ""]
    if curve:
        lines += [f"![learning curve]({curve})", ""]
    return lines


def learning_curve(summary: dict[str, Any] | None, path: Path) -> str | None:
    """Validation scores against training steps (from train.json's history) as a PNG; its file name."""
    history = (summary or {}).get("history") or []
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    steps = [h["step"] for h in history]
    for key, label in (("top1", "query top-1"), ("window_recall", "window recall@10"), ("window_top1", "window top-1")):
        ax.plot(steps, [h[key] for h in history], marker="o", label=label)
    ax.set(xlabel=f"training step (all {summary['steps']} in {summary['fit_s'] / 60:.0f} min)", ylabel="validation",
           ylim=(0, 1), title="learning curve (val songs among distractors)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path.name


def generated(path: Path) -> list[str]:
    """The body of another generated markdown file (after its 'do not edit by hand' line), if it exists."""
    if not path.is_file():
        return []
    text = path.read_text()
    title = text.lstrip("# ").split("\n", 1)[0]
    body = text.split("do not edit by hand.", 1)[-1].strip()
    body = "\n".join("#" * 2 + line if line.startswith("## ") else line for line in body.splitlines())
    return [f"### {title}", "", body, ""]  # its sections one level below its title


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_json", help="a model's training summary (train.json)")
    parser.add_argument("--out", default="learning_curve.png", help="the PNG to write")
    args = parser.parse_args()
    summary = json.loads(Path(args.train_json).read_text())
    name = learning_curve(summary, Path(args.out))
    print(f"learning curve -> {args.out}" if name else f"{args.train_json} has no history: nothing drawn")
    print("\n".join(training_lines(summary, None)))


if __name__ == "__main__":
    main()

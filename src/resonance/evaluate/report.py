"""Writers for an evaluation's metrics: metrics.json, a markdown report, figures, and MLflow logging.

Figures are drawn with matplotlib's Agg canvas (no pyplot state) and written atomically, like every artifact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from resonance.evaluate.metrics import flatten_metrics
from resonance.io import atomic_open, atomic_path, write_json

METRICS_NAME = "metrics.json"
REPORT_NAME = "report.md"
SNR_PLOT_NAME = "hit_rate_vs_snr.png"
HEATMAP_NAME = "snr_rt60_heatmap.png"
MLFLOW_BATCH = 500  # metrics per MLflow call (its server caps a batch at 1000)
DPI = 120


def _json_ready(value: Any) -> Any:
    """`value` with non-finite floats (NaN, inf) turned into None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def write_report(metrics: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write metrics.json, report.md, hit_rate_vs_snr.png and snr_rt60_heatmap.png into `out_dir` (atomically).

    Returns {name: path} of the files written.
    """
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in (METRICS_NAME, REPORT_NAME, SNR_PLOT_NAME, HEATMAP_NAME)}
    write_json(paths[METRICS_NAME], _json_ready(metrics))
    with atomic_open(paths[REPORT_NAME]) as fh:
        fh.write(render_markdown(metrics))
    compare_plot({metrics["method"]: metrics}, paths[SNR_PLOT_NAME])
    heatmap_plot(metrics, paths[HEATMAP_NAME])
    return paths


def _rate(rates: Mapping[str, Any] | None, kind: str) -> str:
    """`0.85 [0.71, 0.93]` for kind `hit` or `segment`; an en dash when undefined."""
    if rates is None:
        return "–"
    value = rates["hit_rate" if kind == "hit" else "segment_hit_rate"]
    lo, hi = rates[f"{kind}_ci"]
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _snr_text(snr_db: float | None) -> str:
    return "none" if snr_db is None else f"{snr_db:g} dB"


def _far_text(rates: Mapping[str, Any]) -> str:
    return "–" if rates.get("far") is None else f"{rates['far']:.3f}"


def render_markdown(metrics: dict[str, Any]) -> str:
    """The human-readable report: hit rates per length x condition, open set, latency and index size."""
    s = metrics["settings"]
    lines = [f"# Evaluation: {metrics['method']}", "",
             f"{metrics['n_queries']} queries ({metrics['n_in_catalog']} in the catalog, "
             f"{metrics['n_out_of_catalog']} out of it). Hit: the predicted track is the true one; segment hit: "
             f"also within ±{s['segment_tolerance_s']:g} s of the true offset. Brackets: "
             f"{100 * s['confidence']:g}% intervals ({s.get('intervals', 'Wilson')}). SNR none = no crowd.", "",
             "## Hit rate per query length and condition", "",
             "| length | SNR | reverb | RT60 (s) | clipping | hit rate | segment hit rate | n |",
             "|---|---|---|---|---|---|---|---|"]
    for block in metrics["by_length"].values():
        length = f"{block['length_s']:g} s"
        for cell in block["cells"].values():
            lines.append(f"| {length} | {_snr_text(cell['snr_db'])} | {cell['reverb']} | {cell['rt60_s_mean']:.2f} "
                         f"| {'yes' if cell['clipping'] else 'no'} | {_rate(cell, 'hit')} "
                         f"| {_rate(cell, 'segment')} | {cell['n']} |")
        overall = block["all"]
        lines.append(f"| **{length}** | all | all | | all | **{_rate(overall, 'hit')}** "
                     f"| **{_rate(overall, 'segment')}** | {0 if overall is None else overall['n']} |")
    lines += ["", "## Open set (out-of-catalog queries)", ""]
    open_set = metrics["open_set"]
    points = [("the method's own decision (thresholds per length chosen on val)", open_set.get("at_decision")),
              (f"{100 * open_set['target_far']:g}% false accepts (threshold chosen on this set)",
               open_set["at_target_far"]),
              ("fixed score threshold", open_set["at_score_threshold"])]
    if all(point is None for _, point in points):
        lines.append("No out-of-catalog queries and no fixed threshold: no operating point.")
    for title, point in points:
        if point is None:
            continue
        far = point.get("far")
        far_text = "–" if far is None else f"{far:.3f} [{point['far_ci'][0]:.3f}, {point['far_ci'][1]:.3f}]"
        threshold = "" if point.get("threshold") is None else f"score threshold {point['threshold']:.6g}, "
        lines += [f"**At {title}**: {threshold}false-accept rate {far_text} "
                  f"(n = {point['n_out']}), hit rate {_rate(point['all'], 'hit')}.", "",
                  "| length | accepted and right | segment | false accepts |", "|---|---|---|---|"]
        lines += [f"| {lk[3:]} s | {_rate(r, 'hit') if 'n' in r else '–'} | "
                  f"{_rate(r, 'segment') if 'n' in r else '–'} | {_far_text(r)} |"
                  for lk, r in point["by_length"].items()]
        lines.append("")
    index = metrics["index"]
    lines += ["## Latency and index size", "", "| length | p50 (ms) | p95 (ms) | queries |", "|---|---|---|---|"]
    lines += [f"| {b['length_s']:g} s | {b['latency_ms']['p50']:.1f} | {b['latency_ms']['p95']:.1f} "
              f"| {b['latency_ms']['n']} |" for b in metrics["by_length"].values() if b["latency_ms"]]
    lines += ["", f"Index: {index['bytes']:,} bytes for {index['reference_s'] / 3600:.3f} h of reference audio "
              f"= {index['bytes_per_hour'] / 1e6:.3f} MB per hour.", ""]
    return "\n".join(lines)


def _new_figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def compare_plot(metrics_by_method: Mapping[str, dict[str, Any]], path: str | Path) -> Path:
    """Hit rate vs SNR, one line per (method, query length), Wilson intervals as error bars; written as PNG.

    metrics_by_method: {label: metrics from `compute_metrics`}. "No crowd" is drawn right of the highest SNR.
    """
    if not metrics_by_method:
        raise ValueError("compare_plot: no metrics given")
    snrs = sorted({rates["snr_db"] for m in metrics_by_method.values() for block in m["by_length"].values()
                   for rates in block["by_snr"].values() if rates["snr_db"] is not None})
    step = (snrs[-1] - snrs[0]) / (len(snrs) - 1) if len(snrs) > 1 else 5.0
    x_none = (snrs[-1] + step) if snrs else 0.0
    fig = _new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    markers, styles = "osD^vP*X", ["-", "--", ":", "-."]
    for i, (label, metrics) in enumerate(metrics_by_method.items()):
        for j, block in enumerate(metrics["by_length"].values()):
            pts = sorted((x_none if r["snr_db"] is None else r["snr_db"], r["hit_rate"], *r["hit_ci"])
                         for r in block["by_snr"].values())
            if not pts:
                continue
            x, y, lo, hi = (np.array(v) for v in zip(*pts))
            ax.errorbar(x, y, yerr=[y - lo, hi - y], color=f"C{i % 10}", marker=markers[j % len(markers)],
                        linestyle=styles[j % len(styles)], capsize=3, label=f"{label}, {block['length_s']:g} s")
    ticks = [*snrs, *([x_none] if any(r["snr_db"] is None for m in metrics_by_method.values()
                                      for b in m["by_length"].values() for r in b["by_snr"].values()) else [])]
    ax.set_xticks(ticks, [f"{v:g}" for v in snrs] + ["none"] * (len(ticks) - len(snrs)))
    ax.set(xlabel="SNR (dB; none = no crowd)", ylabel="top-1 hit rate", ylim=(-0.02, 1.02),
           title="Hit rate vs SNR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save_png(fig, path)


def heatmap_plot(metrics: dict[str, Any], path: str | Path) -> Path:
    """Hit rate on an SNR (rows) x reverb (columns, ordered by mean RT60) grid, one panel per query length."""
    blocks = list(metrics["by_length"].values())
    entries = [e for b in blocks for e in b["by_snr_reverb"].values()]
    rt60: dict[str, list[float]] = {}
    for e in entries:
        rt60.setdefault(e["reverb"], []).append(e["rt60_s_mean"])
    reverbs = sorted(rt60, key=lambda r: float(np.mean(rt60[r])))
    snr_values = sorted({e["snr_db"] for e in entries}, key=lambda v: math.inf if v is None else v)
    fig = _new_figure(max(4.0, 1.6 + 1.3 * len(reverbs)) * max(1, len(blocks)) * 0.8, 1.5 + 0.5 * len(snr_values))
    axes = fig.subplots(1, max(1, len(blocks)), squeeze=False)[0]
    image = None
    for ax, block in zip(axes, blocks):
        grid = np.full((len(snr_values), len(reverbs)), np.nan)
        counts = np.zeros(grid.shape, int)
        for e in block["by_snr_reverb"].values():
            r, c = snr_values.index(e["snr_db"]), reverbs.index(e["reverb"])
            grid[r, c], counts[r, c] = e["hit_rate"], e["n"]
        ax.set_facecolor("0.85")  # grey: no queries in that cell
        image = ax.imshow(np.ma.masked_invalid(grid), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for (r, c), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(c, r, f"{value:.2f}\nn={counts[r, c]}", ha="center", va="center", fontsize="x-small",
                        color="black" if value > 0.6 else "white")
        ax.set_xticks(range(len(reverbs)), [f"{rv}\n{np.mean(rt60[rv]):.1f} s" for rv in reverbs])
        ax.set_yticks(range(len(snr_values)), [_snr_text(v) for v in snr_values])
        ax.set(title=f"{block['length_s']:g} s queries", xlabel="reverb (mean RT60)", ylabel="SNR")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="top-1 hit rate")
    fig.suptitle(f"{metrics['method']}: hit rate by SNR and reverberation")
    return _save_png(fig, path)


def log_to_mlflow(metrics: dict[str, Any], out_dir: str | Path) -> bool:
    """Log flat metrics (`flatten_metrics`) and the report files in `out_dir` to the active MLflow run.

    Does nothing and returns False when no run is active; artifacts go under `evaluate/<method>/`.
    """
    import mlflow

    if mlflow.active_run() is None:
        return False
    flat = flatten_metrics(metrics)
    names = sorted(flat)
    for start in range(0, len(names), MLFLOW_BATCH):
        mlflow.log_metrics({name: flat[name] for name in names[start:start + MLFLOW_BATCH]})
    for name in (METRICS_NAME, REPORT_NAME, SNR_PLOT_NAME, HEATMAP_NAME):
        path = Path(out_dir) / name
        if path.is_file():
            mlflow.log_artifact(str(path), artifact_path=f"evaluate/{metrics['method']}")
    return True

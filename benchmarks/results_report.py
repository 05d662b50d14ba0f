"""The results report: classical fingerprinting (landmark, Chromaprint) and the learned embedding on concert
queries, side by side.

Run: .venv/bin/python benchmarks/phase0_report.py [--evaluate data/evaluate] [--model data/model]
[--out benchmarks/RESULTS.md] (the DVC stage `report` runs it after `resonance evaluate` for every method).
Reads each method's metrics.json and the training summary (data/model/train.json), writes the markdown tables to
--out and the hit-rate-vs-SNR comparison PNG beside it. Never edit the output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from resonance.evaluate.report import compare_plot
from resonance.evaluate.stats import wilson_interval
from resonance.io import atomic_open


def pct(rate: float | None, ci: list[float] | None = None) -> str:
    """'57.3% [52.1, 62.4]' (rate and its confidence interval, in percent)."""
    if rate is None:
        return "-"
    return f"{100 * rate:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def pooled(metrics: dict[str, Any], length: str, keep) -> tuple[float | None, list[float] | None, int]:
    """Hit rate (with Wilson CI) pooled over the grid cells of one length that `keep(cell)` selects."""
    cells = [c for c in metrics["by_length"][length]["cells"].values() if keep(c)]
    n, hits = sum(c["n"] for c in cells), sum(c["hits"] for c in cells)
    conf = metrics["settings"]["confidence"]
    return (hits / n, list(wilson_interval(hits, n, conf)), n) if n else (None, None, 0)


def length_table(runs: dict[str, dict]) -> list[str]:
    lengths = list(next(iter(runs.values()))["by_length"])
    lines = ["| method | " + " | ".join(f"{k[3:]} s" for k in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for name, m in runs.items():
        lines.append(f"| {name} top-1 | " + " | ".join(pct(m["by_length"][k]["all"]["hit_rate"],
                                                          m["by_length"][k]["all"]["hit_ci"]) for k in lengths) + " |")
        lines.append(f"| {name} segment | " + " | ".join(pct(m["by_length"][k]["all"]["segment_hit_rate"])
                                                          for k in lengths) + " |")
    return lines


def snr_table(runs: dict[str, dict], lengths: tuple[str, ...] = ("len3", "len5")) -> list[str]:
    first = next(iter(runs.values()))
    snrs = sorted({c["snr_db"] for c in first["by_length"][lengths[0]]["cells"].values()}, reverse=True)
    lines = ["| method | length | " + " | ".join(f"{s:+g} dB" for s in snrs) + " | 0 dB with reverb |",
             "|---|---|" + "---|" * (len(snrs) + 1)]
    for name, m in runs.items():
        for k in lengths:
            if k not in m["by_length"]:
                continue
            row = [pct(*pooled(m, k, lambda c, s=s: c["snr_db"] == s)[:2]) for s in snrs]
            reverb = pooled(m, k, lambda c: c["snr_db"] == 0 and c["reverb"] != "dry")
            lines.append(f"| {name} | {k[3:]} s | " + " | ".join(row) + f" | {pct(*reverb[:2])} (n={reverb[2]}) |")
    return lines


def open_set_table(runs: dict[str, dict]) -> list[str]:
    lines = ["| method | threshold | false accepts (n out) | hit rate at threshold | 3 s | 5 s | 10 s |",
             "|---|---|---|---|---|---|---|"]
    for name, m in runs.items():
        op = m["open_set"]["at_target_far"]
        if not op:
            lines.append(f"| {name} | - | no out-of-catalog queries | - | - | - | - |")
            continue
        by = op["by_length"]
        lines.append(f"| {name} | {op['threshold']:.3g} | {pct(op.get('far'), op.get('far_ci'))} ({op['n_out']}) | "
                     f"{pct(op['all']['hit_rate'])} | " + " | ".join(pct((by.get(k) or {}).get("hit_rate"))
                                                                   for k in ("len3", "len5", "len10")) + " |")
    return lines


def cost_table(runs: dict[str, dict]) -> list[str]:
    lines = ["| method | latency p50 (all) | p95 (all) | p50 / p95 of 5 s queries | index size per hour of audio "
             "| indexing speed |", "|---|---|---|---|---|---|"]
    for name, m in runs.items():
        lat, idx = m["latency_ms"], m["index"]
        l5 = (m["by_length"].get("len5") or {}).get("latency_ms") or {}
        speed = f"{idx['build_x_realtime']:,.0f}x real time" if idx.get("build_x_realtime") else "-"
        lines.append(f"| {name} | {lat['p50']:.1f} ms | {lat['p95']:.1f} ms | {l5.get('p50', float('nan')):.1f} / "
                     f"{l5.get('p95', float('nan')):.1f} ms | {idx['bytes_per_hour'] / 1e6:.2f} MB | {speed} |")
    return lines


def query_set_header(metrics: dict[str, Any]) -> dict[str, Any]:
    """The query set's queries.json (split, cells), if it is still there."""
    path = Path(metrics["query_set"]) / "queries.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def headline_table(runs: dict[str, dict], baseline: str = "landmark", method: str = "embedding") -> list[str]:
    """The model against the baseline where concerts hurt: 0 dB crowd with reverb (hall or arena), in-catalog
    queries of songs never trained on (the query set's split), 3 s and 5 s."""
    if baseline not in runs or method not in runs:
        return [f"(needs both `{baseline}` and `{method}` evaluated)"]
    lines = ["| query length | " + f"{baseline} | {method} | difference | verdict |", "|---|---|---|---|---|"]
    for k in ("len3", "len5"):
        if k not in runs[baseline]["by_length"] or k not in runs[method]["by_length"]:
            continue
        a = pooled(runs[baseline], k, lambda c: c["snr_db"] == 0 and c["reverb"] != "dry")
        b = pooled(runs[method], k, lambda c: c["snr_db"] == 0 and c["reverb"] != "dry")
        if a[0] is None or b[0] is None:
            continue
        verdict = "better (intervals apart)" if b[1][0] > a[1][1] else ("better" if b[0] > a[0] else "not better")
        lines.append(f"| {k[3:]} s (n={b[2]}) | {pct(*a[:2])} | {pct(*b[:2])} | {100 * (b[0] - a[0]):+.1f} points "
                     f"| {verdict} |")
    return lines if len(lines) > 2 else ["(no 3 s or 5 s queries at 0 dB with reverb in this query set)"]


def training_lines(summary: dict[str, Any] | None) -> list[str]:
    """What the evaluated model is and what training it cost (data/model/train.json)."""
    if not summary:
        return []
    return ["### The model evaluated", "",
            f"`{summary['encoder']}` encoder, {summary['parameters'] / 1e6:.2f} M parameters, `{summary['loss']}` loss, "
            f"profile `{summary['profile']}`: {summary['steps']} steps ({summary['epochs']} epochs) on "
            f"{summary['train_tracks']} `train` tracks, **training wall time {summary['fit_s'] / 60:.1f} min** "
            f"(whole stage incl. export and MLflow logging {summary['wall_s'] / 60:.1f} min) on this 2-core CPU "
            f"machine; validation top-1 {summary['best_val_top1']:.1%} on {summary['val_queries']} val queries "
            f"(untrained: {summary['val_top1_untrained']:.1%}). ONNX export matches torch within "
            f"{summary['onnx_max_abs_diff']:.1e}. Registered as `{summary.get('model_uri')}` "
            f"(version {summary.get('model_version')}).", ""]


def render(runs: dict[str, dict], png_name: str, tuning: str | None = None,
           training: dict[str, Any] | None = None, extras: list[str] | None = None) -> str:
    m = next(iter(runs.values()))
    qs = query_set_header(m)
    out = ["# Results", "",
           "Generated by `.venv/bin/python benchmarks/phase0_report.py` (DVC stage `report`, after "
           "`resonance evaluate` for each method) from `data/evaluate/*/metrics.json`. Do not edit by hand.", "",
           "## Headline: learned embedding vs landmark at 0 dB with reverb (songs never trained on)", "",
           *headline_table(runs), "", *training_lines(training),
           "## All methods on the concert query set", "",
           f"Query set `{m['query_set']}`: {m['n_queries']} queries, {m['n_in_catalog']} of songs in the index "
           f"(the `{qs.get('split', '?')}` split), {m['n_out_of_catalog']} of never-indexed songs; every excerpt "
           f"under each of the {len(qs.get('cells', [])) or '?'} grid cells (SNR x reverb x clipping). "
           "Rates with 95% Wilson intervals.", "", "### Top-1 song hit rate by query length (all conditions)", "", *length_table(runs),
           "", "### By crowd SNR (3 s and 5 s queries)", "", *snr_table(runs), "",
           f"![hit rate vs SNR]({png_name})", "",
           f"### Open set: the threshold at {100 * m['open_set']['target_far']:g}% false accepts", "",
           *open_set_table(runs), "", "### Cost", "", *cost_table(runs), ""]
    for extra in extras or []:  # other generated tables: their title as a heading, then their body
        title = extra.lstrip("# ").split("\n", 1)[0]
        out += [f"### {title}", "", extra.split("do not edit by hand.", 1)[-1].strip(), ""]
    if tuning:
        out += ["### Landmark settings, tuned on the validation queries (`benchmarks/tune_landmark.py`)", "",
                tuning.split("do not edit by hand.", 1)[-1].strip(), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluate", default="data/evaluate", help="folder with one sub-folder per method")
    parser.add_argument("--model", default="data/model", help="the trained model folder (its train.json)")
    parser.add_argument("--out", default="benchmarks/RESULTS.md")
    args = parser.parse_args()
    runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(args.evaluate).glob("*/metrics.json"))}
    if not runs:
        raise SystemExit(f"no */metrics.json under {args.evaluate}: run `resonance evaluate` first")
    out = Path(args.out)
    png = out.with_name("phase0_hit_rate_vs_snr.png")
    compare_plot(runs, png)
    tuning = out.with_name("landmark_tuning.md")
    summary = Path(args.model) / "train.json"
    text = render(runs, png.name, tuning.read_text() if tuning.is_file() else None,
                  json.loads(summary.read_text()) if summary.is_file() else None,
                  [p.read_text() for p in [out.with_name("embedding_tuning.md")] if p.is_file()])
    with atomic_open(out) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()

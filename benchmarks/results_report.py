"""The results report: the learned embedding against the landmark (Wang 2003) and Chromaprint baselines on the
concert test queries, with the targets of the accuracy work checked, paired comparisons and excerpt-level
bootstrap intervals.

Run: .venv/bin/python benchmarks/results_report.py [--evaluate data/evaluate] [--model data/model]
     [--calibration data/calibration] [--out benchmarks/RESULTS.md]   (the DVC stage `report` runs it)
Reads each method's metrics.json (every query's answer), the training summary (train.json) and the calibration
report; writes the markdown to --out and two PNGs beside it (hit rate vs SNR, the learning curve). Paired
comparisons (two methods, or 5 s vs 3 s) use the same queries and resample whole excerpts (evaluate.bootstrap_*
in params.yaml). Never edit the output.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from report_parts import generated, learning_curve, training_lines

from resonance.evaluate.report import compare_plot
from resonance.evaluate.stats import ClusterBootstrap
from resonance.io import atomic_open

REVERB0 = ("0 dB crowd with hall or arena reverb", lambda r: r["snr_db"] == 0 and r["reverb"] != "dry")


def pct(rate: float | None, ci: list[float] | tuple[float, float] | None = None) -> str:
    """'57.3% [52.1, 62.4]' (rate and its interval, in percent)."""
    if rate is None:
        return "-"
    return f"{100 * rate:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci is not None else "")


class Runs:
    """Every method's per-query results, indexed by query id, with one excerpt bootstrap shared by all."""

    def __init__(self, runs: dict[str, dict], samples: int, seed: int, confidence: float) -> None:
        self.metrics = runs
        self.rows = {name: {r["query_id"]: r for r in m["results"]} for name, m in runs.items()}
        first = next(iter(runs.values()))["results"]
        self.boot = ClusterBootstrap([r["excerpt"] for r in first], samples, seed)
        self.confidence = confidence

    def _select(self, method: str, keep) -> list[dict]:
        return [r for r in self.rows[method].values() if r["in_catalog"] and keep(r)]

    def rate(self, method: str, keep, accepted: bool = False) -> tuple[float | None, tuple | None, int]:
        """Top-1 (or, with `accepted`, accepted-and-right) rate of the in-catalog queries `keep` selects."""
        rows = self._select(method, keep)
        if not rows:
            return None, None, 0
        hits = np.array([right(r, accepted) for r in rows], dtype=float)
        return float(hits.mean()), self.boot.interval([r["excerpt"] for r in rows], hits, self.confidence), len(rows)

    def paired(self, a: str, b: str, keep, accepted: bool = False) -> tuple[float, tuple] | None:
        """mean(hit_a - hit_b) (or accepted-and-right) over the queries both methods answered, with its paired
        interval."""
        rows = [r for r in self._select(a, keep) if r["query_id"] in self.rows[b]]
        if not rows:
            return None
        d = np.array([right(r, accepted) - right(self.rows[b][r["query_id"]], accepted) for r in rows], dtype=float)
        return float(d.mean()), self.boot.interval([r["excerpt"] for r in rows], d, self.confidence)

    def prefix_gain(self, method: str, long_s: float, short_s: float) -> tuple[float, tuple] | None:
        """mean(hit at long_s - hit at short_s) over excerpt x cell pairs (the short query is a prefix)."""
        by: dict[tuple, dict[float, dict]] = {}
        for r in self.rows[method].values():
            if r["in_catalog"] and r["length_s"] in (long_s, short_s):
                by.setdefault((r["excerpt"], r["snr_db"], r["reverb"], r["clipping"]), {})[r["length_s"]] = r
        pairs = [v for v in by.values() if len(v) == 2]
        if not pairs:
            return None
        d = np.array([hit(v[long_s]) - hit(v[short_s]) for v in pairs], dtype=float)
        return float(d.mean()), self.boot.interval([v[long_s]["excerpt"] for v in pairs], d, self.confidence)

    def far(self, method: str, length_s: float | None) -> tuple[float | None, tuple | None, int]:
        """Share of out-of-catalog queries (of one length, or all) the method's own decision accepted."""
        rows = [r for r in self.rows[method].values() if not r["in_catalog"] and r.get("accepted") is not None
                and (length_s is None or r["length_s"] == length_s)]
        if not rows:
            return None, None, 0
        acc = np.array([bool(r["accepted"]) and r["predicted_track_id"] is not None for r in rows], dtype=float)
        return float(acc.mean()), self.boot.interval([r["excerpt"] for r in rows], acc, self.confidence), len(rows)


def hit(r: dict) -> bool:
    return bool(r["in_catalog"] and r["predicted_track_id"] is not None and r["predicted_track_id"] == r["track_id"])


def right(r: dict, accepted: bool) -> bool:
    """A hit, and with `accepted` also accepted by the method's own decision."""
    return hit(r) and (not accepted or bool(r.get("accepted")))


def length_is(s: float):
    return lambda r: r["length_s"] == s


def both(*keeps):
    return lambda r: all(k(r) for k in keeps)


def targets_table(runs: Runs, method: str = "embedding", baseline: str = "landmark") -> list[str]:
    """The accuracy targets, each with its measured value and whether it is met."""
    if method not in runs.rows:
        return ["(the embedding is not evaluated yet)"]
    rows: list[tuple[str, str, str, bool | None]] = []

    def at_least(label: str, value: tuple, target: float) -> None:
        rate, ci = value[0], value[1]
        rows.append((label, pct(rate, ci), f">= {100 * target:g}%", None if rate is None else rate >= target))

    r0 = REVERB0[1]
    at_least("5 s, 0 dB + reverb, top-1", runs.rate(method, both(length_is(5.0), r0)), 0.75)
    at_least("3 s, 0 dB + reverb, top-1", runs.rate(method, both(length_is(3.0), r0)), 0.65)
    at_least("5 s, all cells, top-1", runs.rate(method, length_is(5.0)), 0.65)
    gain = runs.prefix_gain(method, 5.0, 3.0)
    if gain:
        rows.append(("5 s minus 3 s (paired: 3 s = first 3 s of the 5 s)", f"{100 * gain[0]:+.1f} points "
                     f"[{100 * gain[1][0]:+.1f}, {100 * gain[1][1]:+.1f}]", ">= +5 points", gain[0] >= 0.05))
    at_least("5 s, -5 dB, top-1", runs.rate(method, both(length_is(5.0), lambda r: r["snr_db"] == -5)), 0.50)
    at_least("10 s, all cells, top-1", runs.rate(method, length_is(10.0)), 0.85)
    for length, target in ((5.0, 0.60), (3.0, 0.45)):
        far = runs.far(method, length)
        acc = runs.rate(method, length_is(length), accepted=True)
        ok = None if far[0] is None or acc[0] is None else (far[0] <= 0.01 and acc[0] >= target)
        rows.append((f"{length:g} s accepted and right at the val thresholds (false accepts on test)",
                     f"{pct(*acc[:2])} at {pct(*far[:2])} false accepts",
                     f">= {100 * target:g}% at <= 1%", ok))
    if baseline in runs.rows:
        worst = None
        for snr in (10.0, 0.0, -5.0, -10.0):
            for reverb in ("dry", "hall", "arena"):
                d = runs.paired(method, baseline, both(length_is(5.0), lambda r, s=snr, v=reverb:
                                                       r["snr_db"] == s and r["reverb"] == v))
                if d is not None and (worst is None or d[1][0] < worst[1][1][0]):
                    worst = (f"{snr:+g} dB {reverb}", d)
        if worst:
            rows.append(("5 s, ahead of landmark in every SNR x reverb cell (worst cell, paired)",
                         f"{worst[0]}: {100 * worst[1][0]:+.1f} points [{100 * worst[1][1][0]:+.1f}, "
                         f"{100 * worst[1][1][1]:+.1f}]", "lower bound > 0 in every cell", worst[1][1][0] > 0))
    scale = runs.metrics[method].get("catalog_scaling")
    if scale:
        sizes = scale["sizes"]
        drop = sizes[0]["hit_rate"] - sizes[-1]["hit_rate"]
        rows.append((f"5 s, 0 dB + reverb: {sizes[-1]['tracks']}-track index vs {sizes[0]['tracks']}-track",
                     f"{pct(sizes[-1]['hit_rate'])} vs {pct(sizes[0]['hit_rate'])} ({100 * drop:.1f} points lower)",
                     "within 10 points", drop <= 0.10))
    verdict = {True: "met", False: "**not met**", None: "-"}
    return ["| target | measured on the test set | needed | |", "|---|---|---|---|",
            *[f"| {a} | {b} | {c} | {verdict[d]} |" for a, b, c, d in rows]]


def length_table(runs: Runs) -> list[str]:
    lengths = sorted({r["length_s"] for r in next(iter(runs.rows.values())).values()})
    lines = ["| method | " + " | ".join(f"{s:g} s" for s in lengths) + " |", "|---|" + "---|" * len(lengths)]
    for name in runs.rows:
        lines.append(f"| {name} | " + " | ".join(pct(*runs.rate(name, length_is(s))[:2]) for s in lengths) + " |")
    return lines


def cell_table(runs: Runs, method: str = "embedding", baseline: str = "landmark", length_s: float = 5.0) -> list[str]:
    """Per SNR x reverb cell: both methods' top-1 and the paired difference."""
    if method not in runs.rows or baseline not in runs.rows:
        return [f"(needs both `{baseline}` and `{method}` evaluated)"]
    lines = [f"| SNR | reverb | {baseline} | {method} | difference (paired) |", "|---|---|---|---|---|"]
    for snr in (10.0, 0.0, -5.0, -10.0):
        for reverb in ("dry", "hall", "arena"):
            keep = both(length_is(length_s), lambda r, s=snr, v=reverb: r["snr_db"] == s and r["reverb"] == v)
            a, b, d = runs.rate(baseline, keep), runs.rate(method, keep), runs.paired(method, baseline, keep)
            if a[0] is None or d is None:
                continue
            lines.append(f"| {snr:+g} dB | {reverb} | {pct(*a[:2])} | {pct(*b[:2])} | {100 * d[0]:+.1f} "
                         f"[{100 * d[1][0]:+.1f}, {100 * d[1][1]:+.1f}] |")
    return lines


def open_set_table(runs: Runs) -> list[str]:
    lines = ["| method | operating point | false accepts | 3 s accepted and right | 5 s | 10 s |",
             "|---|---|---|---|---|---|"]
    for name, m in runs.metrics.items():
        for title, point in (("own decision: thresholds per length chosen on val", m["open_set"].get("at_decision")),
                             ("one threshold chosen on the test set (optimistic)", m["open_set"]["at_target_far"])):
            if not point:
                continue
            by = point["by_length"]
            lines.append(f"| {name} | {title} | {pct(point.get('far'), point.get('far_ci'))} | "
                         + " | ".join(pct((by.get(k) or {}).get("hit_rate"), (by.get(k) or {}).get("hit_ci"))
                                      for k in ("len3", "len5", "len10")) + " |")
    return lines


def scaling_table(metrics: dict[str, Any]) -> list[str]:
    scale = metrics.get("catalog_scaling")
    if not scale:
        return ["(not measured)"]
    lines = [f"{scale['queried_tracks']} test songs queried ({scale['sizes'][0]['n']} queries of "
             f"{scale['length_s']:g} s at 0 dB with reverb), the same queries against each index:", "",
             "| tracks in the index | top-1 |", "|---|---|"]
    lines += [f"| {row['tracks']} | {pct(row['hit_rate'], row['hit_ci'])} |" for row in scale["sizes"]]
    return lines


def cost_table(runs: Runs, torch_threads: int | None = None) -> list[str]:
    lines = ["| method | 5 s query p50 | 5 s query p95 | index size per hour of audio | indexing speed |",
             "|---|---|---|---|---|"]
    for name, m in runs.metrics.items():
        l5 = (m["by_length"].get("len5") or {}).get("latency_ms") or {}
        idx = m["index"]
        speed = f"{idx['build_x_realtime']:,.0f}x real time" if idx.get("build_x_realtime") else "(`index` stage)"
        lines.append(f"| {name} | {l5.get('p50', float('nan')):.1f} ms | {l5.get('p95', float('nan')):.1f} ms "
                     f"(n={l5.get('n', 0)}) | {idx['bytes_per_hour'] / 1e6:.2f} MB | {speed} |")
    return lines + ["", "Query times here are `identify` calls timed one at a time in the middle of the evaluation; "
                    f"the embedding's with torch at {torch_threads or 'the default'} thread(s) "
                    "(`serve.torch_threads`, as the service runs each request). The service's end-to-end figures "
                    "(decode + embed + search + decision, under 1, 8 and 32 clients) are in "
                    "[serve_load.md](serve_load.md)."]


def budget_note(targets: list[str], here: Path) -> list[str]:
    """A pointer from unmet targets (the lines of `targets_table`) to what more training compute gives (the
    `long` profile on these test queries, and its ablation row on val), when those reports exist."""
    if not any("**not met**" in line for line in targets):
        return []
    ablation = here / "ablation.md"
    on_test, on_val = (here / "long_on_test.md").is_file(), ablation.is_file() and "| long |" in ablation.read_text()
    if not (on_test or on_val):
        return []
    where = "; ".join(s for s, ok in (("on these test queries, the section *The `long` profile on the test "
                                        "targets* below", on_test),
                                       ("on val, with the learning curves of both runs, the `long` row of the "
                                        "ablation", on_val)) if ok)
    return ["Targets not met are measured with the default profile (its 30-minute training budget). What 4x the "
            f"steps gives: {where}.", ""]


def render(runs: Runs, png: str, summary: dict[str, Any] | None, curve: str | None, here: Path,
           torch_threads: int | None = None) -> str:
    m = next(iter(runs.metrics.values()))
    targets = targets_table(runs)
    qs_path = Path(m["query_set"]) / "queries.json"
    qs = json.loads(qs_path.read_text()) if qs_path.is_file() else {}
    out = ["# Results", "",
           "Generated by `.venv/bin/python benchmarks/results_report.py` (DVC stage `report`) from "
           "`data/evaluate/*/metrics.json`. Do not edit by hand.", "",
           f"Test set `{m['query_set']}`: {qs.get('excerpts', '?')} excerpts of songs in the index (the "
           f"`{qs.get('split', '?')}` split: never trained on, never tuned on) and {qs.get('outside_excerpts', '?')} "
           f"of never-indexed songs, each rendered once under every one of the {len(qs.get('cells', []))} grid cells "
           f"(SNR x reverb x clipping); the 1, 2, 3 and 5 s queries are the first seconds of each 10 s clip. "
           f"{m['n_queries']:,} queries. Brackets: 95% intervals from a bootstrap over excerpts (queries cut from one "
           f"excerpt are not independent); differences are paired (same queries).", "",
           "## Targets", "", *targets, "", *budget_note(targets, here),
           "## The model", "", *training_lines(summary, curve),
           "## Top-1 by query length (all cells)", "", *length_table(runs), "", f"![hit rate vs SNR]({png})", "",
           "## 5 s queries per SNR and reverb: embedding vs landmark", "", *cell_table(runs), "",
           "## Open set (false accepts of never-indexed songs)", "", *open_set_table(runs), "",
           "## Catalog size", "", *scaling_table(runs.metrics.get("embedding", {})), "",
           "## Cost", "", *cost_table(runs, torch_threads), ""]
    for name in ("long_on_test.md", "ablation.md", "decision_tuning.md", "landmark_tuning.md"):
        out += generated(here / name)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--evaluate", default="data/evaluate", help="folder with one sub-folder per method")
    parser.add_argument("--model", default="data/model", help="the trained model folder (its train.json)")
    parser.add_argument("--out", default="benchmarks/RESULTS.md")
    args = parser.parse_args()
    metrics = {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(args.evaluate).glob("*/metrics.json"))}
    if not metrics:
        raise SystemExit(f"no */metrics.json under {args.evaluate}: run `resonance evaluate` first")
    ev = yaml.safe_load(Path(args.params).read_text())["evaluate"]
    runs = Runs(metrics, ev["bootstrap_samples"], ev["bootstrap_seed"], ev["confidence"])
    out = Path(args.out)
    png = out.with_name("hit_rate_vs_snr.png")
    compare_plot({k: v for k, v in metrics.items()}, png)
    summary_path = Path(args.model) / "train.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    curve = learning_curve(summary, out.with_name("learning_curve.png"))
    serve = yaml.safe_load(Path(args.params).read_text()).get("serve") or {}
    text = render(runs, png.name, summary, curve, out.parent, serve.get("torch_threads"))
    with atomic_open(out) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()

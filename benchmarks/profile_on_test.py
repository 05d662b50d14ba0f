"""What another training profile reaches on the test targets, beside the deployed model, on the same test queries.

Run: .venv/bin/python benchmarks/profile_on_test.py [--name long] [--out benchmarks/long_on_test.md]

The model of an ablation row (data/ablation/<name>/model, made by `benchmarks/ablation.py --only <name>`; the
`long` profile is the one this is for) goes the deployed model's way, through the CLI with a params file that
points `embedding.model/index/calibration` into data/ablation/<name>/test/: `resonance index build` (the whole
catalog), `resonance calibrate` (thresholds per query length fitted on the val queries, never the test set) and
`resonance evaluate --method embedding` (the test queries, torch at `serve.torch_threads` like the
`evaluate_embedding` stage, logged to the MLflow experiment `profile-on-test`, not
`evaluate`). Each step is skipped when its output is already there (--fresh redoes them). About 30 min of CPU.

The table holds each issue target with the deployed model's figure (data/evaluate/embedding/metrics.json, the
`evaluate_embedding` stage) and this profile's, and the difference with a 95% interval from an excerpt-level
bootstrap of the paired queries (both models answered the very same clips).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REVERB0 = lambda r: r["snr_db"] == 0 and r["reverb"] != "dry"  # noqa: E731
# (label, target text, target value, which in-catalog queries) for the top-1 targets
TOP1: list[tuple[str, str, float, Callable[[dict], bool]]] = [
    ("5 s, 0 dB + reverb", ">= 75%", 0.75, lambda r: r["length_s"] == 5 and REVERB0(r)),
    ("3 s, 0 dB + reverb", ">= 65%", 0.65, lambda r: r["length_s"] == 3 and REVERB0(r)),
    ("5 s, all cells", ">= 65%", 0.65, lambda r: r["length_s"] == 5),
    ("5 s, -5 dB", ">= 50%", 0.50, lambda r: r["length_s"] == 5 and r["snr_db"] == -5),
    ("10 s, all cells", ">= 85%", 0.85, lambda r: r["length_s"] == 10),
]
# (label, target text, target value or None, query length) for accepted and right at the val thresholds
OPEN: list[tuple[str, str, float | None, float]] = [("5 s", ">= 60%", 0.60, 5.0), ("3 s", ">= 45%", 0.45, 3.0),
                                                    ("10 s", "-", None, 10.0)]


def cli(params: Path, *args: str) -> None:
    """`resonance --params PARAMS ARGS...` in a child process (raises if it fails)."""
    subprocess.run([sys.executable, "-m", "resonance", "--params", str(params), *args], cwd=ROOT, check=True)


def run_profile(name: str, params_file: Path, work: Path, catalog: Path, val: Path, test: Path,
                fresh: bool) -> Path:
    """Index, calibrate and evaluate the row's model like the deployed one; returns its metrics.json path."""
    model = work / name / "model"
    if not (model / "model.pt").is_file():
        raise SystemExit(f"no model at {model}: train it first (python benchmarks/ablation.py --only {name})")
    out = work / name / "test"
    out.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(params_file.read_text())
    params["embedding"].update(model=str(model), index=str(out / "index"), calibration=str(out / "calibration"))
    params["evaluate"].update(mlflow_experiment="profile-on-test", query_set=test.name)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = out / "params.yaml"
    if fresh or not (out / "index").is_dir():
        cli(p, "index", "build", "--model", str(model), "--catalog", str(catalog), "--out", str(out / "index"))
    if fresh or not (out / "calibration").is_dir():
        cli(p, "calibrate", "--model", str(model), "--index", str(out / "index"), "--catalog", str(catalog),
            "--queries", str(val), "--out", str(out / "calibration"))
    if fresh or not (out / "evaluate" / "metrics.json").is_file():
        cli(p, "evaluate", "--method", "embedding", "--catalog", str(catalog), "--queries", str(test),
            "--out", str(out / "evaluate"), "--torch-threads", str(params["serve"]["torch_threads"]))
    return out / "evaluate" / "metrics.json"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def diff(d: tuple[float, tuple[float, float]]) -> str:
    """'+7.4 [+5.8, +9.2]': a paired difference and its interval, in points."""
    return f"{100 * d[0]:+.1f} [{100 * d[1][0]:+.1f}, {100 * d[1][1]:+.1f}]"


def minutes(model_dir: Path) -> str:
    """"N steps, M min" of a model's training (its train.json), "?" if it has none."""
    path = model_dir / "train.json"
    t = json.loads(path.read_text()) if path.is_file() else {}
    return f"{t.get('steps', '?')} steps, {t['fit_s'] / 60:.1f} min" if t.get("fit_s") else "?"


def table(name: str, runs, base_model: Path, other_model: Path) -> list[str]:
    """The markdown rows: every target, the deployed model ("deployed" in `runs`), this profile (`name`), and the
    paired difference. runs: results_report.Runs over both evaluations."""
    a, b = "deployed", name
    met = lambda x, ok: "met" if ok else "not met"  # noqa: E731
    lines = [f"| target | | deployed (default profile: {minutes(base_model)}) | `{name}` ({minutes(other_model)}) "
             f"| {name} - deployed [95% CI] |", "|---|---|---|---|---|"]
    for label, text, goal, keep in TOP1:
        x, y = runs.rate(a, keep)[0], runs.rate(b, keep)[0]
        if x is None:
            lines.append(f"| top-1 {label} | {text} | no such queries | | |")
            continue
        lines.append(f"| top-1 {label} | {text} | {pct(x)} ({met(x, x >= goal)}) | {pct(y)} ({met(y, y >= goal)}) | "
                     f"{diff(runs.paired(b, a, keep))} |")
    g0, g1 = (runs.prefix_gain(m, 5.0, 3.0)[0] for m in (a, b))
    lines.append(f"| top-1 5 s minus 3 s (paired excerpts) | >= +5 | {100 * g0:+.1f} ({met(g0, g0 >= 0.05)}) | "
                 f"{100 * g1:+.1f} ({met(g1, g1 >= 0.05)}) | {100 * (g1 - g0):+.1f} |")
    for label, text, goal, length in OPEN:
        keep = lambda r, s=length: r["length_s"] == s  # noqa: E731
        (x, y), (fx, fy) = ((runs.rate(m, keep, accepted=True)[0] for m in (a, b)),
                            (runs.far(m, length)[0] for m in (a, b)))
        if x is None or fx is None:
            continue
        judge = (lambda v, f: "") if goal is None else (lambda v, f: f" ({met(v, v >= goal and f <= 0.01)})")
        lines.append(f"| accepted and right, {label} (val thresholds) | {text} at <= 1% FA | {pct(x)} at {pct(fx)} FA"
                     f"{judge(x, fx)} | {pct(y)} at {pct(fy)} FA{judge(y, fy)} | "
                     f"{diff(runs.paired(b, a, keep, accepted=True))} |")
    sizes = [{r["tracks"]: r for r in runs.metrics[m]["catalog_scaling"]["sizes"]} for m in (a, b)]
    small, full = min(sizes[0]), max(sizes[0])
    gaps = [s[small]["hit_rate"] - s[full]["hit_rate"] for s in sizes]
    cells = [f"{pct(s[full]['hit_rate'])} vs {pct(s[small]['hit_rate'])}: {100 * g:.1f} points "
             f"({met(g, g <= 0.10)})" for s, g in zip(sizes, gaps)]
    lines.append(f"| 5 s, 0 dB + reverb: {full} tracks vs {small} | within 10 points | {cells[0]} | {cells[1]} | "
                 f"{100 * (gaps[0] - gaps[1]):+.1f} points narrower |")
    return lines


def verdicts(name: str, rows: list[str]) -> list[str]:
    """A sentence from the table: which targets each model meets, and what the profile adds or still misses."""
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]
    judged = [c for c in cells if len(c) == 5 and "met)" in c[2]]
    base = {c[0] for c in judged if "(met)" in c[2]}
    other = {c[0] for c in judged if "(met)" in c[3]}
    gained, missed = [c[0] for c in judged if c[0] in other - base], [c[0] for c in judged if c[0] not in other]
    return [f"The deployed model meets {len(base)} of these {len(judged)} targets, `{name}` meets {len(other)}"
            + (f"; it adds: {'; '.join(gained)}" if gained else "")
            + (f". Still short with `{name}`: {'; '.join(missed)}." if missed else ". It meets every one."), ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="long", help="the ablation row whose model is scored (default: long)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--work", default="data/ablation")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--val", default="data/queries/val")
    parser.add_argument("--test", default="data/queries/test")
    parser.add_argument("--deployed", default="data/evaluate/embedding/metrics.json",
                        help="the deployed model's test evaluation (dvc stage evaluate_embedding)")
    parser.add_argument("--fresh", action="store_true", help="redo index, calibration and evaluation")
    parser.add_argument("--out", default=None, help="markdown report (default: benchmarks/<name>_on_test.md)")
    args = parser.parse_args()
    os.chdir(ROOT)
    from results_report import Runs

    from resonance.config import EvaluateParams, load_section
    from resonance.io import atomic_open

    metrics_path = run_profile(args.name, Path(args.params), Path(args.work), Path(args.catalog), Path(args.val),
                               Path(args.test), args.fresh)
    base, other = (json.loads(Path(p).read_text()) for p in (args.deployed, metrics_path))
    ev = load_section(Path(args.params), "evaluate", EvaluateParams)
    runs = Runs({"deployed": base, args.name: other}, ev.bootstrap_samples, ev.bootstrap_seed, ev.confidence)
    base_model = Path(yaml.safe_load(Path(args.params).read_text())["embedding"]["model"])
    rows = table(args.name, runs, base_model, Path(args.work) / args.name / "model")
    lines = [f"# The `{args.name}` profile on the test targets, beside the deployed model", "",
             f"Generated by `.venv/bin/python benchmarks/profile_on_test.py --name {args.name}`; do not edit by "
             f"hand. Both models: the whole catalog indexed, thresholds per query length fitted on the val queries, "
             f"the same {len(base['results'])} test queries ({base['n_excerpts']} excerpts). Intervals: "
             f"{ev.confidence:.0%}, an excerpt-level bootstrap of the paired differences.", "", *rows, ""]
    lines += verdicts(args.name, rows)
    out = Path(args.out or f"benchmarks/{args.name}_on_test.md")
    with atomic_open(out) as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

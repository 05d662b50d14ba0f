"""What bought what: one row per change, each taken back at a time, scored on the val queries (never the test set).

Run: .venv/bin/python benchmarks/ablation.py [--epochs N] [--train-only] [--only NAME ...] [--decisions]
     [--out benchmarks/ablation.md]

Training changes: each variant is `resonance train` (the default profile, the same seed) with a few params
overridden, into data/ablation/<name>/ (data/ablation/e<N>/<name>/ with --epochs N: every row, the default too,
trained for N epochs of the same steps per epoch, a cosine schedule over that shorter span); skipped when its model
is already there. Without --train-only the whole catalog is indexed with it and the val clips are embedded once
(benchmarks/tune_decision.py), and the default decision gives top-1 per length, at 0 dB with reverb, and accepted
and right at 1% false accepts (threshold per length chosen on these same val queries). With --train-only a row
shows the training's own validation (val songs among 50k distractor windows): window recall@10, top-1 of 3 s
queries, and the gap between the true window's similarity and the 10th impostor's.

Decision changes (--decisions): the default model's val clips and neighbours from benchmarks/tune_decision.py's
cache (data/tune/<model>), the shipped decision with one part taken back at a time.

Rows are kept as JSON beside each model (scores.json) and in data/ablation/decisions.json; the markdown is
rebuilt from every row on record each run. Hours of CPU: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# name -> (what the row takes back, overrides of the `train` section)
VARIANTS: dict[str, tuple[str, dict | str]] = {
    "default": ("nothing: every change below in", {}),
    "narrow_frontend": ("the fine front end (back to 64 mel bands of 60-8000 Hz, 64 ms frames every 16 ms)",
                        {"frontend": {"n_fft": 1024, "hop": 256, "n_mels": 64, "fmin_hz": 60.0, "fmax_hz": 8000.0},
                         "augment": {"freq_width": 8, "time_width": 8}}),
    "presets": ("independent conditions (views from the 5 presets, each tying a room to an SNR range)",
                {"data": {"views": "presets"}}),
    "mixed_anchors": ("clean anchors (the anchor is a second concert view 30% of the time)",
                      {"data": {"clean_anchor_prob": 0.7}}),
    "no_specaugment": ("spectrogram masking", {"augment": {"freq_masks": 0, "time_masks": 0}}),
    "absolute_floor": ("the log floor relative to the window's peak (an absolute -100 dB floor instead)",
                       {"frontend": {"floor_db": None, "log_eps": 1.0e-10}}),
    "short_preroll": ("the queries' 2 s preroll and 0.25 s jitter (0.25 s preroll, 0.2 s jitter)",
                      {"data": {"preroll_s": 0.25, "offset_jitter_s": 0.2}}),
    "long": ("(more compute, not a take-back) the `long` profile: 4x the steps", "profile:long"),
    "before": ("all of them: the previous default (narrow front end, absolute floor, presets, 70% clean anchors, "
               "no masking, 0.25 s preroll)",
               {"frontend": {"n_fft": 1024, "hop": 256, "n_mels": 64, "fmin_hz": 60.0, "fmax_hz": 8000.0,
                             "floor_db": None, "log_eps": 1.0e-10},
                "data": {"views": "presets", "clean_anchor_prob": 0.7, "preroll_s": 0.25, "offset_jitter_s": 0.2},
                "augment": {"freq_masks": 0, "time_masks": 0}}),
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def train_variant(name: str, over: dict | str, params_file: Path, folder: Path, epochs: int | None = None) -> dict:
    """`resonance train` with the overrides (its own MLflow experiment and registered name), for `epochs` epochs
    when given; returns train.json."""
    if (folder / "model" / "train.json").is_file():
        return json.loads((folder / "model" / "train.json").read_text())
    params = yaml.safe_load(params_file.read_text())
    if isinstance(over, str):  # "profile:NAME": that profile's overrides
        over = params["train"]["profiles"][over.split(":", 1)[1]]
    params["train"] = merge(params["train"], over)
    if epochs is not None:
        params["train"]["max_epochs"] = epochs
    params["train"].update(mlflow_experiment="ablation", registered_model="resonance-ablation")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run([sys.executable, "-m", "resonance", "-q", "--params", str(folder / "params.yaml"), "train",
                    "--out", str(folder / "model")], check=True, cwd=ROOT, env=os.environ)
    return json.loads((folder / "model" / "train.json").read_text())


# label -> (what it takes back, EmbeddingParams overrides, index: masked | unmasked, background cohort?); candidates
# proposed by an exact scan (HNSW proposals change top-1 by 0.1 point or less: benchmarks/decision_tuning.md)
DECISIONS: dict[str, tuple[str, dict, str, bool]] = {
    "shipped": ("nothing: sequence search, cohort background, the `embedding.score` open-set score, silence masked",
                {}, "masked", True),
    "vote": ("sequence search (top-k votes decide instead)", {"decision": "vote"}, "masked", True),
    "score": ("the blended open-set score (the best candidate's score alone)", {"score": "score"}, "masked", True),
    "margin": ("the blended open-set score (the margin to the best other track alone)", {"score": "margin"},
               "masked", True),
    "raw_cosine": ("the background cohort (raw cosine similarities)", {}, "masked", False),
    "unmasked": ("silence masking in the index (silent reference windows indexed; a query's silent windows stay out)",
                 {}, "unmasked", True),
}


def _val_setup(model_dir: Path | None, params_file: Path, catalog: Path, queries_dir: Path, cache: Path | None):
    """What every val scoring needs, once: (embedder, embedding params, target FA, the model's unmasked catalog index
    and usable flags, val queries, their clips' embeddings, the background cohort, the cache folder used: `cache`,
    or data/tune/<model> as benchmarks/tune_decision.py keeps it)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tune_decision import build_unmasked, embed_clips, model_cohort

    from resonance.config import EmbeddingParams, EvaluateParams, load_section
    from resonance.evaluate.queries import load_queries
    from resonance.index.method import EmbeddingMethod
    from resonance.model.embedder import Embedder, load_model

    base = load_section(params_file, "embedding", EmbeddingParams)
    ev = load_section(params_file, "evaluate", EvaluateParams)
    embedder = Embedder(load_model(model_dir or base.model), batch=base.batch)  # None: embedding.model
    method = EmbeddingMethod(embedder, base)
    cache = cache or Path(f"data/tune/{method.model_sha256[:12]}")
    cache.mkdir(parents=True, exist_ok=True)
    full, usable = build_unmasked(method, catalog, cache)
    queries = load_queries(queries_dir)
    clips = embed_clips(method, queries, queries_dir, cache)
    return (embedder, base, ev.target_far, full, usable, queries, clips, model_cohort(method, catalog), cache,
            method.model_sha256)


def score_variant(model_dir: Path, params_file: Path, catalog: Path, queries_dir: Path, cache: Path) -> dict:
    """Val figures of a model with the default decision (see tune_decision.evaluate_variant)."""
    embedder, base, far, full, usable, queries, clips, cohort, cache, _ = _val_setup(model_dir, params_file, catalog,
                                                                                     queries_dir, cache)
    from tune_decision import evaluate_variant, masked_copy, search_clips  # on sys.path after _val_setup

    index = masked_copy(full, usable, base.ann_spec())  # the deployed index type proposes the candidates
    return evaluate_variant(embedder, base, index, clips, search_clips(index, clips, base.index_type, cache), queries,
                            cohort, base.cohort_top, far, base.background)


def decision_rows(params_file: Path, catalog: Path, queries_dir: Path) -> dict[str, dict]:
    """Val figures of the shipped decision and of each DECISIONS take-back, for the default model (its embeddings
    and neighbours from tune_decision's cache: run benchmarks/tune_decision.py first, or they are computed here)."""
    import dataclasses

    embedder, base, far, full, usable, queries, clips, cohort, cache, sha = _val_setup(None, params_file, catalog,
                                                                                       queries_dir, None)
    from tune_decision import evaluate_variant, masked_copy, search_clips  # on sys.path after _val_setup

    indexes = {"unmasked": full, "masked": masked_copy(full, usable)}
    neighbours = {name: search_clips(index, clips, name, cache) for name, index in indexes.items()}
    rows = {}
    for name, (what, over, index_name, background) in DECISIONS.items():
        config = dataclasses.replace(base, **over)
        rows[name] = evaluate_variant(embedder, config, indexes[index_name], clips, neighbours[index_name], queries,
                                      cohort, base.cohort_top if background else None, far, base.background)
        print(name, {k: round(v, 3) for k, v in rows[name].items()}, flush=True)
    return {"model_sha256": sha, "score": base.score, "rows": rows}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def train_table(work: Path, title: str) -> list[str]:
    """Markdown rows of every trained variant on record under `work`."""
    lines = []
    for name, (what, _) in VARIANTS.items():
        folder = work / name
        if not (folder / "model" / "train.json").is_file():
            continue
        s = json.loads((folder / "model" / "train.json").read_text())
        r = json.loads((folder / "scores.json").read_text()) if (folder / "scores.json").is_file() else {}
        lines.append(f"| {name} | {what} | {s['steps']} | {s['fit_s'] / 60:.1f} | "
                     f"{pct(s.get('best_val_window_recall'))} | {pct(s.get('best_val_top1'))} | "
                     f"{s.get('best_val_gap', float('nan')):+.3f} | {pct(r.get('top1_3'))} / {pct(r.get('top1_5'))} / "
                     f"{pct(r.get('top1_10'))} | {pct(r.get('far1_3'))} / {pct(r.get('far1_5'))} |")
    if not lines:
        return []
    return [f"## {title}", "",
            "| variant | takes back | steps | training min | window recall@10 | top-1 3 s (training val) | gap | "
            "val top-1 3 / 5 / 10 s | at 1% FA 3 / 5 s |", "|---|---|---|---|---|---|---|---|---|", *lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--only", nargs="*", default=None,
                        help=f"variants to train (default: all of {list(VARIANTS)}; none with --decisions)")
    parser.add_argument("--epochs", type=int, default=None, help="train every row this many epochs (shorter runs)")
    parser.add_argument("--train-only", action="store_true", help="rows from the training's own validation only")
    parser.add_argument("--decisions", action="store_true", help="score the decision take-backs (default model)")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--queries", default="data/queries/val")
    parser.add_argument("--work", default="data/ablation")
    parser.add_argument("--out", default="benchmarks/ablation.md")
    args = parser.parse_args()
    work = Path(args.work)
    run_dir = work if args.epochs is None else work / f"e{args.epochs}"
    wanted = args.only if args.only is not None else ([] if args.decisions else list(VARIANTS))
    for name, (what, over) in VARIANTS.items():
        if name not in wanted or (args.epochs is not None and isinstance(over, str)):
            continue
        folder = run_dir / name
        summary = train_variant(name, over, Path(args.params), folder, args.epochs)
        print(name, {k: summary.get(k) for k in ("steps", "fit_s", "best_val_window_recall", "best_val_top1")},
              flush=True)
        if not args.train_only and not (folder / "scores.json").is_file():
            scores = score_variant(folder / "model", Path(args.params), Path(args.catalog), Path(args.queries),
                                   folder / "cache")
            (folder / "scores.json").write_text(json.dumps(scores, indent=2))
    decisions_file = work / "decisions.json"
    if args.decisions:
        work.mkdir(parents=True, exist_ok=True)
        decisions = decision_rows(Path(args.params), Path(args.catalog), Path(args.queries))
        decisions_file.write_text(json.dumps(decisions, indent=2))
        # the full-length default row is the deployed model itself, scored with the shipped decision
        model_dir = Path(yaml.safe_load(Path(args.params).read_text())["embedding"]["model"])
        (work / "default" / "model").mkdir(parents=True, exist_ok=True)
        (work / "default" / "model" / "train.json").write_text((model_dir / "train.json").read_text())
        (work / "default" / "scores.json").write_text(json.dumps(decisions["rows"]["shipped"], indent=2))
    lines = ["# Ablation: what each change bought (val queries; never the test set)", "",
             "Generated by `.venv/bin/python benchmarks/ablation.py`; do not edit by hand. Each training row retrains "
             "the default profile (same seed, same steps per epoch) with one change taken back. Window recall@10, "
             "top-1 of 3 s queries and the gap (true window's similarity minus the 10th impostor's): the "
             "training's own validation, val songs among 50k distractor windows. Val top-1 and at 1% FA (accepted "
             "and right at a threshold per length at 1% false accepts of out-of-catalog val queries): the whole "
             "catalog indexed with that model and the val query set scored with the default decision "
             "(`-`: not run, --train-only).", ""]
    full_rows = train_table(work, "Training changes: the default length")
    lines += full_rows
    sys.path.insert(0, str(Path(__file__).parent))
    from ablation_plot import curves, plot_curves

    png = plot_curves(curves(work, list(VARIANTS)), Path(args.out).with_name("ablation_curves.png"))
    if png:
        lines += [f"![learning curves]({png})", "",
                  "The full-length runs' own validation against training minutes (each point: its step x the run's "
                  "mean minutes per step). The dashed line is the default profile's 30-minute budget; the `long` "
                  "row is the same model and data with 4x the steps.", ""]
    for sub in sorted(work.glob("e*")):
        short = train_table(sub, f"Training changes: {sub.name[1:]} epoch(s) each (a shorter budget, a cosine "
                                 f"schedule over that span)")
        if short:
            lines += short + ["Read these rows as what a change does to early learning, not what it buys at full "
                              "length: changes that make the views harder (independent conditions down to -12 dB, "
                              "spectrogram masking) can slow the first epoch and pay later. The "
                              "training validation renders its val songs with the `train.val.presets` rooms only, "
                              "so it is closer to the preset draw than to the test grid.", ""]
    if decisions_file.is_file():
        d = json.loads(decisions_file.read_text())
        lines += ["## Decision changes (the default model, model sha256 " + d["model_sha256"][:12] + ")", "",
                  "Each row is the shipped decision with one part taken back, on the same val queries (paired).", "",
                  "| variant | takes back | top-1 3 s | top-1 5 s | top-1 10 s | 0 dB + reverb 3 s / 5 s | "
                  "at 1% FA 3 s | at 1% FA 5 s | at 1% FA 10 s |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in d["rows"].items():
            what = DECISIONS[name][0].replace("`embedding.score`", f"`{d['score']}`") if name in DECISIONS else name
            lines.append(f"| {name} | {what} | {pct(r.get('top1_3'))} | {pct(r.get('top1_5'))} | "
                         f"{pct(r.get('top1_10'))} | {pct(r.get('r0_3'))} / {pct(r.get('r0_5'))} | "
                         f"{pct(r.get('far1_3'))} | {pct(r.get('far1_5'))} | {pct(r.get('far1_10'))} |")
        lines.append("")
    text = "\n".join(lines)
    from resonance.io import atomic_open

    with atomic_open(Path(args.out)) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()

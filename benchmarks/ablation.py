"""What bought what: retrain the default model with one training change taken back at a time, and score every
variant on the val queries (never the test set) with the default decision.

Run: .venv/bin/python benchmarks/ablation.py [--only NAME ...] [--out benchmarks/ablation.md]
Each variant is `resonance train` (the default profile, the same step count and seed) with a few params
overridden, into data/ablation/<name>/ (skipped when its model is already there); then the whole catalog is
indexed with it and the val clips are embedded once (benchmarks/tune_decision.py), and the default decision
(sequence search proposed by the deployed index type, background cohort, the default score) gives top-1 per length, at 0 dB with reverb, and accepted and
right at 1% false accepts (threshold per length chosen on these same val queries). Hours of CPU: run it on an
otherwise idle machine. Writes a markdown table (also printed).
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


def train_variant(name: str, over: dict | str, params_file: Path, folder: Path) -> dict:
    """`resonance train` with the overrides (its own MLflow experiment and registered name); returns train.json."""
    if (folder / "model" / "train.json").is_file():
        return json.loads((folder / "model" / "train.json").read_text())
    params = yaml.safe_load(params_file.read_text())
    if isinstance(over, str):  # "profile:NAME": that profile's overrides
        over = params["train"]["profiles"][over.split(":", 1)[1]]
    params["train"] = merge(params["train"], over)
    params["train"].update(mlflow_experiment="ablation", registered_model="resonance-ablation")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run([sys.executable, "-m", "resonance", "-q", "--params", str(folder / "params.yaml"), "train",
                    "--out", str(folder / "model")], check=True, cwd=ROOT, env=os.environ)
    return json.loads((folder / "model" / "train.json").read_text())


def score_variant(model_dir: Path, params_file: Path, catalog: Path, queries_dir: Path, cache: Path) -> dict:
    """Val figures of a model with the default decision (see tune_decision.evaluate_variant)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tune_decision import build_unmasked, embed_clips, evaluate_variant, masked_copy, model_cohort, search_clips

    from resonance.config import EmbeddingParams, EvaluateParams, load_section
    from resonance.evaluate.queries import load_queries
    from resonance.index.method import EmbeddingMethod
    from resonance.model.embedder import Embedder, load_model

    base = load_section(params_file, "embedding", EmbeddingParams)
    ev = load_section(params_file, "evaluate", EvaluateParams)
    embedder = Embedder(load_model(model_dir), batch=base.batch)
    method = EmbeddingMethod(embedder, base)
    cache.mkdir(parents=True, exist_ok=True)
    full, usable = build_unmasked(method, catalog, cache)
    index = masked_copy(full, usable, base.ann_spec())  # the deployed index type proposes the candidates
    queries = load_queries(queries_dir)
    clips = embed_clips(method, queries, queries_dir, cache)
    return evaluate_variant(embedder, base, index, clips, search_clips(index, clips, base.index_type, cache), queries,
                            model_cohort(method, catalog), base.cohort_top, ev.target_far, base.background)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--only", nargs="*", default=None, help=f"variants to run (default: all: {list(VARIANTS)})")
    parser.add_argument("--catalog", default="data/catalog")
    parser.add_argument("--queries", default="data/queries/val")
    parser.add_argument("--work", default="data/ablation")
    parser.add_argument("--out", default="benchmarks/ablation.md")
    args = parser.parse_args()
    rows = []
    for name, (what, over) in VARIANTS.items():
        folder = Path(args.work) / name
        if args.only is not None and name not in args.only and not (folder / "scores.json").is_file():
            continue
        summary = train_variant(name, over, Path(args.params), folder)
        if (folder / "scores.json").is_file():
            scores = json.loads((folder / "scores.json").read_text())
        else:
            scores = score_variant(folder / "model", Path(args.params), Path(args.catalog), Path(args.queries),
                                   folder / "cache")
            (folder / "scores.json").write_text(json.dumps(scores, indent=2))
        rows.append((name, what, summary, scores))
        print(name, scores, flush=True)
    lines = ["# Ablation: what each training change bought (val queries, whole catalog indexed)", "",
             "Generated by `.venv/bin/python benchmarks/ablation.py`; do not edit by hand. Each row retrains the "
             "default profile (same seed, same step count) with one change taken back, then scores the val "
             "queries with the default decision. Window recall@10: the training's own validation (val songs "
             "among 50k distractor windows).", "",
             "| variant | takes back | steps | training min | window recall@10 | top-1 3 s | top-1 5 s | top-1 10 s | "
             "0 dB + reverb 3 s / 5 s | at 1% FA 3 s / 5 s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, what, s, r in rows:
        recall = s.get("best_val_window_recall")
        lines.append(f"| {name} | {what} | {s['steps']} | {s['fit_s'] / 60:.1f} | "
                     f"{'-' if recall is None else f'{recall:.1%}'} | {r['top1_3']:.1%} | {r['top1_5']:.1%} | "
                     f"{r['top1_10']:.1%} | {r['r0_3']:.1%} / {r['r0_5']:.1%} | {r['far1_3']:.1%} / {r['far1_5']:.1%} |")
    text = "\n".join(lines) + "\n"
    from resonance.io import atomic_open

    with atomic_open(Path(args.out)) as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main()

"""`resonance calibrate`: the model's open-set decision, fitted on the val queries (never the test set).

1. The background cohort: `embedding.cohort_size` random usable windows of the catalog's `train` tracks, clean
   as indexed, embedded (seeded by `embedding.seed`).
2. Every val query (each length of each clip) is identified against the reference index (`embedding.index`,
   the one `identify` uses), normalised by that cohort.
3. Per query length: the threshold at `evaluate.target_far` false accepts of the out-of-catalog val queries, and
   a logistic map from score to the probability that the answer is right (`resonance.calibrate.fit`).
Writes the calibration folder (`resonance.index.calibration`), a report (calibration.md, scores.png) and a
metrics JSON for DVC.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from resonance.config import EmbeddingParams, EvaluateParams
from resonance.index.calibration import Calibration


def draw_cohort(catalog_dir: Path, n: int, seed: int, window_s: float, sr: int, usable, embed) -> np.ndarray:
    """(n, dim) embeddings of random usable clean windows of the catalog's `train` tracks (track chosen in
    proportion to its length, position uniform in it). `usable(audio (window,)) -> bool`, `embed(batch (b,
    window)) -> (b, dim)`."""
    import soundfile as sf

    from resonance.catalog.manifest import load_manifest

    tracks = [t for t in load_manifest(catalog_dir) if t.split == "train"] or load_manifest(catalog_dir)
    window = int(round(window_s * sr))
    lengths = np.array([t.duration_s for t in tracks])
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    tries = 0
    while len(picked) < n and tries < 20 * n:
        tries += 1
        t = tracks[int(rng.choice(len(tracks), p=lengths / lengths.sum()))]
        start = int(rng.integers(0, max(1, int(t.duration_s * sr) - window)))
        audio, _ = sf.read(str(catalog_dir / t.audio_path), start=start, stop=start + window, dtype="float32")
        if audio.size == window and usable(audio):
            picked.append(audio)
    if not picked:
        raise ValueError(f"{catalog_dir}: no usable window found for the cohort")
    batch = np.stack(picked)
    return np.concatenate([embed(batch[i:i + 512]) for i in range(0, len(batch), 512)])


def run(params: EmbeddingParams, evaluate: EvaluateParams, catalog_dir: Path, queries_dir: Path, out_dir: Path,
        metrics_path: Path | None, progress: bool = True) -> dict[str, Any]:
    """Fit and save the calibration of `params.model` against `params.index`; returns the summary."""
    import torch

    from resonance.calibrate.fit import fit_lengths
    from resonance.evaluate.harness import run_queries
    from resonance.evaluate.queries import flac_loader, load_queries
    from resonance.index.method import EmbeddingMethod
    from resonance.index.store import EmbeddingIndex
    from resonance.model.embedder import Embedder, load_model
    from resonance.progress import progress as progress_bar

    t0 = time.perf_counter()
    embedder = Embedder(load_model(params.model), batch=params.batch)
    method = EmbeddingMethod(embedder, params)
    index = EmbeddingIndex.load(params.index, method.model_sha256)

    def embed(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return embedder.model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()

    sr = embedder.sr
    usable = lambda a: bool(method.usable(a, embedder.window_s).all())  # noqa: E731
    cohort = draw_cohort(Path(catalog_dir), params.cohort_size, params.seed, embedder.window_s, sr, usable, embed)
    blank = Calibration(method.model_sha256, params.decision, params.score, params.cohort_top,
                        evaluate.target_far, (), cohort, params.background)
    method = EmbeddingMethod.with_index(embedder, params, index, blank)
    queries = load_queries(queries_dir)
    with progress_bar(total=len(queries), desc="calibrate: val queries", unit="query", disable=not progress) as bar:
        results = run_queries(method, queries, flac_loader(queries_dir, sr), sr, time_every=0, progress=bar.update)
    length = np.array([r.length_s for r in results])
    inside = np.array([r.in_catalog for r in results])
    correct = np.array([r.song_hit for r in results])
    score = np.array([r.score for r in results], dtype=np.float64)
    lengths = fit_lengths(length, inside, correct, score, evaluate.target_far)
    calibration = Calibration(method.model_sha256, params.decision, params.score, params.cohort_top,
                              evaluate.target_far, lengths, cohort, params.background)
    out_dir = Path(out_dir)
    calibration.save(out_dir)
    summary = {"model_sha256": method.model_sha256, "decision": params.decision, "score": params.score,
               "n_cohort": int(cohort.shape[0]), "val_queries": len(results), "seconds": round(time.perf_counter() - t0, 1),
               "lengths": {f"len{c.length_s:g}": {"threshold": round(c.threshold, 4), "val_far": round(c.val_far, 4),
                                                  "val_hit_rate": round(c.val_hit_rate, 4),
                                                  "val_top1": round(float(correct[inside & (length == c.length_s)].mean()), 4)}
                           for c in lengths}}
    from resonance.calibrate.report import write_report

    write_report(out_dir, calibration, length, inside, correct, score, summary)
    if metrics_path is not None:
        from resonance.io import write_json

        write_json(metrics_path, {k: v for k, v in summary.items() if k != "model_sha256"})
    return summary


def describe(summary: dict[str, Any], out_dir: Path) -> str:
    """One line per length for the terminal."""
    rows = "; ".join(f"{k[3:]} s: threshold {v['threshold']:.3f}, val {v['val_hit_rate']:.1%} accepted and right at "
                     f"{v['val_far']:.1%} false accepts (top-1 {v['val_top1']:.1%})" for k, v in summary["lengths"].items())
    return (f"calibrate: {summary['decision']} decision, score `{summary['score']}`, {summary['n_cohort']} cohort "
            f"windows, {summary['val_queries']} val queries in {summary['seconds']:.0f} s: {rows} -> {out_dir}")

"""`resonance evaluate --method NAME`: index the catalog with a method, identify every query, write the report.

Outputs in OUT: metrics.json (everything, per query too), report.md, hit_rate_vs_snr.png, snr_rt60_heatmap.png;
plus a small headline JSON that DVC tracks as metrics. With an MLflow tracking URI, all of it is logged to a run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from resonance.catalog.manifest import Track, load_manifest
from resonance.config import EvaluateParams, load_section
from resonance.evaluate.harness import compute_metrics, run_queries
from resonance.evaluate.methods import Method, build_reference
from resonance.evaluate.queries import flac_loader, load_queries
from resonance.evaluate.report import log_to_mlflow, write_report
from resonance.io import write_json

METHODS = ("landmark", "chromaprint", "embedding")


def make_method(name: str, params_file: Path) -> Method:
    """The named method, configured from its params section (a builders layer: unknown names raise)."""
    if name == "landmark":
        from resonance.evaluate.methods import LandmarkMethod
        from resonance.landmark.peaks import LandmarkConfig

        return LandmarkMethod(load_section(params_file, "landmark", LandmarkConfig))
    if name == "chromaprint":
        from resonance.chromaprint import ChromaprintConfig
        from resonance.evaluate.methods import ChromaprintMethod

        return ChromaprintMethod(load_section(params_file, "chromaprint", ChromaprintConfig))
    if name == "embedding":
        import dataclasses

        from resonance.config import EmbeddingParams
        from resonance.index.method import EmbeddingMethod
        from resonance.model.embedder import Embedder, load_model

        params = load_section(params_file, "embedding", EmbeddingParams)
        # The evaluation sets the operating point itself (threshold at target_far): it sees every answer.
        params = dataclasses.replace(params, min_confidence=0.0)
        return EmbeddingMethod(Embedder(load_model(params.model), batch=params.batch), params)
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")


def catalog_audio(tracks: list[Track], catalog_dir: Path, progress: bool) -> Iterator[tuple[str, np.ndarray]]:
    """(track_id, mono float32 audio) for every track, read one at a time, with a progress bar."""
    from tqdm import tqdm

    from resonance.audio import read_audio

    for t in tqdm(tracks, desc="evaluate: index", unit="track", disable=not progress, dynamic_ncols=True):
        yield t.track_id, read_audio(catalog_dir / t.audio_path, t.sample_rate)[0]


def run(method_name: str, params_file: Path, catalog_dir: Path, queries_dir: Path, out_dir: Path,
        metrics_path: Path | None, progress: bool = True) -> dict[str, Any]:
    """Evaluate one method on one query set; returns the metrics dict."""
    from tqdm import tqdm

    params = load_section(params_file, "evaluate", EvaluateParams)
    method = make_method(method_name, params_file)
    tracks = load_manifest(catalog_dir)
    sr = tracks[0].sample_rate
    queries = load_queries(queries_dir)
    t0 = time.perf_counter()
    reference_s = build_reference(method, catalog_audio(tracks, catalog_dir, progress), sr)
    build_s = time.perf_counter() - t0  # includes reading the FLACs
    bar = tqdm(queries, desc=f"evaluate: {method_name}", unit="query", disable=not progress, dynamic_ncols=True)
    results = run_queries(method, bar, flac_loader(queries_dir, sr), sr)
    metrics = compute_metrics(results, method_name=method.name, target_far=params.target_far,
                              segment_tolerance_s=params.segment_tolerance_s, confidence=params.confidence,
                              score_threshold=None, index_bytes=method.index_bytes(), reference_s=reference_s)
    metrics["query_set"] = str(queries_dir)
    metrics["index"].update(build_s=round(build_s, 1), build_x_realtime=round(reference_s / build_s, 1))
    write_report(metrics, out_dir)
    if metrics_path is not None:
        write_json(metrics_path, headline(metrics))
    _log_mlflow(metrics, out_dir, params, method_name)
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers DVC tracks: per length, top-1 and segment hit rate; open-set; latency; index size."""
    out: dict[str, Any] = {"method": metrics["method"]}
    for length, block in metrics["by_length"].items():
        out[f"hit_rate_{length}"] = round(block["all"]["hit_rate"], 4)
        out[f"segment_hit_rate_{length}"] = round(block["all"]["segment_hit_rate"], 4)
    op = metrics["open_set"]["at_target_far"] or {}
    out["threshold_at_target_far"] = op.get("threshold")
    out["far_at_threshold"] = op.get("far")
    out["hit_rate_at_target_far"] = (op.get("all") or {}).get("hit_rate")
    out["latency_p50_ms"] = metrics["latency_ms"]["p50"]
    out["latency_p95_ms"] = metrics["latency_ms"]["p95"]
    out["index_bytes_per_hour"] = metrics["index"]["bytes_per_hour"]
    out["index_build_x_realtime"] = metrics["index"].get("build_x_realtime")
    len5 = metrics["by_length"].get("len5")
    if len5:
        out["latency_p50_ms_len5"] = len5["latency_ms"]["p50"]
    return out


def _log_mlflow(metrics: dict[str, Any], out_dir: Path, params: EvaluateParams, method_name: str) -> None:
    """Log to MLflow when a tracking URI is configured (MLFLOW_TRACKING_URI), in its own run."""
    import os

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    import mlflow

    mlflow.set_experiment(params.mlflow_experiment)
    with mlflow.start_run(run_name=f"{method_name}-{Path(metrics['query_set']).name}"):
        mlflow.log_params({"method": method_name, "query_set": metrics["query_set"],
                           "target_far": params.target_far})
        log_to_mlflow(metrics, out_dir)


def describe(metrics: dict[str, Any], out_dir: Path) -> str:
    """A few lines for the terminal."""
    rates = ", ".join(f"{k[3:]} s {v['all']['hit_rate']:.1%}" for k, v in metrics["by_length"].items())
    at = headline(metrics)
    open_set = ("no out-of-catalog queries" if at["hit_rate_at_target_far"] is None else
                f"at {metrics['open_set']['target_far']:.0%} false accepts: hit rate {at['hit_rate_at_target_far']:.1%}")
    return (f"evaluate: {metrics['method']}: top-1 hit rate by query length: {rates}; {open_set}; "
            f"latency p50 {at['latency_p50_ms']:.0f} ms -> {out_dir}")

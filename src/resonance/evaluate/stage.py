"""`resonance evaluate --method NAME`: identify every query with a method, score it, write the report.

The fingerprint baselines index the catalog themselves; the embedding is evaluated as it is deployed: the
reference index `embedding.index` (`resonance index build`) with the calibration `embedding.calibration`
(`resonance calibrate`, fitted on val), so its open-set figures use thresholds never chosen on the test set. The
hybrid (`resonance.evaluate.hybrid`) indexes the catalog for its landmark side and uses the deployed embedding.
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
from resonance.evaluate.harness import run_queries
from resonance.evaluate.methods import Method, build_reference
from resonance.evaluate.metrics import compute_metrics
from resonance.evaluate.queries import flac_loader, load_queries
from resonance.evaluate.report import log_to_mlflow, write_report
from resonance.io import write_json

METHODS = ("landmark", "chromaprint", "embedding", "hybrid")


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
        from resonance.config import EmbeddingParams
        from resonance.index.stage import load_recognizer

        params = load_section(params_file, "embedding", EmbeddingParams)
        return load_recognizer(params.model, Path(params.index), Path(params.calibration), params)
    if name == "hybrid":
        from resonance.config import HybridParams
        from resonance.evaluate.hybrid import HybridMethod

        h = load_section(params_file, "hybrid", HybridParams)
        return HybridMethod(make_method("landmark", params_file), make_method("embedding", params_file),
                            h.answer_votes, h.accept_votes)
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")


def catalog_audio(tracks: list[Track], catalog_dir: Path, progress: bool) -> Iterator[tuple[str, np.ndarray]]:
    """(track_id, mono float32 audio) for every track, read one at a time, with a progress bar."""
    from resonance.audio import read_audio
    from resonance.progress import progress as progress_bar

    for t in progress_bar(tracks, desc="evaluate: index", unit="track", disable=not progress):
        yield t.track_id, read_audio(catalog_dir / t.audio_path, t.sample_rate)[0]


def run(method_name: str, params_file: Path, catalog_dir: Path, queries_dir: Path, out_dir: Path,
        metrics_path: Path | None, progress: bool = True) -> dict[str, Any]:
    """Evaluate one method on one query set; returns the metrics dict."""
    from resonance.evaluate.stats import ClusterBootstrap
    from resonance.progress import progress as progress_bar

    params = load_section(params_file, "evaluate", EvaluateParams)
    method = make_method(method_name, params_file)
    tracks = load_manifest(catalog_dir)
    sr = tracks[0].sample_rate
    queries = load_queries(queries_dir)
    t0 = time.perf_counter()
    if method_name == "embedding":  # the deployed index, built by `resonance index build`
        reference_s = sum(t.duration_s for t in method.index.tracks)
        build = None
    else:
        reference_s = build_reference(method, catalog_audio(tracks, catalog_dir, progress), sr)
        build = time.perf_counter() - t0  # includes reading the FLACs
    loader = flac_loader(queries_dir, sr)
    with progress_bar(total=len(queries), desc=f"evaluate: {method_name}", unit="query", disable=not progress) as bar:
        results = run_queries(method, queries, loader, sr, time_every=params.time_every, progress=bar.update)
    bootstrap = ClusterBootstrap([q.excerpt for q in queries], params.bootstrap_samples, params.bootstrap_seed)
    metrics = compute_metrics(results, method_name=method.name, target_far=params.target_far,
                              segment_tolerance_s=params.segment_tolerance_s, confidence=params.confidence,
                              score_threshold=None, index_bytes=method.index_bytes(), reference_s=reference_s,
                              bootstrap=bootstrap)
    metrics["query_set"] = str(queries_dir)
    if build is not None:
        metrics["index"].update(build_s=round(build, 1), build_x_realtime=round(reference_s / build, 1))
    if method_name == "embedding" and params.index_sizes:
        from resonance.evaluate.scale import catalog_scaling

        metrics["catalog_scaling"] = catalog_scaling(method, queries, loader, sr, params.index_sizes,
                                                     params.scale_seed, 5.0, bootstrap, params.confidence)
    write_report(metrics, out_dir)
    if metrics_path is not None:
        write_json(metrics_path, headline(metrics))
    _log_mlflow(metrics, out_dir, params, method_name)
    return metrics


def _pooled(block: dict[str, Any], keep) -> float | None:
    cells = [c for c in block["cells"].values() if keep(c)]
    n = sum(c["n"] for c in cells)
    return round(sum(c["hits"] for c in cells) / n, 4) if n else None


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numbers DVC tracks: per length top-1, segment hits, 0 dB + reverb, and per SNR at 5 s; the open set at
    the method's own decision (thresholds chosen on val) when it has one, else at the test-chosen 1% threshold;
    latency; index size."""
    out: dict[str, Any] = {"method": metrics["method"]}
    for length, block in metrics["by_length"].items():
        out[f"hit_rate_{length}"] = round(block["all"]["hit_rate"], 4)
        out[f"segment_hit_rate_{length}"] = round(block["all"]["segment_hit_rate"], 4)
        if block.get("snr0_reverb"):
            out[f"hit_rate_{length}_snr0_reverb"] = round(block["snr0_reverb"]["hit_rate"], 4)
    len5 = metrics["by_length"].get("len5")
    if len5:
        for snr in sorted({c["snr_db"] for c in len5["cells"].values() if c["snr_db"] is not None}, reverse=True):
            out[f"hit_rate_len5_snr{snr:g}"] = _pooled(len5, lambda c, s=snr: c["snr_db"] == s)
    open_set = metrics["open_set"]
    own = open_set.get("at_decision")
    point = own or open_set["at_target_far"] or {}
    out["open_set_point"] = "val thresholds" if own else "test-chosen threshold"
    out["far_at_threshold"] = point.get("far")
    out["hit_rate_at_far1"] = (point.get("all") or {}).get("hit_rate")
    for length, rates in (point.get("by_length") or {}).items():
        if "hit_rate" in rates:
            out[f"hit_rate_at_far1_{length}"] = round(rates["hit_rate"], 4)
        if rates.get("far") is not None:
            out[f"far_{length}"] = round(rates["far"], 4)
    oracle = open_set["at_target_far"] or {}
    out["hit_rate_at_test_chosen_far1"] = (oracle.get("all") or {}).get("hit_rate")
    if metrics["latency_ms"]:
        out["latency_p50_ms"] = metrics["latency_ms"]["p50"]
        out["latency_p95_ms"] = metrics["latency_ms"]["p95"]
    if len5 and len5["latency_ms"]:
        out["latency_p50_ms_len5"] = len5["latency_ms"]["p50"]
        out["latency_p95_ms_len5"] = len5["latency_ms"]["p95"]
    out["index_bytes_per_hour"] = metrics["index"]["bytes_per_hour"]
    out["index_build_x_realtime"] = metrics["index"].get("build_x_realtime")
    for row in (metrics.get("catalog_scaling") or {}).get("sizes", []):
        out[f"hit_rate_len5_snr0_reverb_index{row['tracks']}"] = round(row["hit_rate"], 4)
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
    open_set = ("no out-of-catalog queries" if at["hit_rate_at_far1"] is None else
                f"open set ({at['open_set_point']}): {at['hit_rate_at_far1']:.1%} accepted and right at "
                f"{at['far_at_threshold']:.1%} false accepts")
    latency = f"; 5 s latency p50 {at['latency_p50_ms_len5']:.0f} ms" if "latency_p50_ms_len5" in at else ""
    return f"evaluate: {metrics['method']}: top-1 by query length: {rates}; {open_set}{latency} -> {out_dir}"

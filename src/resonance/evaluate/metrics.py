"""Every metric of one evaluation run: hit rates per query length x condition, the open-set operating points,
latency and index size (`compute_metrics`), and their flat MLflow form (`flatten_metrics`).

Open set, two operating points:
- `at_decision`: the method's own decision (its `accepted` flags, with thresholds per query length chosen on the
  val queries): the false-accept rate of the out-of-catalog test queries and the share of in-catalog ones
  accepted and right. This is the honest figure; only methods that calibrate themselves have it.
- `at_target_far`: the single threshold at which `target_far` of the out-of-catalog TEST queries are accepted,
  chosen on the test set itself: an optimistic reference point, comparable across methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from resonance.evaluate.harness import (
    QueryResult,
    _grouped,
    _reverb_order,
    _snr_order,
    cell_key,
    hit_rates,
    length_key,
    run_queries,
    snr_label,
)
from resonance.evaluate.methods import Method
from resonance.evaluate.queries import Query
from resonance.evaluate.stats import ClusterBootstrap, latency_summary, score_summary, threshold_at_far

METRICS_FORMAT = 2


def _far(out: list[QueryResult], accepted: list[bool], confidence: float,
         bootstrap: ClusterBootstrap | None) -> dict[str, Any]:
    from resonance.evaluate.stats import wilson_interval

    n, k = len(out), int(sum(accepted))
    if bootstrap is not None:
        ci = bootstrap.interval([r.excerpt for r in out], np.array(accepted, dtype=np.float64), confidence)
    else:
        ci = wilson_interval(k, n, confidence)
    return {"far": k / n, "far_ci": list(ci), "false_accepts": k}


def _ci(group: list[QueryResult], values: np.ndarray, confidence: float,
        bootstrap: ClusterBootstrap | None) -> list[float]:
    from resonance.evaluate.stats import wilson_interval

    if bootstrap is not None:
        return list(bootstrap.interval([r.excerpt for r in group], values, confidence))
    return list(wilson_interval(int(values.sum()), values.size, confidence))


def _point(results: Sequence[QueryResult], accept: Callable[[QueryResult], bool], tol: float, conf: float,
           bootstrap: ClusterBootstrap | None, **extra: Any) -> dict[str, Any]:
    """FAR of the out-of-catalog queries and hit rates of the in-catalog ones when `accept` decides, overall and
    per query length."""
    def one(group: Sequence[QueryResult]) -> dict[str, Any]:
        out = [r for r in group if not r.in_catalog]
        inside = [r for r in group if r.in_catalog]
        block: dict[str, Any] = {"n_out": len(out)}
        if out:
            block.update(_far(out, [accept(r) for r in out], conf, bootstrap))
        if inside:
            ok = np.array([r.song_hit and accept(r) for r in inside], dtype=np.float64)
            seg = np.array([r.segment_hit(tol) and accept(r) for r in inside], dtype=np.float64)
            block.update(n=len(inside), hits=int(ok.sum()), hit_rate=float(ok.mean()),
                         hit_ci=_ci(inside, ok, conf, bootstrap), segment_hits=int(seg.sum()),
                         segment_hit_rate=float(seg.mean()), segment_ci=_ci(inside, seg, conf, bootstrap))
        return block

    point = {**extra, "all": one(results)}
    point.update({k: point["all"][k] for k in ("n_out", "far", "far_ci", "false_accepts") if k in point["all"]})
    point["by_length"] = {length_key(length): one(group)
                          for length, group in _grouped(results, lambda r: r.length_s, lambda k: k)}
    return point


def open_set_metrics(results: Sequence[QueryResult], target_far: float, score_threshold: float | None,
                     segment_tolerance_s: float, confidence: float,
                     bootstrap: ClusterBootstrap | None = None) -> dict[str, Any]:
    """Scores of in- vs out-of-catalog queries and the operating points of the module docstring (plus one at a
    fixed `score_threshold`, if given). With no out-of-catalog queries there is no test-chosen threshold.

    When at most target_far of out-of-catalog queries were matched at all, the test-chosen threshold is the
    lowest score of any match (every match is accepted).
    """
    tol, conf = segment_tolerance_s, confidence
    out = np.array([r.accept_score for r in results if not r.in_catalog])
    inside = np.array([r.accept_score for r in results if r.in_catalog])
    metrics: dict[str, Any] = {"target_far": target_far, "n_in": int(inside.size), "n_out": int(out.size),
                               "scores_in": score_summary(inside), "scores_out": score_summary(out)}
    at_target = None
    if out.size:
        threshold = threshold_at_far(out, target_far)
        if threshold == -math.inf:
            finite = [r.score for r in results if r.predicted_track_id is not None]
            threshold = min(finite) if finite else 0.0
        at_target = _point(results, lambda r: r.accept_score >= threshold, tol, conf, bootstrap,
                           threshold=threshold)
    metrics["at_target_far"] = at_target
    fixed = None
    if score_threshold is not None:
        fixed = _point(results, lambda r: r.accept_score >= score_threshold, tol, conf, bootstrap,
                       threshold=score_threshold)
    metrics["at_score_threshold"] = fixed
    own = any(r.accepted is not None for r in results)
    metrics["at_decision"] = _point(results, lambda r: bool(r.accepted) and r.predicted_track_id is not None, tol,
                                    conf, bootstrap) if own else None
    return metrics


def compute_metrics(results: Sequence[QueryResult], *, method_name: str, target_far: float,
                    segment_tolerance_s: float, confidence: float, score_threshold: float | None,
                    index_bytes: int, reference_s: float, bootstrap: ClusterBootstrap | None = None) -> dict[str, Any]:
    """Every metric of one evaluation run, as a JSON-ready dict.

    Per length: `all` and per-cell hit rates (in-catalog queries, top-1: the best guess whether accepted or
    not), by SNR, by SNR x reverb (for the heatmap, with each reverb's mean RT60 in s), latency p50/p95 (ms, of
    the queries timed alone). Then `open_set` (module docstring), `latency_ms` over all timed queries, `index`
    (bytes, bytes per hour of reference audio) and every `results` row. Intervals: `bootstrap` (by excerpt) when
    given, else Wilson.
    """
    if not results:
        raise ValueError("compute_metrics: no query results")
    if not reference_s > 0:
        raise ValueError(f"compute_metrics: reference_s must be > 0 seconds, got {reference_s!r}")
    if not segment_tolerance_s >= 0:
        raise ValueError(f"compute_metrics: segment_tolerance_s must be >= 0, got {segment_tolerance_s!r}")
    if not (0.0 <= target_far < 1.0 and 0.0 < confidence < 1.0):
        raise ValueError(f"compute_metrics: need 0 <= target_far < 1 and 0 < confidence < 1, got "
                         f"{target_far!r} and {confidence!r}")
    tol, conf, boot = segment_tolerance_s, confidence, bootstrap

    def rates(group: Sequence[QueryResult]) -> dict[str, Any]:
        return hit_rates(group, tol, conf, bootstrap=boot) or {}

    def latency(group: Sequence[QueryResult]) -> dict[str, Any] | None:
        timed = np.array([r.latency_ms for r in group if math.isfinite(r.latency_ms)])
        return latency_summary(timed) if timed.size else None

    by_length: dict[str, Any] = {}
    for length, group in _grouped(results, lambda r: r.length_s, lambda k: k):
        inside = [r for r in group if r.in_catalog]
        cells = {}
        for (snr, reverb, clip), cell in _grouped(inside, lambda r: (r.snr_db, r.reverb, r.clipping),
                                                  lambda k: (_snr_order(k[0]), _reverb_order(k[1]), k[2])):
            cells[cell_key(snr, reverb, clip)] = {"snr_db": snr, "reverb": reverb, "clipping": clip,
                                                  "rt60_s_mean": float(np.mean([r.rt60_s for r in cell])),
                                                  **rates(cell)}
        by_snr = {snr_label(snr): {"snr_db": snr, **rates(cell)}
                  for snr, cell in _grouped(inside, lambda r: r.snr_db, _snr_order)}
        by_snr_reverb = {f"{snr_label(snr)}_{reverb}": {
            "snr_db": snr, "reverb": reverb, "rt60_s_mean": float(np.mean([r.rt60_s for r in cell])), **rates(cell)}
            for (snr, reverb), cell in _grouped(inside, lambda r: (r.snr_db, r.reverb),
                                                lambda k: (_snr_order(k[0]), _reverb_order(k[1])))}
        reverb0 = [r for r in inside if r.snr_db == 0 and r.reverb != "dry"]
        by_length[length_key(length)] = {
            "length_s": length, "n_queries": len(group), "all": hit_rates(group, tol, conf, bootstrap=boot),
            "cells": cells, "by_snr": by_snr, "by_snr_reverb": by_snr_reverb,
            "snr0_reverb": rates(reverb0) if reverb0 else None, "latency_ms": latency(group)}
    return {
        "format": METRICS_FORMAT,
        "method": method_name,
        "settings": {"target_far": target_far, "segment_tolerance_s": tol, "confidence": conf,
                     "score_threshold": score_threshold,
                     "intervals": "excerpt bootstrap" if boot is not None else "Wilson"},
        "n_queries": len(results),
        "n_in_catalog": sum(r.in_catalog for r in results),
        "n_out_of_catalog": sum(not r.in_catalog for r in results),
        "n_excerpts": len({r.excerpt for r in results}),
        "all": hit_rates(results, tol, conf, bootstrap=boot),
        "by_length": by_length,
        "open_set": open_set_metrics(results, target_far, score_threshold, tol, conf, boot),
        "latency_ms": latency(results),
        "index": {"bytes": int(index_bytes), "reference_s": float(reference_s),
                  "bytes_per_hour": index_bytes / (reference_s / 3600.0)},
        "results": [asdict(r) for r in results],
    }


def evaluate(method: Method, queries: Sequence[Query], audio_loader: Callable[[Query], np.ndarray], *, sr: int,
             reference_s: float, target_far: float, segment_tolerance_s: float, confidence: float,
             score_threshold: float | None, bootstrap: ClusterBootstrap | None = None) -> dict[str, Any]:
    """Run a built `method` over `queries` and compute every metric (`compute_metrics`).

    sr: the queries' sample rate (Hz); reference_s: seconds of reference audio the method indexed (what
    `methods.build_reference` returns); target_far: e.g. 0.01 for the 1%-false-accept operating point;
    segment_tolerance_s: e.g. 0.5; confidence: of the intervals, e.g. 0.95; score_threshold: an extra fixed
    operating point to report (None for none).
    """
    if not queries:
        raise ValueError("evaluate: no queries")
    results = run_queries(method, queries, audio_loader, sr)
    return compute_metrics(results, method_name=method.name, target_far=target_far,
                           segment_tolerance_s=segment_tolerance_s, confidence=confidence,
                           score_threshold=score_threshold, index_bytes=method.index_bytes(),
                           reference_s=reference_s, bootstrap=bootstrap)


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for MLflow: `hit_rate/len5/snr0_hall_clip0`, `segment_hit_rate/len5/all`,
    `hit_rate_by_snr/len5/snr0`, `latency_ms_p95/len5`, `open_set/hit_rate/len5`, `decision/far/len5`,
    `index/bytes_per_hour`... Undefined values (None, NaN, inf) are left out."""
    flat: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)

    def put_rates(prefix: str, suffix: str, rates: dict[str, Any] | None) -> None:
        if rates:
            put(f"{prefix}hit_rate/{suffix}", rates.get("hit_rate"))
            put(f"{prefix}segment_hit_rate/{suffix}", rates.get("segment_hit_rate"))
            put(f"{prefix}n/{suffix}", rates.get("n"))
            put(f"{prefix}far/{suffix}", rates.get("far"))

    put_rates("", "all", metrics["all"])
    for lk, block in metrics["by_length"].items():
        put_rates("", f"{lk}/all", block["all"])
        put_rates("", f"{lk}/snr0_reverb", block.get("snr0_reverb"))
        for ck, cell in block["cells"].items():
            put_rates("", f"{lk}/{ck}", cell)
        for sk, rates in block["by_snr"].items():
            put(f"hit_rate_by_snr/{lk}/{sk}", rates["hit_rate"])
        if block["latency_ms"]:
            put(f"latency_ms_p50/{lk}", block["latency_ms"]["p50"])
            put(f"latency_ms_p95/{lk}", block["latency_ms"]["p95"])
    if metrics["latency_ms"]:
        put("latency_ms_p50/all", metrics["latency_ms"]["p50"])
        put("latency_ms_p95/all", metrics["latency_ms"]["p95"])
    for prefix, point in (("open_set/", metrics["open_set"]["at_target_far"]),
                          ("fixed_threshold/", metrics["open_set"]["at_score_threshold"]),
                          ("decision/", metrics["open_set"].get("at_decision"))):
        if point is not None:
            put(f"{prefix}threshold", point.get("threshold"))
            put_rates(prefix, "all", point["all"])
            for lk, rates in point["by_length"].items():
                put_rates(prefix, lk, rates)
    put("index/bytes", metrics["index"]["bytes"])
    put("index/bytes_per_hour", metrics["index"]["bytes_per_hour"])
    return flat

"""Identify every query with one method, then score it: hit rates per query length x concert condition,
open-set rejection at a fixed false-accept rate, latency and index size. No file I/O here (see `report`).

A condition cell is (snr_db, reverb, clipping), named like `snr0_hall_clip0` (`snrinf` = no crowd); a query
length is named like `len5`. A song hit is an in-catalog query whose predicted track is its true track; a
segment hit also lands within `segment_tolerance_s` of the true offset. Out-of-catalog queries have no hits:
they only measure false accepts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from resonance.evaluate.methods import Identification, Method
from resonance.evaluate.queries import REVERBS, Query
from resonance.evaluate.stats import (
    latency_summary,
    score_summary,
    threshold_at_far,
    wilson_interval,
)

METRICS_FORMAT = 1
OFFSET_EPS_S = 1e-9  # float slack on the segment tolerance (an offset exactly at the tolerance counts)


@dataclass(frozen=True)
class QueryResult:
    """One query's truth (from its `Query`), the method's answer and the time `identify` took (ms)."""

    query_id: str
    track_id: str | None
    offset_s: float | None
    length_s: float
    snr_db: float | None
    reverb: str
    rt60_s: float
    clipping: bool
    in_catalog: bool
    predicted_track_id: str | None
    predicted_offset_s: float | None
    score: float
    latency_ms: float

    @classmethod
    def from_query(cls, query: Query, found: Identification, latency_ms: float) -> QueryResult:
        return cls(query.query_id, query.track_id, query.offset_s, query.length_s, query.snr_db, query.reverb,
                   query.rt60_s, query.clipping, query.in_catalog, found.track_id, found.offset_s, found.score,
                   latency_ms)

    @property
    def song_hit(self) -> bool:
        """In catalog and the predicted track is the true one."""
        return self.in_catalog and self.predicted_track_id is not None and self.predicted_track_id == self.track_id

    def segment_hit(self, tolerance_s: float) -> bool:
        """A song hit whose predicted offset is within `tolerance_s` seconds of the true offset."""
        if not self.song_hit or self.predicted_offset_s is None or self.offset_s is None:
            return False
        return abs(self.predicted_offset_s - self.offset_s) <= tolerance_s + OFFSET_EPS_S

    @property
    def accept_score(self) -> float:
        """The score a threshold is compared with: -inf for "no match" (never accepted)."""
        return -math.inf if self.predicted_track_id is None else self.score


def length_key(length_s: float) -> str:
    """`len5` for 5.0 s, `len2.5` for 2.5 s."""
    return f"len{length_s:g}"


def snr_label(snr_db: float | None) -> str:
    """`snr0`, `snr-5`, `snr2.5`; `snrinf` for no crowd (None)."""
    return "snrinf" if snr_db is None else f"snr{snr_db:g}"


def cell_key(snr_db: float | None, reverb: str, clipping: bool) -> str:
    """The condition cell's name, e.g. `snr0_hall_clip0`."""
    return f"{snr_label(snr_db)}_{reverb}_clip{int(clipping)}"


def _snr_order(snr_db: float | None) -> float:
    return math.inf if snr_db is None else snr_db


def _reverb_order(reverb: str) -> int:
    return REVERBS.index(reverb) if reverb in REVERBS else len(REVERBS)


def run_queries(method: Method, queries: Iterable[Query], audio_loader: Callable[[Query], np.ndarray],
                sr: int) -> list[QueryResult]:
    """`method.identify` every query (audio from `audio_loader(query)`, (n_samples,) at `sr` Hz).

    Only the identify call is timed (time.perf_counter), not the loading.
    """
    results = []
    for query in queries:
        audio = audio_loader(query)
        start = time.perf_counter()
        found = method.identify(audio, sr)
        latency_ms = (time.perf_counter() - start) * 1000.0
        if not isinstance(found, Identification):
            raise TypeError(f"{method.name}.identify returned {type(found).__name__}, expected Identification")
        results.append(QueryResult.from_query(query, found, latency_ms))
    return results


def hit_rates(results: Sequence[QueryResult], segment_tolerance_s: float, confidence: float,
              threshold: float | None = None) -> dict[str, Any] | None:
    """Song and segment hit rates with Wilson intervals over the in-catalog `results`; None if there are none.

    With a `threshold`, a hit also needs score >= threshold (an open-set operating point).
    """
    inside = [r for r in results if r.in_catalog]
    if not inside:
        return None
    ok = [threshold is None or r.accept_score >= threshold for r in inside]
    hits = sum(r.song_hit and a for r, a in zip(inside, ok))
    seg = sum(r.segment_hit(segment_tolerance_s) and a for r, a in zip(inside, ok))
    n = len(inside)
    return {"n": n, "hits": hits, "hit_rate": hits / n, "hit_ci": list(wilson_interval(hits, n, confidence)),
            "segment_hits": seg, "segment_hit_rate": seg / n,
            "segment_ci": list(wilson_interval(seg, n, confidence))}


def _grouped(results: Sequence[QueryResult], key: Callable[[QueryResult], Any],
             order: Callable[[Any], Any]) -> list[tuple[Any, list[QueryResult]]]:
    groups: dict[Any, list[QueryResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return sorted(groups.items(), key=lambda kv: order(kv[0]))


def _operating_point(results: Sequence[QueryResult], threshold: float, segment_tolerance_s: float,
                     confidence: float) -> dict[str, Any]:
    """Hit rates (hits need score >= threshold) and the false-accept rate of out-of-catalog queries."""
    out = np.array([r.accept_score for r in results if not r.in_catalog])
    point: dict[str, Any] = {"threshold": threshold, "n_out": int(out.size)}
    if out.size:
        accepted = int(np.count_nonzero(out >= threshold))
        point.update(far=accepted / out.size, far_ci=list(wilson_interval(accepted, out.size, confidence)))
    point["all"] = hit_rates(results, segment_tolerance_s, confidence, threshold)
    point["by_length"] = {length_key(length): hit_rates(group, segment_tolerance_s, confidence, threshold)
                          for length, group in _grouped(results, lambda r: r.length_s, lambda k: k)}
    return point


def open_set_metrics(results: Sequence[QueryResult], target_far: float, score_threshold: float | None,
                     segment_tolerance_s: float, confidence: float) -> dict[str, Any]:
    """Scores of in- vs out-of-catalog queries, the threshold at `target_far` false accepts and the hit rate
    there, and the same at a fixed `score_threshold` (if given). With no out-of-catalog queries, no threshold.

    When at most target_far of out-of-catalog queries were matched at all, the threshold is the lowest score
    of any match (every match is accepted).
    """
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
        at_target = _operating_point(results, threshold, segment_tolerance_s, confidence)
    metrics["at_target_far"] = at_target
    metrics["at_score_threshold"] = (None if score_threshold is None else
                                     _operating_point(results, score_threshold, segment_tolerance_s, confidence))
    return metrics


def compute_metrics(results: Sequence[QueryResult], *, method_name: str, target_far: float,
                    segment_tolerance_s: float, confidence: float, score_threshold: float | None,
                    index_bytes: int, reference_s: float) -> dict[str, Any]:
    """Every metric of one evaluation run, as a JSON-ready dict (see the module docstring for the names).

    Per length: `all` and per-cell hit rates (in-catalog queries), by SNR, by SNR x reverb (for the heatmap,
    with each reverb's mean RT60 in s), latency p50/p95 (ms, all queries of that length). Then `open_set`,
    `latency_ms` over all queries, `index` (bytes, bytes per hour of reference audio) and every `results` row.
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
    tol, conf = segment_tolerance_s, confidence
    by_length: dict[str, Any] = {}
    for length, group in _grouped(results, lambda r: r.length_s, lambda k: k):
        inside = [r for r in group if r.in_catalog]
        cells = {}
        for (snr, reverb, clip), cell in _grouped(inside, lambda r: (r.snr_db, r.reverb, r.clipping),
                                                  lambda k: (_snr_order(k[0]), _reverb_order(k[1]), k[2])):
            cells[cell_key(snr, reverb, clip)] = {"snr_db": snr, "reverb": reverb, "clipping": clip,
                                                  "rt60_s_mean": float(np.mean([r.rt60_s for r in cell])),
                                                  **hit_rates(cell, tol, conf)}
        by_snr = {snr_label(snr): {"snr_db": snr, **hit_rates(cell, tol, conf)}
                  for snr, cell in _grouped(inside, lambda r: r.snr_db, _snr_order)}
        by_snr_reverb = {f"{snr_label(snr)}_{reverb}": {
            "snr_db": snr, "reverb": reverb, "rt60_s_mean": float(np.mean([r.rt60_s for r in cell])),
            **hit_rates(cell, tol, conf)}
            for (snr, reverb), cell in _grouped(inside, lambda r: (r.snr_db, r.reverb),
                                                lambda k: (_snr_order(k[0]), _reverb_order(k[1])))}
        by_length[length_key(length)] = {
            "length_s": length, "n_queries": len(group), "all": hit_rates(group, tol, conf), "cells": cells,
            "by_snr": by_snr, "by_snr_reverb": by_snr_reverb,
            "latency_ms": latency_summary(np.array([r.latency_ms for r in group]))}
    return {
        "format": METRICS_FORMAT,
        "method": method_name,
        "settings": {"target_far": target_far, "segment_tolerance_s": tol, "confidence": conf,
                     "score_threshold": score_threshold},
        "n_queries": len(results),
        "n_in_catalog": sum(r.in_catalog for r in results),
        "n_out_of_catalog": sum(not r.in_catalog for r in results),
        "all": hit_rates(results, tol, conf),
        "by_length": by_length,
        "open_set": open_set_metrics(results, target_far, score_threshold, tol, conf),
        "latency_ms": latency_summary(np.array([r.latency_ms for r in results])),
        "index": {"bytes": int(index_bytes), "reference_s": float(reference_s),
                  "bytes_per_hour": index_bytes / (reference_s / 3600.0)},
        "results": [asdict(r) for r in results],
    }


def evaluate(method: Method, queries: Sequence[Query], audio_loader: Callable[[Query], np.ndarray], *, sr: int,
             reference_s: float, target_far: float, segment_tolerance_s: float, confidence: float,
             score_threshold: float | None) -> dict[str, Any]:
    """Run a built `method` over `queries` and compute every metric (`compute_metrics`).

    sr: the queries' sample rate (Hz); reference_s: seconds of reference audio the method indexed (what
    `methods.build_reference` returns); target_far: e.g. 0.01 for the 1%-false-accept operating point;
    segment_tolerance_s: e.g. 0.5; confidence: of the Wilson intervals, e.g. 0.95; score_threshold: an extra
    fixed operating point to report (None for none).
    """
    if not queries:
        raise ValueError("evaluate: no queries")
    results = run_queries(method, queries, audio_loader, sr)
    return compute_metrics(results, method_name=method.name, target_far=target_far,
                           segment_tolerance_s=segment_tolerance_s, confidence=confidence,
                           score_threshold=score_threshold, index_bytes=method.index_bytes(),
                           reference_s=reference_s)


def flatten_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for MLflow: `hit_rate/len5/snr0_hall_clip0`, `segment_hit_rate/len5/all`,
    `hit_rate_by_snr/len5/snr0`, `latency_ms_p95/len5`, `open_set/hit_rate/len5`, `index/bytes_per_hour`...
    Undefined values (None, NaN, inf) are left out."""
    flat: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)

    def put_rates(prefix: str, suffix: str, rates: dict[str, Any] | None) -> None:
        if rates is not None:
            put(f"{prefix}hit_rate/{suffix}", rates["hit_rate"])
            put(f"{prefix}segment_hit_rate/{suffix}", rates["segment_hit_rate"])
            put(f"{prefix}n/{suffix}", rates["n"])

    put_rates("", "all", metrics["all"])
    for lk, block in metrics["by_length"].items():
        put_rates("", f"{lk}/all", block["all"])
        for ck, cell in block["cells"].items():
            put_rates("", f"{lk}/{ck}", cell)
        for sk, rates in block["by_snr"].items():
            put(f"hit_rate_by_snr/{lk}/{sk}", rates["hit_rate"])
        put(f"latency_ms_p50/{lk}", block["latency_ms"]["p50"])
        put(f"latency_ms_p95/{lk}", block["latency_ms"]["p95"])
    put("latency_ms_p50/all", metrics["latency_ms"]["p50"])
    put("latency_ms_p95/all", metrics["latency_ms"]["p95"])
    for prefix, point in (("open_set/", metrics["open_set"]["at_target_far"]),
                          ("fixed_threshold/", metrics["open_set"]["at_score_threshold"])):
        if point is not None:
            put(f"{prefix}threshold", point["threshold"])
            put(f"{prefix}far", point.get("far"))
            put_rates(prefix, "all", point["all"])
            for lk, rates in point["by_length"].items():
                put_rates(prefix, lk, rates)
    put("index/bytes", metrics["index"]["bytes"])
    put("index/bytes_per_hour", metrics["index"]["bytes_per_hour"])
    return flat

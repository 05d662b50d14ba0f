"""Small statistics for the benchmark: Wilson score intervals, open-set thresholds, latency percentiles."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval (lo, hi) of a binomial proportion successes / n at `confidence` (e.g. 0.95).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
    ValueError if n < 1, successes is outside [0, n] or confidence is outside (0, 1).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"wilson_interval: n must be an integer >= 1, got {n!r}")
    if isinstance(successes, bool) or int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes must be an integer in [0, n={n}], got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"wilson_interval: confidence must be in (0, 1), got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p, z2 = successes / n, z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def threshold_at_far(out_scores: np.ndarray, target_far: float) -> float:
    """Lowest score threshold at which at most `target_far` of out-of-catalog queries are accepted.

    out_scores: float (n,), the accept scores of out-of-catalog queries (-inf for "no match", never accepted).
    A query is accepted when its score >= threshold. With k = floor(target_far * n) false accepts allowed, the
    threshold sits just above the (k + 1)-th highest score (np.nextafter), so ties never push the rate above
    the target. Returns -inf when at most k queries were matched at all (every match may then be accepted).
    ValueError if there are no scores, a NaN, or target_far is outside [0, 1).
    """
    s = np.asarray(out_scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"threshold_at_far: need a non-empty 1-D array of scores, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("threshold_at_far: scores contain NaN")
    if not 0.0 <= target_far < 1.0:
        raise ValueError(f"threshold_at_far: target_far must be in [0, 1), got {target_far!r}")
    k = math.floor(target_far * s.size + 1e-9)  # the 1e-9 keeps 0.01 * 200 from flooring to 1
    kth = np.sort(s)[::-1][k]
    return float("-inf") if kth == -np.inf else float(np.nextafter(kth, np.inf))


def accept_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of `scores` (n,) at or above `threshold` (ValueError if empty)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("accept_rate: no scores")
    return float(np.mean(s >= threshold))


def latency_summary(latency_ms: np.ndarray) -> dict[str, float | int]:
    """{"p50", "p95" (milliseconds), "n"} of per-query latencies (n,) in ms (ValueError if empty)."""
    x = np.asarray(latency_ms, dtype=np.float64)
    if x.size == 0:
        raise ValueError("latency_summary: no latencies")
    p50, p95 = np.percentile(x, [50, 95])
    return {"p50": float(p50), "p95": float(p95), "n": int(x.size)}


def score_summary(scores: np.ndarray) -> dict[str, float | int] | None:
    """{"p5", "p50", "p95", "max", "n"} of the finite scores (n,); None if there are none."""
    x = np.asarray(scores, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    p5, p50, p95 = np.percentile(x, [5, 50, 95])
    return {"p5": float(p5), "p50": float(p50), "p95": float(p95), "max": float(x.max()), "n": int(x.size)}


class ClusterBootstrap:
    """Percentile intervals of hit rates that respect how queries were drawn: resample whole excerpts.

    The queries cut from one excerpt (its lengths, its grid cells) share the music and are not independent, so
    the unit of resampling is the excerpt (a cluster): `n_samples` bootstrap draws of the excerpts with
    replacement, fixed once from `seed` and shared by every subset of queries (each cell, length, method), so
    intervals of different subsets and methods come from the same draws and differences are paired.
    """

    def __init__(self, clusters: list[str], n_samples: int, seed: int) -> None:
        if n_samples < 10:
            raise ValueError(f"ClusterBootstrap: n_samples must be >= 10, got {n_samples}")
        self.names = sorted(set(clusters))
        self.position = {name: i for i, name in enumerate(self.names)}
        rng = np.random.default_rng(seed)
        n = len(self.names)
        self.weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_samples).astype(np.float64)  # (B, n)

    def _per_cluster(self, clusters: list[str], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([self.position[c] for c in clusters], dtype=np.int64)
        n = len(self.names)
        return (np.bincount(idx, weights=values, minlength=n), np.bincount(idx, minlength=n).astype(np.float64))

    def interval(self, clusters: list[str], values: np.ndarray, confidence: float) -> tuple[float, float]:
        """(lo, hi) of the mean of `values` (n,) (hits as 0/1) over the queries, with their `clusters` (n,)."""
        sums, counts = self._per_cluster(clusters, np.asarray(values, dtype=np.float64))
        total = self.weights @ counts
        means = (self.weights @ sums)[total > 0] / total[total > 0]
        lo, hi = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
        return float(lo), float(hi)

    def difference(self, clusters: list[str], a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float]:
        """(lo, hi) of mean(a) - mean(b) for paired values (n,) of the same queries (e.g. two methods)."""
        return self.interval(clusters, np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64),
                             confidence)

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

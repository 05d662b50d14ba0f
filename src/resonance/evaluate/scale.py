"""Top-1 against catalogs of several sizes: does recognition hold when the index grows?

For each size N in `sizes` (and the whole index): a sub-index of N tracks that always holds the songs being
queried. The queried songs are a seeded sample of `min(sizes)` tracks among those the queries come from; the same
queries (their 5 s, 0 dB + reverb ones) are scored against every size, so the comparison is paired.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from resonance.evaluate.queries import Query
from resonance.evaluate.stats import ClusterBootstrap


def select(query: Query, length_s: float) -> bool:
    """The queries the scaling check uses: in catalog, `length_s` long, 0 dB crowd with hall or arena reverb."""
    return query.in_catalog and query.length_s == length_s and query.snr_db == 0 and query.reverb != "dry"


def catalog_scaling(method: Any, queries: list[Query], loader: Callable[[Query], np.ndarray], sr: int,
                    sizes: list[int], seed: int, length_s: float, bootstrap: ClusterBootstrap,
                    confidence: float) -> dict[str, Any] | None:
    """{"sizes": [{"tracks", "n", "hit_rate", "hit_ci"}...], "queried_tracks", "length_s"} for an
    `EmbeddingMethod` whose index holds the whole catalog (restored afterwards); None when the query set has no
    such queries."""
    full = method.index
    all_ids = [t.track_id for t in full.tracks]
    chosen = [q for q in queries if select(q, length_s)]
    if not chosen:
        return None
    songs = sorted({q.track_id for q in chosen})
    rng = np.random.default_rng(seed)
    small = min(min(sizes), len(songs))
    queried = sorted(rng.choice(songs, small, replace=False).tolist())
    chosen = [q for q in chosen if q.track_id in set(queried)]
    others = [t for t in all_ids if t not in set(queried)]
    order = [others[i] for i in rng.permutation(len(others))]
    rows = []
    try:
        for n in [*sorted(sizes), len(all_ids)]:
            ids = queried + order[:max(0, n - len(queried))]
            method._index = full if len(ids) >= len(all_ids) else full.subset(ids)
            hits = np.array([method.identify(loader(q), sr).track_id == q.track_id for q in chosen], dtype=float)
            lo, hi = bootstrap.interval([q.excerpt for q in chosen], hits, confidence)
            rows.append({"tracks": len(ids), "n": len(chosen), "hit_rate": float(hits.mean()), "hit_ci": [lo, hi]})
    finally:
        method._index = full
    return {"length_s": length_s, "queried_tracks": len(queried), "sizes": rows}

"""Identify every query with one method and score each answer (`QueryResult`, `run_queries`, `hit_rates`); the
metrics of a whole run are in `resonance.evaluate.metrics`. No file I/O here (see `report`).

A condition cell is (snr_db, reverb, clipping), named like `snr0_hall_clip0` (`snrinf` = no crowd); a query
length is named like `len5`. A song hit is an in-catalog query whose predicted track is its true track; a
segment hit also lands within `segment_tolerance_s` of the true offset. Out-of-catalog queries have no hits:
they only measure false accepts. Intervals: by an excerpt-level bootstrap when one is given (queries cut from one
excerpt are not independent), else Wilson intervals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from resonance.evaluate.methods import Identification, Method
from resonance.evaluate.queries import REVERBS, Query
from resonance.evaluate.stats import ClusterBootstrap, wilson_interval

OFFSET_EPS_S = 1e-9  # float slack on the segment tolerance (an offset exactly at the tolerance counts)


@dataclass(frozen=True)
class QueryResult:
    """One query's truth (from its `Query`), the method's answer and the time `identify` took (ms)."""

    query_id: str
    excerpt: str
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
    latency_ms: float  # NaN when this query was answered in a shared pass and not timed on its own
    accepted: bool | None = None

    @classmethod
    def from_query(cls, query: Query, found: Identification, latency_ms: float) -> QueryResult:
        return cls(query.query_id, query.excerpt, query.track_id, query.offset_s, query.length_s, query.snr_db,
                   query.reverb, query.rt60_s, query.clipping, query.in_catalog, found.track_id, found.offset_s,
                   found.score, latency_ms, found.accepted)

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
                sr: int, time_every: int = 1, progress: Callable[[int], None] | None = None) -> list[QueryResult]:
    """`method.identify` every query (audio from `audio_loader(query)`, (n_samples,) at `sr` Hz).

    Consecutive queries on one audio file (the prefixes of one clip) go to `method.identify_prefixes` in one call
    when the method has it. Latency is always that of a plain `identify` call on the query alone (time.perf_counter,
    loading excluded): for the queries of every `time_every`-th clip such a call is timed beside the shared pass
    (the others get NaN; 0: none). `progress(n)` is called with the number of queries done after each clip.
    """
    results: list[QueryResult] = []
    groups: list[list[Query]] = []
    for query in queries:
        if groups and groups[-1][0].audio_path == query.audio_path:
            groups[-1].append(query)
        else:
            groups.append([query])
    shared = hasattr(method, "identify_prefixes")
    for g, group in enumerate(groups):
        timed = time_every > 0 and g % time_every == 0
        longest = max(group, key=lambda q: q.length_s)
        audio = audio_loader(longest)
        latency = [float("nan")] * len(group)
        if shared and len(group) > 1:
            found = method.identify_prefixes(audio, sr, [q.length_s for q in group])
            if timed:
                for i, q in enumerate(group):
                    clip = audio[:int(round(q.length_s * sr))]
                    start = time.perf_counter()
                    method.identify(clip, sr)
                    latency[i] = (time.perf_counter() - start) * 1000.0
        else:
            found = []
            for i, q in enumerate(group):
                clip = audio_loader(q) if q is not longest else audio
                start = time.perf_counter()
                found.append(method.identify(clip, sr))
                latency[i] = (time.perf_counter() - start) * 1000.0
        for q, f, ms in zip(group, found, latency):
            if not isinstance(f, Identification):
                raise TypeError(f"{method.name}.identify returned {type(f).__name__}, expected Identification")
            results.append(QueryResult.from_query(q, f, ms))
        if progress is not None:
            progress(len(group))
    return results


def hit_rates(results: Sequence[QueryResult], segment_tolerance_s: float, confidence: float,
              threshold: float | None = None, bootstrap: ClusterBootstrap | None = None,
              own_decision: bool = False) -> dict[str, Any] | None:
    """Song and segment hit rates with intervals over the in-catalog `results`; None if there are none.

    With a `threshold`, a hit also needs score >= threshold; with `own_decision`, the method's own acceptance (an
    open-set operating point). Intervals: excerpt-level bootstrap with `bootstrap`, else Wilson.
    """
    inside = [r for r in results if r.in_catalog]
    if not inside:
        return None
    ok = [(threshold is None or r.accept_score >= threshold) and (not own_decision or bool(r.accepted))
          for r in inside]
    song = np.array([r.song_hit and a for r, a in zip(inside, ok)], dtype=np.float64)
    seg = np.array([r.segment_hit(segment_tolerance_s) and a for r, a in zip(inside, ok)], dtype=np.float64)
    n, hits, seg_hits = len(inside), int(song.sum()), int(seg.sum())
    if bootstrap is not None:
        clusters = [r.excerpt for r in inside]
        hit_ci, seg_ci = (bootstrap.interval(clusters, v, confidence) for v in (song, seg))
    else:
        hit_ci, seg_ci = wilson_interval(hits, n, confidence), wilson_interval(seg_hits, n, confidence)
    return {"n": n, "hits": hits, "hit_rate": hits / n, "hit_ci": list(hit_ci), "segment_hits": seg_hits,
            "segment_hit_rate": seg_hits / n, "segment_ci": list(seg_ci),
            "n_excerpts": len({r.excerpt for r in inside})}


def _grouped(results: Sequence[QueryResult], key: Callable[[QueryResult], Any],
             order: Callable[[Any], Any]) -> list[tuple[Any, list[QueryResult]]]:
    groups: dict[Any, list[QueryResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return sorted(groups.items(), key=lambda kv: order(kv[0]))

"""Sequence search: every query window's neighbours propose (track, offset); each proposal is then scored by ALL
the query's windows against the reference windows aligned with it.

A query is embedded as windows i = 0..m-1 starting at i * query_hop_s seconds; the index holds one window of each
track every hop_s seconds (slot j starts at j * hop_s). A neighbour of window i in slot j of track t proposes that
the query starts at o = j * hop_s - i * query_hop_s in t, rounded to the query hop. Proposals are ranked by the
summed similarity of the neighbours supporting them (within one query hop), and the best `max_candidates` are
re-scored: for candidate (t, o), window i is compared with the reference window(s) of t at o + i * query_hop_s;
a window that falls between two reference windows (query hop 0.25 s vs reference hop 0.5 s) takes the better of
the two. So a song whose windows each rank only 30th still wins when all of them line up, where a vote over
top-k lists never sees it.

Candidates are ranked by their mean cosine over the query's usable windows (a window with no aligned reference
window, past the end of the track or masked, counts 0). Whether the best is accepted is judged on its similarity
normalised against each window's background (`Background`: how similar this query window is to random catalog
windows anyway, the adaptive-cohort normalisation of speaker verification and the query side of CSLS):
z_i = (s_i - mu_i) / sigma_i, averaged the same way. Pure numpy on the index's float vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resonance.index.store import EmbeddingIndex

EPS = 1e-6


@dataclass(frozen=True)
class Candidate:
    """One scored (track, offset): `track` a position in index.tracks; `offset_s` where the query starts in it
    (s, may be < 0 when the query began before the track); `similarity` the mean cosine of the usable query
    windows with their aligned reference windows (0 for a window without one): candidates are ranked by it;
    `score` the same mean of the background-normalised similarities (= similarity without a background): the
    open-set decision is judged on it; `n_aligned` windows had a reference window."""

    track: int
    offset_s: float
    score: float
    similarity: float
    n_aligned: int


@dataclass(frozen=True)
class SequenceResult:
    """The best candidate, the best candidate of ANOTHER track (`runner_up`), and how much evidence there was:
    n_windows query windows, n_usable of them not silent, n_candidates re-scored; `sidelobe`: the same track
    scored (like `best.score`) with the query moved by each sidelobe offset both ways, the highest of them: a
    true match is a peak in offset, a stationary passage (a drone, a pad, noise) scores about as well anywhere."""

    best: Candidate | None
    runner_up: Candidate | None
    n_windows: int
    n_usable: int
    n_candidates: int
    sidelobe: float | None = None  # the best track's highest score at the sidelobe offsets (None: not measured)

    @property
    def margin(self) -> float:
        """best.score - runner_up.score (best.score when there is no runner-up; 0 without a best)."""
        if self.best is None:
            return 0.0
        return self.best.score - (self.runner_up.score if self.runner_up is not None else 0.0)


@dataclass(frozen=True)
class Background:
    """Per usable query window: mu (m_usable,) and sigma (m_usable,) of its similarity to random catalog windows."""

    mu: np.ndarray
    sigma: np.ndarray


def propose(index: EmbeddingIndex, scores: np.ndarray, rows: np.ndarray, window_idx: np.ndarray,
            query_hop_s: float, max_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidates the neighbours propose: (track (C,) int64, offset in query hops (C,) int64), heaviest
    first, C <= max_candidates. scores, rows (mu, k) from `search_rows`; window_idx (mu,) the windows' numbers."""
    ok = (rows >= 0) & (scores > 0)
    if not ok.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    i = np.broadcast_to(window_idx[:, None], rows.shape)[ok]
    r, s = rows[ok], scores[ok].astype(np.float64)
    t = index.row_track()[r].astype(np.int64)
    b = np.rint(index.row_slot()[r] * (index.hop_s / query_hop_s) - i).astype(np.int64)
    # Rank: a proposal supports its own offset (weight s) and the two next to it (s / 2; the query and reference
    # grids do not line up); each window counts once per (track, offset), with its strongest support.
    t3, b3, i3 = np.tile(t, 3), np.concatenate([b - 1, b, b + 1]), np.tile(i, 3)
    s3 = np.concatenate([0.5 * s, s, 0.5 * s])
    order = np.lexsort((-s3, i3, b3, t3))
    t3, b3, s3, i3 = t3[order], b3[order], s3[order], i3[order]
    first = np.ones(t3.size, dtype=bool)
    first[1:] = (t3[1:] != t3[:-1]) | (b3[1:] != b3[:-1]) | (i3[1:] != i3[:-1])
    keys, inverse = np.unique(np.stack([t3[first], b3[first]], axis=1), axis=0, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=s3[first], minlength=keys.shape[0])
    # Candidates: only offsets some neighbour proposed itself, heaviest first.
    own = np.unique(np.stack([t, b], axis=1), axis=0)
    at = _find_rows(keys, own)
    top = np.argsort(-weight[at], kind="stable")[:max_candidates]
    return own[top, 0], own[top, 1]


def _find_rows(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in `keys` (unique (n, 2) rows, lexicographically sorted) of each row of `wanted` (all present)."""
    span = int(max(keys[:, 1].max(), wanted[:, 1].max()) - min(keys[:, 1].min(), wanted[:, 1].min()) + 1)
    lo = min(keys[:, 1].min(), wanted[:, 1].min())
    flat_keys = keys[:, 0] * span + (keys[:, 1] - lo)
    return np.searchsorted(flat_keys, wanted[:, 0] * span + (wanted[:, 1] - lo))


def aligned_similarity(index: EmbeddingIndex, queries: np.ndarray, window_idx: np.ndarray, track: np.ndarray,
                       offset_hops: np.ndarray, query_hop_s: float) -> np.ndarray:
    """(C, mu) cosine of each query window with the reference window of each candidate aligned with it (the
    better of the two neighbours when it falls between them); -inf where the candidate's track has no indexed
    window there. queries (mu, dim) the usable windows, window_idx (mu,) their numbers."""
    first, slot_rows = index.slot_rows()
    n_slots = np.diff(first)
    pos = (offset_hops[:, None] + window_idx[None, :]) * (query_hop_s / index.hop_s)  # (C, mu) in slots
    best = np.full(pos.shape, -np.inf, dtype=np.float32)
    vectors = index.vectors()
    for j in (np.floor(pos + EPS), np.ceil(pos - EPS)):
        j = j.astype(np.int64)
        inside = (j >= 0) & (j < n_slots[track][:, None])
        row = np.where(inside, slot_rows[np.where(inside, first[track][:, None] + j, 0)], -1)
        have = row >= 0
        sims = np.full(pos.shape, -np.inf, dtype=np.float32)
        if have.any():
            c, w = np.nonzero(have)
            sims[c, w] = np.einsum("nd,nd->n", vectors[row[c, w]], queries[w])
        best = np.maximum(best, sims)
    return best


def sequence_search(index: EmbeddingIndex, queries: np.ndarray, usable: np.ndarray, query_hop_s: float, top_k: int,
                    max_candidates: int, background: Background | None = None,
                    sidelobe_s: tuple[float, ...] = ()) -> SequenceResult:
    """Search one query: queries (m, dim) unit rows of windows every query_hop_s seconds; usable (m,) bool (the
    silent ones are no evidence); background for the usable windows (None: mu 0, sigma 1, raw cosine)."""
    window_idx = np.flatnonzero(usable)
    q = np.ascontiguousarray(queries[window_idx], dtype=np.float32)
    scores, rows = index.search_rows(q, top_k) if window_idx.size and index.n_windows else (None, None)
    return rescore(index, q, window_idx, int(queries.shape[0]), scores, rows, query_hop_s, max_candidates,
                   background, sidelobe_s)


def rescore(index: EmbeddingIndex, queries: np.ndarray, window_idx: np.ndarray, n_windows: int,
            scores: np.ndarray | None, rows: np.ndarray | None, query_hop_s: float, max_candidates: int,
            background: Background | None, sidelobe_s: tuple[float, ...] = ()) -> SequenceResult:
    """`sequence_search` from the usable windows' embeddings queries (mu, dim), their numbers window_idx (mu,) and
    their top-k neighbours (scores, rows (mu, k) from `search_rows`, already looked up), of a query of n_windows;
    with sidelobe_s (seconds), the best track is also scored at its best offset +- each of them (`sidelobe`)."""
    n_usable = int(window_idx.size)
    if n_usable == 0 or scores is None or rows is None:
        return SequenceResult(None, None, n_windows, n_usable, 0)
    track, hops = propose(index, scores, rows, window_idx, query_hop_s, max_candidates)
    if track.size == 0:
        return SequenceResult(None, None, n_windows, n_usable, 0)
    sims = aligned_similarity(index, queries, window_idx, track, hops, query_hop_s)
    aligned = np.isfinite(sims)
    similarity = np.where(aligned, sims, 0.0).sum(axis=1) / n_usable  # raw: ranks the candidates
    score = _normalised(sims, background, n_usable) if background is not None else similarity
    n_aligned = aligned.sum(axis=1)
    order = np.lexsort((hops, track, -similarity))  # most similar first; ties: lower track, then earlier offset

    def cand(c: int) -> Candidate:
        return Candidate(int(track[c]), float(hops[c] * query_hop_s), float(score[c]), float(similarity[c]),
                         int(n_aligned[c]))

    best = int(order[0])
    other = next((int(c) for c in order if track[c] != track[best]), None)
    sidelobe = None
    if sidelobe_s:
        shift = np.array(sorted({int(round(s / query_hop_s)) for s in sidelobe_s} - {0}), dtype=np.int64)
        side_hops = np.concatenate([hops[best] - shift, hops[best] + shift])
        side = aligned_similarity(index, queries, window_idx, np.full(side_hops.size, track[best]), side_hops,
                                  query_hop_s)
        side_score = _normalised(side, background, n_usable) if background is not None else \
            np.where(np.isfinite(side), side, 0.0).sum(axis=1) / n_usable
        sidelobe = float(side_score.max())
    return SequenceResult(cand(best), cand(other) if other is not None else None, n_windows, n_usable,
                          int(track.size), sidelobe)


def _normalised(sims: np.ndarray, background: Background, n_usable: int) -> np.ndarray:
    """(C,) mean over the n_usable windows of (s - mu) / sigma, 0 for a window without an aligned reference."""
    aligned = np.isfinite(sims)
    return np.where(aligned, (sims - background.mu) / background.sigma, 0.0).sum(axis=1) / n_usable

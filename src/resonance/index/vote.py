"""The temporal-consistency decision: which (track, offset) do a query's window neighbours agree on.

A query is embedded as windows i = 0..m-1 starting at i * query_hop_s seconds. Each window's top-k neighbours
in the index, (similarity s, track t, reference start r seconds), propose that the query starts at offset
o = r - i * query_hop_s in track t. The right answer collects many proposals with the same (t, o); chance
neighbours scatter over tracks and offsets.

Voting (pure numpy):
1. Each neighbour with s > 0 is a vote in bin (t, b), b = round(o / hop_s), hop_s = the reference hop.
2. A vote also supports the two neighbouring bins (a tolerance of one bin: the query's hop grid and the
   reference grid do not line up, so the true offset's votes spread over adjacent bins).
3. A query window votes at most once per candidate (t, b): with its best similarity among the neighbours
   supporting it. The candidate's weight is the sum of those per-window similarities; the heaviest wins
   (ties: lowest track index, then lowest bin).
4. The winner's supporting windows ("agreeing" windows) give the offset: the similarity-weighted median of
   their best votes' offsets, clipped to >= 0.

Confidence (in [0, 1]):

    confidence = (1 / m) * sum over agreeing windows i of max(0, s_i)  =  share * mean_similarity

where s_i is window i's best similarity supporting the winner, share = n_agree / m is the fraction of the
query's windows that agree, and mean_similarity the mean s_i over them. It is 1 only when every query window's
neighbours include the winner at similarity 1, and grows with both the similarity and the agreement. The
threshold on it (`embedding.min_confidence`) is set from the evaluation's 1%-false-accept operating point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VoteResult:
    """The decision for one query.

    track: index of the winning track in the index's track list (None when no neighbour had similarity > 0);
    offset_s: where the query starts in that track (seconds, >= 0; 0.0 when track is None); confidence in
    [0, 1] (see the module docstring); n_agree of n_windows query windows support the winner, with mean
    similarity mean_similarity.
    """

    track: int | None
    offset_s: float
    confidence: float
    n_agree: int
    n_windows: int
    mean_similarity: float


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value where the cumulative weight (sorted by value) first reaches half the total."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    return float(v[int(np.searchsorted(cum, 0.5 * cum[-1]))])


def vote(scores: np.ndarray, track_idx: np.ndarray, start_s: np.ndarray, query_hop_s: float,
         hop_s: float) -> VoteResult:
    """Decide track and offset from the neighbours of m query windows.

    scores (m, k): inner-product similarities (cosine for unit vectors) of each query window's k neighbours;
    track_idx (m, k) int: their tracks (-1 = no neighbour); start_s (m, k): their reference start times (s).
    query_hop_s: seconds between query windows; hop_s: seconds between reference windows (the bin width).
    """
    scores = np.asarray(scores, dtype=np.float64)
    track_idx = np.asarray(track_idx, dtype=np.int64)
    start_s = np.asarray(start_s, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != track_idx.shape or scores.shape != start_s.shape:
        raise ValueError(f"vote: scores, track_idx and start_s must be (m, k) of one shape, got "
                         f"{scores.shape}, {track_idx.shape}, {start_s.shape}")
    if query_hop_s <= 0 or hop_s <= 0:
        raise ValueError(f"vote: query_hop_s and hop_s must be > 0, got {query_hop_s}, {hop_s}")
    m = scores.shape[0]
    none = VoteResult(None, 0.0, 0.0, 0, m, 0.0)
    offsets = start_s - (np.arange(m, dtype=np.float64) * query_hop_s)[:, None]
    valid = (track_idx >= 0) & np.isfinite(scores) & (scores > 0) & np.isfinite(offsets)
    if m == 0 or not valid.any():
        return none
    q = np.broadcast_to(np.arange(m)[:, None], scores.shape)[valid]
    t, s, o = track_idx[valid], scores[valid], offsets[valid]
    b = np.rint(o / hop_s).astype(np.int64)

    # Every vote supports its bin and both neighbours; keep each window's best vote per candidate.
    cq, ct, cs = np.tile(q, 3), np.tile(t, 3), np.tile(s, 3)
    cb = np.concatenate([b - 1, b, b + 1])
    order = np.lexsort((-cs, cb, ct, cq))  # by window, track, bin, then best similarity first
    cq, ct, cb, cs = cq[order], ct[order], cb[order], cs[order]
    first = np.ones(cq.size, dtype=bool)
    first[1:] = (cq[1:] != cq[:-1]) | (ct[1:] != ct[:-1]) | (cb[1:] != cb[:-1])
    ct, cb, cs = ct[first], cb[first], cs[first]

    # Sum per candidate (track, bin); the heaviest wins.
    cand = np.stack([ct, cb], axis=1)
    keys, inverse = np.unique(cand, axis=0, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=cs, minlength=keys.shape[0])
    win_track, win_bin = (int(x) for x in keys[int(np.argmax(weight))])

    # The agreeing windows: each one's best vote within one bin of the winner.
    support = (t == win_track) & (np.abs(b - win_bin) <= 1)
    sq, ss, so = q[support], s[support], o[support]
    order = np.lexsort((-ss, sq))
    sq, ss, so = sq[order], ss[order], so[order]
    best = np.ones(sq.size, dtype=bool)
    best[1:] = sq[1:] != sq[:-1]
    ss, so = ss[best], so[best]
    n_agree = int(ss.size)
    mean_sim = float(np.clip(ss.mean(), 0.0, 1.0))
    confidence = float(np.clip(np.clip(ss, 0.0, 1.0).sum() / m, 0.0, 1.0))
    offset = max(0.0, _weighted_median(so, ss))
    return VoteResult(win_track, offset, confidence, n_agree, m, mean_sim)

"""The validation retrieval check behind early stopping: a small index of clean `val` windows and concert
queries inside it, drawn once from the seed, and the top-1 score of a model on it.

Reference windows: a `segment_s` stretch of each val track, windowed at the model hop. Queries: `query_s`
excerpts inside each stretch, through a concert preset, windowed every `query_hop_s`. A query is a hit when the
track most of its windows' nearest reference windows belong to is its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resonance.config import SimulateParams, TrainVal
from resonance.model.frontend import window_samples, windows
from resonance.simulate.chain import Banks
from resonance.train.data import MAX_DRAWS, TrackFile, audible, concert_view, read_segment


@dataclass(frozen=True)
class ValSet:
    """audio: (n_rows, window) float32; the first n_ref rows are reference windows, the rest query windows.
    ref_track: (n_ref,) track index per reference window; query_of: (n_rows - n_ref,) query index per query
    window; query_track: (n_queries,) true track index per query."""

    audio: np.ndarray
    n_ref: int
    ref_track: np.ndarray
    query_of: np.ndarray
    query_track: np.ndarray


def build_valset(tracks: list[TrackFile], val: TrainVal, sim: SimulateParams, banks: Banks, window_s: float,
                 hop_s: float, preroll_s: float, seed: int) -> ValSet:
    """Draw the validation index and queries (deterministic in `seed`)."""
    sr = banks.sr
    rng = np.random.default_rng([seed, 777])
    chosen = tracks if val.tracks == 0 else tracks[:val.tracks]
    seg, qlen = window_samples(sr, val.segment_s, "val.segment_s"), window_samples(sr, val.query_s, "val.query_s")
    preroll = int(round(preroll_s * sr))
    refs, ref_track, queries, query_of, query_track = [], [], [], [], []
    for k, track in enumerate(chosen):
        start = int(rng.integers(0, max(1, track.n_samples - seg - preroll))) + preroll
        clean = read_segment(track, start - preroll, seg + preroll)
        ref = windows(clean[preroll:], sr, window_s, hop_s)
        refs.append(np.array(ref))
        ref_track += [k] * ref.shape[0]
        for _ in range(val.queries_per_track):
            starts = [int(rng.integers(0, seg - qlen + 1)) + preroll for _ in range(MAX_DRAWS)]
            q0 = next((q for q in starts if audible(clean[q:q + qlen])), None)
            if q0 is None:  # a silent stretch: no query from this track
                continue
            view = concert_view(clean[q0 - preroll:q0 + qlen], preroll, rng, val.presets, sim, banks)
            w = windows(view, sr, window_s, val.query_hop_s)
            query_of += [len(query_track)] * w.shape[0]
            queries.append(np.array(w))
            query_track.append(k)
    audio = np.concatenate(refs + queries).astype(np.float32)
    n_ref = len(ref_track)
    return ValSet(audio, n_ref, np.array(ref_track), np.array(query_of), np.array(query_track))


def retrieval_scores(z: np.ndarray, valset: ValSet) -> dict[str, float]:
    """Top-1 of a model on the valset from its embeddings z (n_rows, dim): `top1` (per query, majority vote of
    its windows' nearest tracks) and `window_top1` (per query window)."""
    ref, qz = z[:valset.n_ref], z[valset.n_ref:]
    nearest = valset.ref_track[np.argmax(qz @ ref.T, axis=1)]  # (n_query_windows,)
    truth = valset.query_track[valset.query_of]
    hits = 0
    for q, track in enumerate(valset.query_track):
        votes = np.bincount(nearest[valset.query_of == q], minlength=valset.ref_track.max() + 1)
        hits += int(np.argmax(votes) == track)
    return {"top1": hits / len(valset.query_track), "window_top1": float(np.mean(nearest == truth))}

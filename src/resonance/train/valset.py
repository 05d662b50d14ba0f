"""The validation retrieval check behind checkpoint selection and early stopping: clean reference windows of the
`val` tracks among tens of thousands of distractor windows, and concert queries inside them, drawn once from the
seed; a model is scored on it at the query level (top-1) and at the window level (recall@10, similarity gap).

Reference windows: a `segment_s` stretch of each val track, windowed at the model hop. Distractors: clean windows
of `train` tracks every `distractor_hop_s` (contiguous stretches; never a val track), so the index is as crowded
as a real catalog. Queries: `query_s` excerpts inside each val stretch, through a concert preset, windowed every
`query_hop_s`. Query level: a query is a hit when the track most of its windows' nearest reference windows
belong to is its own. Window level: each query window's aligned reference windows (the one at or before its
start and the one after: query and reference grids do not line up) should rank in its top 10 of ALL reference
windows (`window_recall`), and clear the 10th best window of another track by a margin (`gap`, in cosine): both
move long before top-1 does. Audio is stored once as 16-bit samples (the test queries are 16-bit FLACs too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resonance.config import SimulateParams, TrainVal
from resonance.model.frontend import window_samples
from resonance.simulate.chain import Banks
from resonance.train.data import MAX_DRAWS, TrackFile, audible, concert_view, read_segment

SCALE = 32767.0
DISTRACTOR_STRETCH_S = 60.0


@dataclass(frozen=True)
class ValSet:
    """audio: (n_samples,) int16, every stretch back to back; row_start: (n_rows,) int64, where each row's window
    starts in `audio` (window samples long). The first n_ref rows are reference windows (val stretches, then
    distractors), the rest query windows. ref_track: (n_ref,) track index per reference row (-1: a distractor);
    query_of: (n_rows - n_ref,) query index per query window; query_track: (n_queries,) true track per query;
    query_ref: (n_rows - n_ref, 2) the reference rows aligned with each query window."""

    audio: np.ndarray
    row_start: np.ndarray
    window: int
    n_ref: int
    ref_track: np.ndarray
    query_of: np.ndarray
    query_track: np.ndarray
    query_ref: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.row_start.size)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as float32 (stop - start, window) audio in [-1, 1]."""
        idx = self.row_start[start:stop, None] + np.arange(self.window)[None, :]
        return self.audio[idx].astype(np.float32) / SCALE


def _pcm(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * SCALE).astype(np.int16)


def build_valset(tracks: list[TrackFile], val: TrainVal, sim: SimulateParams, banks: Banks, window_s: float,
                 hop_s: float, preroll_s: float, seed: int, distractor_tracks: list[TrackFile] | None = None) -> ValSet:
    """Draw the validation index (val stretches + distractors) and queries (deterministic in `seed`)."""
    sr = banks.sr
    rng = np.random.default_rng([seed, 777])
    chosen = tracks if val.tracks == 0 else tracks[:val.tracks]
    win, hop = window_samples(sr, window_s, "window_s"), window_samples(sr, hop_s, "hop_s")
    qhop = window_samples(sr, val.query_hop_s, "val.query_hop_s")
    seg, qlen = window_samples(sr, val.segment_s, "val.segment_s"), window_samples(sr, val.query_s, "val.query_s")
    preroll = int(round(preroll_s * sr))
    chunks: list[np.ndarray] = []
    offset = 0

    def put(x: np.ndarray) -> int:
        nonlocal offset
        chunks.append(_pcm(x))
        offset += x.size
        return offset - x.size

    ref_start, ref_track, queries = [], [], []
    for k, track in enumerate(chosen):
        start = int(rng.integers(0, max(1, track.n_samples - seg - preroll))) + preroll
        clean = read_segment(track, start - preroll, seg + preroll)
        at = put(clean[preroll:])
        n_win = 1 + (seg - win) // hop
        first_row = len(ref_start)
        ref_start += [at + j * hop for j in range(n_win)]
        ref_track += [k] * n_win
        for _ in range(val.queries_per_track):
            starts = [int(rng.integers(0, seg - qlen + 1)) + preroll for _ in range(MAX_DRAWS)]
            q0 = next((q for q in starts if audible(clean[q:q + qlen])), None)
            if q0 is None:  # a silent stretch: no query from this track
                continue
            view = concert_view(clean[q0 - preroll:q0 + qlen], preroll, rng, val.presets, sim, banks)
            queries.append((k, q0 - preroll, put(view), first_row, n_win))
    for track, start, n in _distractor_stretches(distractor_tracks or [], val, sr, win, rng):
        at = put(read_segment(track, start, n))
        n_win = 1 + (n - win) // hop
        ref_start += [at + j * hop for j in range(n_win)]
        ref_track += [-1] * n_win
    q_start, query_of, query_track, query_ref = [], [], [], []
    for q, (k, rel, at, first_row, n_win) in enumerate(queries):
        n_qw = 1 + (qlen - win) // qhop
        for i in range(n_qw):
            t = rel + i * qhop  # the window's start in the val stretch (samples)
            lo = min(n_win - 1, t // hop)
            query_ref.append((first_row + lo, first_row + min(n_win - 1, lo + (t % hop > 0))))
            q_start.append(at + i * qhop)
            query_of.append(q)
        query_track.append(k)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return ValSet(audio, np.array(ref_start + q_start, dtype=np.int64), win, len(ref_start),
                  np.array(ref_track, dtype=np.int64), np.array(query_of, dtype=np.int64),
                  np.array(query_track, dtype=np.int64), np.array(query_ref, dtype=np.int64).reshape(-1, 2))


def _distractor_stretches(tracks: list[TrackFile], val: TrainVal, sr: int, win: int,
                          rng: np.random.Generator) -> list[tuple[TrackFile, int, int]]:
    """(track, start sample, length) of contiguous stretches holding `val.distractors` windows in all."""
    if not tracks or val.distractors == 0:
        return []
    hop = window_samples(sr, val.distractor_hop_s, "val.distractor_hop_s")
    per = 1 + (int(DISTRACTOR_STRETCH_S * sr) - win) // hop
    out, left = [], val.distractors
    weights = np.array([t.n_samples for t in tracks], dtype=np.float64)
    while left > 0:
        track = tracks[int(rng.choice(len(tracks), p=weights / weights.sum()))]
        n_win = min(per, left, 1 + (track.n_samples - win) // hop)
        if n_win < 1:
            continue
        n = win + (n_win - 1) * hop
        out.append((track, int(rng.integers(0, max(1, track.n_samples - n))), n))
        left -= n_win
    return out


def retrieval_scores(z: np.ndarray, valset: ValSet, chunk: int = 512) -> dict[str, float]:
    """Scores of a model on the valset from its embeddings z (n_rows, dim) unit rows: `top1` (per query, the
    majority vote of its windows' nearest tracks), `window_top1` (per query window), `window_recall` (an aligned
    reference window in the top 10 of all reference windows) and `gap` (mean cosine of the better aligned window
    minus the 10th best window of another track)."""
    ref, qz = z[:valset.n_ref], z[valset.n_ref:]
    truth = valset.query_track[valset.query_of]
    nearest = np.empty(qz.shape[0], dtype=np.int64)
    recall, gap = np.zeros(qz.shape[0]), np.zeros(qz.shape[0])
    for a in range(0, qz.shape[0], chunk):
        sims = qz[a:a + chunk] @ ref.T  # (c, n_ref)
        rows = np.arange(sims.shape[0])
        nearest[a:a + chunk] = valset.ref_track[np.argmax(sims, axis=1)]
        aligned = valset.query_ref[a:a + chunk]
        top10 = np.argpartition(-sims, min(10, sims.shape[1] - 1), axis=1)[:, :10]
        recall[a:a + chunk] = (top10 == aligned[:, :1]).any(1) | (top10 == aligned[:, 1:]).any(1)
        true = np.maximum(sims[rows, aligned[:, 0]], sims[rows, aligned[:, 1]])
        other = np.where(valset.ref_track[None, :] == truth[a:a + chunk, None], -np.inf, sims)
        tenth = -np.partition(-other, min(9, other.shape[1] - 1), axis=1)[:, min(9, other.shape[1] - 1)]
        gap[a:a + chunk] = true - tenth
    hits = 0
    n_tracks = int(valset.ref_track.max()) + 2
    for q, track in enumerate(valset.query_track):
        votes = np.bincount(nearest[valset.query_of == q] + 1, minlength=n_tracks)  # +1: distractors vote -1
        hits += int(np.argmax(votes) - 1 == track)
    return {"top1": hits / len(valset.query_track), "window_top1": float(np.mean(nearest == truth)),
            "window_recall": float(recall.mean()), "gap": float(gap.mean())}

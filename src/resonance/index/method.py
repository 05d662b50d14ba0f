"""The embedding recognizer as an evaluation `Method` (name "embedding"): embed, search, decide.

Reference tracks are embedded at the model's hop (`Embedder`, window_s windows every hop_s seconds) into an
`EmbeddingIndex`, their silent windows masked. A query is embedded every `query_hop_s` seconds; its silent windows
are no evidence; then the decision named by `embedding.decision`:
- `sequence` (default, `resonance.index.sequence`): top-k neighbours propose (track, offset) candidates, each
  re-scored by all the query's windows against the aligned reference windows, normalised by the calibration's
  background cohort;
- `vote` (the earlier decision, `resonance.index.vote`): top-k neighbours vote for (track, offset) bins.
The decision's score is compared with the threshold the calibration stored for the query's length (chosen on the
val queries at 1% false accepts), and mapped to a calibrated confidence (`resonance.index.calibration`).
Audio is mono float32 (n_samples,) at the model's sample rate throughout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from resonance.config.embedding import EmbeddingParams
from resonance.evaluate.methods import Identification
from resonance.index.calibration import Calibration
from resonance.index.sequence import Background, SequenceResult, rescore
from resonance.index.store import EmbeddingIndex, EmbeddingIndexError, TrackInfo
from resonance.index.usable import usable_windows
from resonance.index.vote import VoteResult, vote
from resonance.model.embedder import Embedder, EmbeddingModel

SCORES = ("score", "margin", "blend", "peak")  # what a sequence decision's score is (see `decision_score`)


def model_sha256(model: EmbeddingModel) -> str:
    """sha256 of a model's config (sorted JSON) and weights (every state-dict tensor's name, dtype, shape and
    bytes, in name order): the same whether the model came from model.pt or from MLflow."""
    h = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        h.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def decision_score(result: SequenceResult | VoteResult, kind: str) -> float:
    """The number a sequence decision is thresholded on: `score` (the best candidate's mean normalised
    similarity), `margin` (best minus the best candidate of another track), `blend` (score + margin) or `peak`
    (score minus the best track's own best score at the sidelobe offsets, 0 when higher: a match must stand out
    in offset, not only in track). A vote's score is its confidence. -inf when there is no candidate."""
    if isinstance(result, VoteResult):
        return result.confidence if result.track is not None else -np.inf
    if result.best is None:
        return -np.inf
    if kind == "score":
        return result.best.score
    if kind == "margin":
        return result.margin
    if kind == "blend":
        return result.best.score + result.margin
    if kind == "peak":
        if result.sidelobe is None:
            raise ValueError("decision score `peak` needs the sidelobes: rescore(..., sidelobe_s=...)")
        return result.best.score - max(0.0, result.sidelobe)
    raise ValueError(f"unknown decision score {kind!r}; known: {', '.join(SCORES)}")


@dataclass(frozen=True)
class Evidence:
    """A query's windows as every decision sees them: n_windows in all; window_idx (mu,) the numbers of the usable
    ones, queries (mu, dim) their embeddings, scores and rows (mu, k) their neighbours (None without any), and
    background their cohort background (None: raw cosine)."""

    n_windows: int
    window_idx: np.ndarray
    queries: np.ndarray
    scores: np.ndarray | None
    rows: np.ndarray | None
    background: Background | None


@dataclass(frozen=True)
class Match:
    """One recognition.

    track: the answer (None: no match); guess: the best candidate whether accepted or not (None when there was
    nothing to judge); offset_s: where the query starts in `guess` (s, >= 0); runner_up: the best other track;
    score: the decision score, compared with `threshold` (None without a calibration); accepted: score >=
    threshold; confidence: calibrated probability in [0, 1] that `guess` is right; reason: None for an answer,
    else why not: "too_short" (under one window), "silent" (no usable window), "no_candidate",
    "below_threshold"; n_windows query windows, n_usable of them not silent; result: the raw decision."""

    track: TrackInfo | None
    guess: TrackInfo | None
    offset_s: float | None
    runner_up: TrackInfo | None
    score: float
    threshold: float | None
    accepted: bool
    confidence: float
    reason: str | None
    n_windows: int
    n_usable: int
    result: SequenceResult | VoteResult | None


class EmbeddingMethod:
    """Learned-embedding recognition; `identify` scores with the decision score (see `decision_score`)."""

    name = "embedding"

    def __init__(self, embedder: Embedder, config: EmbeddingParams, calibration: Calibration | None = None) -> None:
        self.embedder = embedder
        self.config = config
        self.model_sha256 = model_sha256(embedder.model)
        self.calibration = calibration
        self._index: EmbeddingIndex | None = None
        if calibration is not None and calibration.model_sha256 != self.model_sha256:
            from resonance.index.calibration import CalibrationError

            raise CalibrationError("the calibration was made for another model: re-run `resonance calibrate`")

    @classmethod
    def with_index(cls, embedder: Embedder, config: EmbeddingParams, index: EmbeddingIndex,
                   calibration: Calibration | None = None) -> EmbeddingMethod:
        """A method ready to identify against an already built (e.g. loaded) index of the same model."""
        method = cls(embedder, config, calibration)
        if index.model_sha256 != method.model_sha256:
            raise EmbeddingIndexError(f"the index was built with another model (sha256 {index.model_sha256[:12]}..."
                                      f", this model is {method.model_sha256[:12]}...): rebuild the index")
        method._index = index
        return method

    @property
    def index(self) -> EmbeddingIndex:
        """The reference index (RuntimeError before `build`)."""
        if self._index is None:
            raise RuntimeError(f"{self.name}: no index yet: call build() (or use with_index) first")
        return self._index

    def _check_sr(self, sr: int) -> None:
        if sr != self.embedder.sr:
            raise ValueError(f"{self.name}: audio at {sr} Hz, but the model works at {self.embedder.sr} Hz")

    def new_index(self) -> EmbeddingIndex:
        """An empty index for this model (its dim, window and fingerprint), with reference windows every
        `embedding.reference_hop_s` seconds (default: the model's hop)."""
        e = self.embedder
        return EmbeddingIndex(e.dim, e.window_s, self.config.reference_hop_s or e.hop_s, self.model_sha256,
                              self.config.ann_spec())

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        """Index (track_id, mono float32 audio (n_samples,) at `sr`) pairs; titles are the track ids."""
        self._check_sr(sr)
        self._index = self.new_index()
        for track_id, audio in tracks:
            self.add(track_id, audio, title=track_id, source="catalog")

    def usable(self, audio: np.ndarray, hop_s: float) -> np.ndarray:
        """(n_windows,) bool: the windows of `audio` (every hop_s s) that are not silent (`resonance.index.usable`)."""
        c = self.config
        return usable_windows(audio, self.embedder.sr, self.embedder.window_s, hop_s, c.silence_dbfs, c.min_active)

    def add(self, track_id: str, audio: np.ndarray, title: str, source: str) -> int:
        """Embed one reference track (mono (n_samples,) at the model's sr) into the index at the index's hop, its
        silent windows masked; returns the windows indexed. An index is started if there is none; an indexed track_id is replaced.
        ValueError when the track has no usable window."""
        if self._index is None:
            self._index = self.new_index()
        hop = self._index.hop_s  # the index's own reference hop
        emb = self.embedder.embed(audio, hop)
        usable = self.usable(audio, hop)
        if usable.size != emb.shape[0]:  # shorter than one window: the embedder padded it
            usable = np.zeros(emb.shape[0], dtype=bool)
        self._index.add_track(track_id, title, emb, hop, len(audio) / self.embedder.sr, source, usable)
        return int(usable.sum())

    def recognize(self, audio: np.ndarray, sr: int) -> Match:
        """Track, offset and confidence of one query (mono float32 (n_samples,) at `sr`)."""
        return self.recognize_prefixes(audio, sr, [len(audio) / sr])[0]

    def recognize_prefixes(self, audio: np.ndarray, sr: int, lengths_s: Sequence[float]) -> list[Match]:
        """`recognize` of the first length_s seconds of `audio`, for each length, from one embedding pass and one
        neighbour search (a prefix's windows are the first windows of the whole)."""
        self._check_sr(sr)
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"{self.name}: expected mono (n_samples,) audio, got shape {audio.shape}")
        hop, window = self.config.query_hop_s, self.embedder.model.window
        longest = min(audio.size, int(round(max(lengths_s) * sr)))
        if longest < window:
            return [self._nothing("too_short", 0, 0) for _ in lengths_s]
        queries = self.embedder.embed(audio[:longest], hop)
        usable = self.usable(audio[:longest], hop)
        evidence = self.evidence(queries, usable)
        out = []
        for length_s in lengths_s:
            n = min(audio.size, int(round(length_s * sr)))
            m = 0 if n < window else 1 + int(round((n - window) / sr * 1e6)) // int(round(hop * 1e6))
            out.append(self.decide(evidence, m, length_s))
        return out

    def evidence(self, queries: np.ndarray, usable: np.ndarray) -> Evidence:
        """What every decision on (a prefix of) these query windows needs, computed once: the usable windows,
        their embeddings, their top-k neighbours and (sequence decision, with a calibration) their background."""
        idx = np.flatnonzero(usable)
        q = np.ascontiguousarray(queries[idx], dtype=np.float32)
        scores = rows = background = None
        if idx.size and self.index.n_windows:
            scores, rows = self.index.search_rows(q, self.config.top_k)
            if self.config.decision == "sequence" and self.calibration is not None:
                background = self.calibration.background(q)
        return Evidence(int(usable.size), idx, q, scores, rows, background)

    def _nothing(self, reason: str, n_windows: int, n_usable: int) -> Match:
        return Match(None, None, None, None, -np.inf, None, False, 0.0, reason, n_windows, n_usable, None)

    def decide(self, ev: Evidence, m: int, length_s: float) -> Match:
        """The decision on the first m windows of `ev` (a query of length_s seconds)."""
        if m == 0:
            return self._nothing("too_short", 0, 0)
        c = int(np.searchsorted(ev.window_idx, m))  # the usable windows among the first m
        if c == 0 or ev.scores is None or ev.rows is None:
            return self._nothing("silent" if c == 0 else "no_candidate", m, c)
        index, p, cal = self.index, self.config, self.calibration
        kind = cal.score if cal is not None else p.score  # what the decision is thresholded on
        scores, rows = ev.scores[:c], ev.rows[:c]
        if p.decision == "vote":
            track_idx = np.append(index.row_track(), -1).astype(np.int64)[rows]
            start_s = np.append(index.row_slot() * index.hop_s, np.nan)[rows]
            start_s = start_s - (ev.window_idx[:c] - np.arange(c))[:, None] * p.query_hop_s  # true window times
            result: SequenceResult | VoteResult = vote(scores, track_idx, start_s, p.query_hop_s, index.hop_s)
            guess = index.tracks[result.track] if result.track is not None else None
            offset, runner = result.offset_s, None
        else:
            bg = None if ev.background is None else Background(ev.background.mu[:c], ev.background.sigma[:c])
            result = rescore(index, ev.queries[:c], ev.window_idx[:c], m, scores, rows, p.query_hop_s,
                             p.max_candidates, bg, tuple(p.sidelobe_s) if kind == "peak" else ())
            guess = index.tracks[result.best.track] if result.best is not None else None
            offset = max(0.0, result.best.offset_s) if result.best is not None else None
            runner = index.tracks[result.runner_up.track] if result.runner_up is not None else None
        if guess is None:
            return Match(None, None, None, None, -np.inf, None, False, 0.0, "no_candidate", m, c, result)
        score = decision_score(result, kind)
        if cal is None or not cal.lengths:
            return Match(guess, guess, offset, runner, score, None, True, 0.0, None, m, c, result)
        accepted = cal.accepted(score, length_s)
        return Match(guess if accepted else None, guess, offset, runner, score, cal.for_length(length_s).threshold,
                     accepted, cal.confidence(score, length_s), None if accepted else "below_threshold", m, c,
                     result)

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        return self._identification(self.recognize(audio, sr))

    def identify_prefixes(self, audio: np.ndarray, sr: int, lengths_s: Sequence[float]) -> list[Identification]:
        """`identify` of each prefix of `audio` (one embedding pass; see `recognize_prefixes`)."""
        return [self._identification(m) for m in self.recognize_prefixes(audio, sr, lengths_s)]

    @staticmethod
    def _identification(found: Match) -> Identification:
        """The harness's view: the best guess (top-1, closed set), its score, and whether it was accepted."""
        if found.guess is None:
            return Identification(None, None, -np.inf, accepted=False)
        return Identification(found.guess.track_id, found.offset_s, found.score, accepted=found.accepted)

    def index_bytes(self) -> int:
        return self.index.nbytes()

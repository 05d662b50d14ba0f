"""The embedding recognizer as an evaluation `Method` (name "embedding"): embed, search, vote.

Reference tracks are embedded at the model's hop (`Embedder`, window_s windows every hop_s seconds) into an
`EmbeddingIndex`; a query is embedded every `query_hop_s` seconds, each window's `top_k` neighbours are looked
up, and `vote` picks the (track, offset) they agree on, with a confidence in [0, 1]. Audio is mono float32
(n_samples,) at the model's sample rate throughout.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from resonance.config.embedding import EmbeddingParams
from resonance.evaluate.methods import Identification
from resonance.index.store import EmbeddingIndex, EmbeddingIndexError, TrackInfo
from resonance.index.vote import VoteResult, vote
from resonance.model.embedder import Embedder, EmbeddingModel


def model_sha256(model: EmbeddingModel) -> str:
    """sha256 of a model's config (sorted JSON) and weights (every state-dict tensor's name, dtype, shape and
    bytes, in name order): the same whether the model came from model.pt or from MLflow."""
    h = hashlib.sha256(json.dumps(model.config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        h.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        h.update(array.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Match:
    """One recognition: `track` None for no match (no agreeing neighbours, or confidence < min_confidence);
    `offset_s` where the query starts in the track (s, None without a match); `vote` the raw decision."""

    track: TrackInfo | None
    offset_s: float | None
    confidence: float
    vote: VoteResult


class EmbeddingMethod:
    """Learned-embedding recognition: score = the vote's confidence in [0, 1] (see `resonance.index.vote`)."""

    name = "embedding"

    def __init__(self, embedder: Embedder, config: EmbeddingParams) -> None:
        self.embedder = embedder
        self.config = config
        self.model_sha256 = model_sha256(embedder.model)
        self._index: EmbeddingIndex | None = None

    @classmethod
    def with_index(cls, embedder: Embedder, config: EmbeddingParams, index: EmbeddingIndex) -> EmbeddingMethod:
        """A method ready to identify against an already built (e.g. loaded) index of the same model."""
        method = cls(embedder, config)
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
        """An empty index for this model (its dim, window, hop and fingerprint)."""
        e = self.embedder
        return EmbeddingIndex(e.dim, e.window_s, e.hop_s, self.model_sha256)

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        """Index (track_id, mono float32 audio (n_samples,) at `sr`) pairs; titles are the track ids."""
        self._check_sr(sr)
        self._index = self.new_index()
        for track_id, audio in tracks:
            self.add(track_id, audio, title=track_id, source="catalog")

    def add(self, track_id: str, audio: np.ndarray, title: str, source: str) -> int:
        """Embed one reference track (mono (n_samples,) at the model's sr) into the index; returns its windows.
        An index is started if there is none; an already indexed track_id is replaced."""
        if self._index is None:
            self._index = self.new_index()
        emb = self.embedder.embed(audio)
        self._index.add_track(track_id, title, emb, self.embedder.hop_s, len(audio) / self.embedder.sr, source)
        return int(emb.shape[0])

    def recognize(self, audio: np.ndarray, sr: int) -> Match:
        """Track, offset and confidence of one query (mono float32 (n_samples,) at `sr`; shorter than one
        window is zero-padded). Below `config.min_confidence` the match is None."""
        self._check_sr(sr)
        index = self.index
        queries = self.embedder.embed(audio, self.config.query_hop_s)
        if index.n_windows == 0:
            return Match(None, None, 0.0, VoteResult(None, 0.0, 0.0, 0, queries.shape[0], 0.0))
        scores, track_idx, start_s = index.search(queries, self.config.top_k)
        decision = vote(scores, track_idx, start_s, self.config.query_hop_s, index.hop_s)
        if decision.track is None or decision.confidence < self.config.min_confidence:
            return Match(None, None, decision.confidence, decision)
        return Match(index.tracks[decision.track], decision.offset_s, decision.confidence, decision)

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        found = self.recognize(audio, sr)
        if found.track is None:
            return Identification(None, None, found.confidence)
        return Identification(found.track.track_id, found.offset_s, found.confidence)

    def index_bytes(self) -> int:
        return self.index.nbytes()

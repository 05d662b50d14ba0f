"""`--method hybrid`: landmark and embedding evidence for the same clip, fused by a rule chosen on val.

A landmark match with many consistent hash votes is rarely wrong (a clean, loud stretch of the song), and below
that the embedding is the better guess; so the hybrid names the landmark's track when its best (track, offset)
bin holds at least `answer_votes` votes, else the embedding's. Open set: accepted when the landmark reaches
`accept_votes` or the embedding's calibrated decision accepts. Its `score` is the embedding's (the harness ranks
by it). `benchmarks/hybrid.py` picks both counts on the val queries and measures the rule against both methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from resonance.evaluate.methods import Identification, LandmarkMethod


def fuse(landmark: Identification, embedding: Identification, answer_votes: float,
         accept_votes: float) -> Identification:
    """The hybrid's answer from the two methods' answers for one clip (landmark score = its hash votes)."""
    votes = landmark.score if landmark.track_id is not None else 0.0
    accepted = bool(embedding.accepted) or votes >= accept_votes  # accept_votes >= answer_votes (HybridParams)
    if votes >= answer_votes:
        return Identification(landmark.track_id, landmark.offset_s, embedding.score, accepted=accepted)
    return Identification(embedding.track_id, embedding.offset_s, embedding.score, accepted=accepted)


class HybridMethod:
    """The landmark baseline (indexes the catalog itself) and the deployed embedding recognizer, fused."""

    name = "hybrid"

    def __init__(self, landmark: LandmarkMethod, embedding: Any, answer_votes: float, accept_votes: float) -> None:
        self.landmark, self.embedding = landmark, embedding
        self.answer_votes, self.accept_votes = float(answer_votes), float(accept_votes)

    @property
    def index(self) -> Any:
        """The embedding's reference index (resonance.index.store.EmbeddingIndex)."""
        return self.embedding.index

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        """Index the catalog for the landmark side (the embedding side uses its deployed index)."""
        self.landmark.build(tracks, sr)

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        return fuse(self.landmark.identify(audio, sr), self.embedding.identify(audio, sr), self.answer_votes,
                    self.accept_votes)

    def identify_prefixes(self, audio: np.ndarray, sr: int, lengths_s: Sequence[float]) -> list[Identification]:
        """`identify` of each prefix of audio (n_samples,): one embedding pass, one landmark match per prefix."""
        embedded = self.embedding.identify_prefixes(audio, sr, lengths_s)
        return [fuse(self.landmark.identify(audio[:int(round(s * sr))], sr), e, self.answer_votes,
                     self.accept_votes) for s, e in zip(lengths_s, embedded)]

    def index_bytes(self) -> int:
        return self.landmark.index_bytes() + self.embedding.index_bytes()

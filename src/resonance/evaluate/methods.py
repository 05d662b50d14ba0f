"""The plug-in interface every recognition method implements, and adapters for the two fingerprint baselines.

A method indexes a reference catalog once (`build`), then names the track and offset of each query
(`identify`) with a confidence `score` (higher = more confident; the scale is the method's own, the harness
only ranks and thresholds it). Audio is mono float32 (n_samples,) at `sr` Hz throughout.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from resonance.chromaprint import ChromaprintConfig, ChromaprintIndex
from resonance.landmark.index import LandmarkIndex
from resonance.landmark.peaks import LandmarkConfig


@dataclass(frozen=True)
class Identification:
    """A method's answer for one query.

    track_id: the best reference track, None for "no match". offset_s: where the query starts in that track
    (seconds; None when there is no match or the method does not locate). score: confidence, higher is better.
    accepted: the method's own open-set decision (its threshold chosen on the val queries), None for a method that
    leaves the operating point to the harness.
    """

    track_id: str | None
    offset_s: float | None
    score: float
    accepted: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.score, numbers.Real) or isinstance(self.score, bool) or math.isnan(self.score):
            raise ValueError(f"Identification.score: expected a number, got {self.score!r}")
        object.__setattr__(self, "score", float(self.score))
        if self.offset_s is not None:
            if not isinstance(self.offset_s, numbers.Real) or not math.isfinite(self.offset_s):
                raise ValueError(f"Identification.offset_s: expected a finite number or None, got {self.offset_s!r}")
            object.__setattr__(self, "offset_s", float(self.offset_s))
        if self.track_id is not None and not isinstance(self.track_id, str):
            raise ValueError(f"Identification.track_id: expected a str or None, got {self.track_id!r}")


@runtime_checkable
class Method(Protocol):
    """A recognition method under evaluation (landmark, chromaprint, embedding, hybrid...)."""

    name: str

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        """Index the reference catalog: (track_id, mono float32 audio (n_samples,) at `sr` Hz) pairs."""
        ...

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        """Name the track (and offset) of one query: mono float32 audio (n_samples,) at `sr` Hz."""
        ...

    def index_bytes(self) -> int:
        """Size of the built index (bytes of search data held)."""
        ...


def build_reference(method: Method, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> float:
    """`method.build(tracks, sr)`, streaming; returns the total reference audio indexed, in seconds."""
    total = [0]

    def counted() -> Iterator[tuple[str, np.ndarray]]:
        for track_id, audio in tracks:
            total[0] += int(np.asarray(audio).shape[-1])
            yield track_id, audio

    method.build(counted(), sr)
    return total[0] / sr


class LandmarkMethod:
    """The landmark (Wang 2003) baseline: score = consistent hash votes of the best (track, offset) bin."""

    name = "landmark"

    def __init__(self, config: LandmarkConfig) -> None:
        self.config = config
        self._index: LandmarkIndex | None = None

    @classmethod
    def with_index(cls, config: LandmarkConfig, index: LandmarkIndex) -> LandmarkMethod:
        """A method ready to identify against an already built (e.g. loaded) index."""
        method = cls(config)
        method._index = index
        return method

    def _check_sr(self, sr: int) -> None:
        if sr != self.config.sr:
            raise ValueError(f"{self.name}: audio at {sr} Hz, but LandmarkConfig.sr is {self.config.sr} Hz")

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        from resonance.landmark.index import build_index

        self._check_sr(sr)
        self._index = build_index(tracks, self.config)

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        from resonance.landmark.match import match

        self._check_sr(sr)
        found = match(audio, self._built(), self.config)
        if found.track_id is None:
            return Identification(None, None, float(found.score))
        return Identification(found.track_id, float(found.offset_s), float(found.score))

    def index_bytes(self) -> int:
        index = self._built()
        return int(index.hashes.nbytes + index.tracks.nbytes + index.frames.nbytes)

    def _built(self) -> LandmarkIndex:
        if self._index is None:
            raise RuntimeError(f"{self.name}: no index yet: call build() (or use with_index) first")
        return self._index


class ChromaprintMethod:
    """The Chromaprint baseline: score = 1 - bit error rate of the best alignment (about 0.5 is chance)."""

    name = "chromaprint"

    def __init__(self, config: ChromaprintConfig) -> None:
        self.config = config
        self._index: ChromaprintIndex | None = None

    @classmethod
    def with_index(cls, config: ChromaprintConfig, index: ChromaprintIndex) -> ChromaprintMethod:
        """A method ready to identify against already computed (e.g. loaded) reference fingerprints."""
        method = cls(config)
        method._index = index
        return method

    @property
    def index(self) -> ChromaprintIndex:
        """The reference fingerprints (RuntimeError before `build`)."""
        if self._index is None:
            raise RuntimeError(f"{self.name}: no references yet: call build() (or use with_index) first")
        return self._index

    def build(self, tracks: Iterable[tuple[str, np.ndarray]], sr: int) -> None:
        from resonance.chromaprint import build_index

        self._index = build_index(tracks, sr, self.config.timeout_s)

    def identify(self, audio: np.ndarray, sr: int) -> Identification:
        from resonance.chromaprint import match

        found = match(audio, sr, self.index, self.config)
        if found.track_id is None:
            return Identification(None, None, float(found.score))
        return Identification(found.track_id, float(found.offset_s), float(found.score))

    def index_bytes(self) -> int:
        return self.index.n_bytes

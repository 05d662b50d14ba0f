"""Dataclasses of the `evaluate` section (the benchmark harness). The methods' own sections (`landmark`,
`chromaprint`) load straight into their config dataclasses (`LandmarkConfig`, `ChromaprintConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateParams:
    """How methods are measured: on which query set, at which false-accept target, with which tolerances.

    bootstrap_samples / bootstrap_seed: the excerpt-level bootstrap of every interval; time_every: a plain
    single-query `identify` call is timed on every time_every-th clip (the latency figures); index_sizes: the
    catalog sizes (tracks) the embedding is also scored against (5 s, 0 dB + reverb), sub-indexes drawn with
    scale_seed that always hold the songs being queried."""

    query_set: str
    methods: list[str]
    target_far: float
    segment_tolerance_s: float
    confidence: float
    bootstrap_samples: int
    bootstrap_seed: int
    time_every: int
    index_sizes: list[int]
    scale_seed: int
    mlflow_experiment: str


@dataclass(frozen=True)
class HybridParams:
    """`--method hybrid`: the landmark's answer when its best (track, offset) bin has at least answer_votes
    consistent hash votes, else the embedding's; accepted (open set) when the landmark reaches accept_votes or
    the embedding's calibrated decision accepts. Both counts are chosen on the val queries by
    `benchmarks/hybrid.py`."""

    answer_votes: float
    accept_votes: float

    def __post_init__(self) -> None:
        from resonance.config.loader import ParamsError

        if not 1 <= self.answer_votes <= self.accept_votes:
            raise ParamsError("hybrid: need 1 <= answer_votes <= accept_votes")

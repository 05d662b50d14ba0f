"""Dataclasses of the `evaluate` section (the benchmark harness). The methods' own sections (`landmark`,
`chromaprint`) load straight into their config dataclasses (`LandmarkConfig`, `ChromaprintConfig`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateParams:
    """How methods are measured: on which query set, at which false-accept target, with which tolerances."""

    query_set: str
    methods: list[str]
    target_far: float
    segment_tolerance_s: float
    confidence: float
    mlflow_experiment: str

"""Dataclass of the `embedding` section: the model, the index and the query-side settings of recognition
(`resonance index build|add`, `resonance identify`, `resonance evaluate --method embedding`)."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class EmbeddingParams:
    """model: a folder holding model.pt, a model.pt path, or an MLflow URI (`models:/name@alias`);
    index: the index folder; query_hop_s: seconds between query windows; top_k: neighbours per query window;
    min_confidence: answers below this confidence (in [0, 1], see `resonance.index.vote`) are "no match";
    batch: windows per forward pass of the model."""

    model: str
    index: str
    query_hop_s: float
    top_k: int
    min_confidence: float
    batch: int

    def __post_init__(self) -> None:
        checks = [(self.query_hop_s > 0, "query_hop_s must be > 0"),
                  (self.top_k >= 1, "top_k must be >= 1"),
                  (0.0 <= self.min_confidence <= 1.0, "min_confidence must be in [0, 1]"),
                  (self.batch >= 1, "batch must be >= 1"),
                  (bool(self.model) and bool(self.index), "model and index must not be empty")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"embedding: {message}")

"""Dataclass of the `embedding` section: the model, the index, the calibration and the query-side settings of
recognition (`resonance index build|add`, `resonance calibrate`, `resonance identify`,
`resonance evaluate --method embedding`)."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.config.loader import ParamsError

DECISIONS = ("sequence", "vote")
SCORES = ("score", "margin", "blend", "peak")


@dataclass(frozen=True)
class EmbeddingParams:
    """model: a folder holding model.pt, a model.pt path, or an MLflow URI (`models:/name@alias`);
    index: the index folder; index_type: how a new index proposes candidates and stores its vectors (`flat`: an
    exact scan of float vectors; `hnsw`: a FAISS HNSW graph with hnsw.m links per node and the ef_construction /
    ef_search beams, float vectors; `ivfpq`: the compressed index, IVF-PQ with ivfpq.nlist cells, ivfpq.nprobe of
    them scanned, ivfpq.m codes of ivfpq.nbits bits per window, re-scored on the codes' reconstructions;
    resonance.index.ann); calibration: the calibration folder (`resonance calibrate`);
    query_hop_s: seconds between query windows; reference_hop_s: seconds between the reference windows of a new
    index (null: the model's train.hop_s); top_k: neighbours per query window;
    decision: `sequence` (re-score candidates with every window) or `vote` (top-k votes);
    max_candidates: candidates re-scored per query; score: what the sequence decision thresholds (`score`,
    `margin`, `blend`, `peak`: see resonance.index.method.decision_score); sidelobe_s: for `peak`, the offsets
    (seconds, each taken both ways) at which the best track is scored again beside its best offset;
    silence_dbfs, min_active: a window is usable when at least min_active of its 50 ms frames are louder than
    silence_dbfs (resonance.index.usable); cohort_size: random catalog windows in the background cohort;
    cohort_top: the most similar cohort windows a query window's background is measured on; background: `z`
    ((s - mu) / sigma) or `shift` (s - mu), how a window's similarity is normalised; seed: the cohort draw;
    batch: windows per forward pass of the model."""

    model: str
    index: str
    index_type: str
    hnsw: dict[str, int]
    ivfpq: dict[str, int]
    calibration: str
    query_hop_s: float
    reference_hop_s: float | None
    top_k: int
    decision: str
    max_candidates: int
    score: str
    sidelobe_s: list[float]
    silence_dbfs: float
    min_active: float
    cohort_size: int
    cohort_top: int
    background: str
    seed: int
    batch: int

    def __post_init__(self) -> None:
        checks = [(self.query_hop_s > 0, "query_hop_s must be > 0"),
                  (self.reference_hop_s is None or self.reference_hop_s > 0, "reference_hop_s must be > 0 or null"),
                  (self.top_k >= 1 and self.max_candidates >= 1, "top_k and max_candidates must be >= 1"),
                  (self.decision in DECISIONS, f"decision must be one of {DECISIONS}"),
                  (self.score in SCORES, f"score must be one of {SCORES}"),
                  (all(s > 0 for s in self.sidelobe_s) and (self.score != "peak" or bool(self.sidelobe_s)),
                   "sidelobe_s: offsets > 0 s, at least one for score `peak`"),
                  (self.background in ("z", "shift"), "background must be z or shift"),
                  (self.index_type in ("flat", "hnsw", "ivfpq"), "index_type must be flat, hnsw or ivfpq"),
                  (set(self.hnsw) == {"m", "ef_construction", "ef_search"} and min(self.hnsw.values()) >= 1,
                   "hnsw needs m, ef_construction and ef_search, each >= 1"),
                  (set(self.ivfpq) == {"nlist", "nprobe", "m", "nbits"} and min(self.ivfpq.values()) >= 1
                   and self.ivfpq["nbits"] <= 16, "ivfpq needs nlist, nprobe, m and nbits (1..16), each >= 1"),
                  (0.0 < self.min_active <= 1.0, "min_active must be in (0, 1]"),
                  (self.cohort_size >= 1 and 1 <= self.cohort_top <= self.cohort_size,
                   "need cohort_size >= 1 and 1 <= cohort_top <= cohort_size"),
                  (self.batch >= 1, "batch must be >= 1"),
                  (bool(self.model) and bool(self.index) and bool(self.calibration),
                   "model, index and calibration must not be empty")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"embedding: {message}")

    def ann_spec(self):  # -> resonance.index.ann.AnnSpec
        """The ANN structure a new index gets."""
        from resonance.index.ann import AnnSpec

        h, q = self.hnsw, self.ivfpq
        return AnnSpec(self.index_type, h["m"], h["ef_construction"], h["ef_search"], q["nlist"], q["nprobe"],
                       q["m"], q["nbits"])

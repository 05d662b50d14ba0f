"""The open-set calibration of a model: how sure an answer is, and when it is no answer at all.

Fitted on the `val` queries (`resonance calibrate`), never on the test set, and stored beside the model's index
as a folder:
    calibration.json   format, model_sha256, decision, the score used, cohort_top, background_mode, target_far, one entry per
                       query length (threshold, logistic a and b, the val figures behind them), cohort_sha256,
                       and sha256: the checksum of everything else in the file (a corrupt file is refused)
    cohort.npy         (n_cohort, dim) float16: embeddings of random clean catalog windows (the background)

The background of a query window is its similarity to the cohort (mean mu and spread sigma of its `cohort_top`
most similar cohort windows): a hub-like window that resembles everything gets a high mu, so only similarity
above its own background counts as evidence (`resonance.index.sequence`). Because the cohort travels with the
model, not with the index, the same score means the same thing in an index of 38 songs or of 100,000.

Per query length L (the calibrated length at or below the query's, the shortest for shorter queries):
- accepted  <=> score >= threshold_L, the lowest score at which at most target_far (1%) of the out-of-catalog val
  queries of that length were accepted;
- confidence = 1 / (1 + exp(-(a_L * score + b_L))), a logistic fit on the val queries of that length of "the named
  song is right", with in-catalog and out-of-catalog queries weighted equally: the probability that the answer is
  right when half the clips sent are songs of the catalog.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resonance.errors import ResonanceError
from resonance.index.sequence import Background

CALIBRATION_FORMAT = 1
JSON_NAME, COHORT_NAME = "calibration.json", "cohort.npy"


class CalibrationError(ResonanceError):
    """A calibration folder that is missing, corrupt, of another format or of another model."""


@dataclass(frozen=True)
class LengthCalibration:
    """The operating point for queries of `length_s` seconds (and longer, up to the next calibrated length)."""

    length_s: float
    threshold: float
    a: float
    b: float
    val_far: float  # false-accept rate of the out-of-catalog val queries at the threshold
    val_hit_rate: float  # in-catalog val queries accepted and right at the threshold
    n_in: int
    n_out: int


@dataclass(frozen=True)
class Calibration:
    """See the module docstring. `cohort` (n_cohort, dim) float32 unit rows."""

    model_sha256: str
    decision: str
    score: str
    cohort_top: int
    target_far: float
    lengths: tuple[LengthCalibration, ...]
    cohort: np.ndarray
    background_mode: str = "z"  # z: (s - mu) / sigma; shift: s - mu

    def background(self, queries: np.ndarray) -> Background:
        """mu and sigma (m,) of each query window's `cohort_top` highest similarities to the cohort (sigma 1 in
        `shift` mode)."""
        sims = np.asarray(queries, dtype=np.float32) @ self.cohort.T
        k = min(self.cohort_top, sims.shape[1])
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:] if k < sims.shape[1] else sims
        sigma = np.maximum(top.std(axis=1), 1e-3) if self.background_mode == "z" else np.ones(top.shape[0])
        return Background(top.mean(axis=1), sigma.astype(np.float32))

    def for_length(self, length_s: float) -> LengthCalibration:
        """The entry of the longest calibrated length <= length_s (the shortest one for shorter queries)."""
        below = [c for c in self.lengths if c.length_s <= length_s + 1e-9]
        return below[-1] if below else self.lengths[0]

    def confidence(self, score: float, length_s: float) -> float:
        """The calibrated probability in [0, 1] that an answer of this score and query length is right."""
        c = self.for_length(length_s)
        x = c.a * score + c.b
        return float(1.0 / (1.0 + math.exp(-x))) if x > -700 else 0.0

    def accepted(self, score: float, length_s: float) -> bool:
        return score >= self.for_length(length_s).threshold

    def save(self, folder: str | Path) -> None:
        """Write the folder (both files atomically; the json, written last, names the cohort's checksum)."""
        from resonance.io import atomic_path, write_json

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cohort = np.ascontiguousarray(self.cohort, dtype=np.float16)
        with atomic_path(folder / COHORT_NAME) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, cohort)
        meta = {"format": CALIBRATION_FORMAT, "model_sha256": self.model_sha256, "decision": self.decision,
                "score": self.score, "cohort_top": self.cohort_top, "background_mode": self.background_mode,
                "target_far": self.target_far,
                "lengths": [asdict(c) for c in self.lengths], "n_cohort": int(cohort.shape[0]),
                "cohort_sha256": hashlib.sha256((folder / COHORT_NAME).read_bytes()).hexdigest()}
        write_json(folder / JSON_NAME, {**meta, "sha256": _digest(meta)})


def _digest(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def load_calibration(folder: str | Path, model_sha256: str | None = None) -> Calibration:
    """Read a calibration folder; CalibrationError (naming the fix) when missing, corrupt, of another format, or
    (with `model_sha256`) made for another model."""
    folder = Path(folder)
    path = folder / JSON_NAME
    if not path.is_file():
        raise CalibrationError(f"{folder}: no calibration here: run `resonance calibrate` (it fits the open-set "
                               f"thresholds on the val queries), or pass --calibration")
    try:
        meta = json.loads(path.read_text())
        digest = meta.pop("sha256")
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise CalibrationError(f"{path}: corrupt calibration ({type(exc).__name__}: {exc}): re-run "
                               f"`resonance calibrate`") from None
    if digest != _digest(meta):
        raise CalibrationError(f"{path}: corrupt calibration (its checksum does not match its content): re-run "
                               f"`resonance calibrate`")
    if meta.get("format") != CALIBRATION_FORMAT:
        raise CalibrationError(f"{path}: calibration format {meta.get('format')!r}, this code reads "
                               f"{CALIBRATION_FORMAT}: re-run `resonance calibrate`")
    try:
        raw = (folder / COHORT_NAME).read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{folder / COHORT_NAME}: unreadable ({exc}): re-run `resonance calibrate`") from None
    if hashlib.sha256(raw).hexdigest() != meta["cohort_sha256"]:
        raise CalibrationError(f"{folder / COHORT_NAME}: corrupt (checksum mismatch): re-run `resonance calibrate`")
    import io

    cohort = np.load(io.BytesIO(raw)).astype(np.float32)
    if model_sha256 is not None and meta["model_sha256"] != model_sha256:
        raise CalibrationError(f"{folder}: calibrated for another model (sha256 {meta['model_sha256'][:12]}..., "
                               f"this model is {model_sha256[:12]}...): re-run `resonance calibrate`")
    lengths = tuple(LengthCalibration(**c) for c in meta["lengths"])
    return Calibration(meta["model_sha256"], meta["decision"], meta["score"], int(meta["cohort_top"]),
                       float(meta["target_far"]), lengths, cohort, meta["background_mode"])


def fit_logistic(score: np.ndarray, label: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """(a, b) of P(label | score) = sigmoid(a * score + b), by weighted maximum likelihood with a tiny ridge
    (so separable data gives a steep, finite curve). score, label (0/1), weight: (n,)."""
    from scipy.optimize import minimize

    x, y, w = (np.asarray(v, dtype=np.float64) for v in (score, label, weight))
    scale = max(float(np.std(x)), 1e-6)

    def nll(p: np.ndarray) -> float:
        z = p[0] * x / scale + p[1]
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)) / w.sum() + 1e-3 * p[0] ** 2)

    res = minimize(nll, np.array([1.0, 0.0]), method="L-BFGS-B")
    return float(res.x[0] / scale), float(res.x[1])

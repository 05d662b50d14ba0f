"""Pure fitting of the per-length operating points from val query outcomes (no I/O, no model)."""

from __future__ import annotations

import numpy as np

from resonance.evaluate.stats import threshold_at_far
from resonance.index.calibration import LengthCalibration, fit_logistic


def fit_lengths(length_s: np.ndarray, in_catalog: np.ndarray, correct: np.ndarray, score: np.ndarray,
                target_far: float) -> tuple[LengthCalibration, ...]:
    """One `LengthCalibration` per distinct query length, from the val queries' outcomes.

    length_s (n,) s; in_catalog (n,) bool; correct (n,) bool (in catalog and the best guess is the true song);
    score (n,) the decision score (-inf: nothing to judge). threshold: the lowest score at which at most
    target_far of that length's out-of-catalog queries are accepted; logistic: P(correct | score) with in- and
    out-of-catalog queries weighted equally (ValueError when a length lacks either kind of query).
    """
    out = []
    for length in np.unique(length_s):
        sel = length_s == length
        inside, outside = sel & in_catalog, sel & ~in_catalog
        if not inside.any() or not outside.any():
            raise ValueError(f"calibration: {length:g} s queries need both in- and out-of-catalog val queries "
                             f"(have {int(inside.sum())} and {int(outside.sum())})")
        threshold = threshold_at_far(score[outside], target_far)
        finite = np.isfinite(score) & sel
        if threshold == -np.inf:  # at most target_far were matched at all: accept every match
            threshold = float(score[finite].min()) if finite.any() else 0.0
        weight = np.where(in_catalog, 0.5 / inside.sum(), 0.5 / outside.sum())
        # nothing-to-judge queries (-inf) are certain rejections; fit on the rest, at the lowest finite score
        x = np.where(np.isfinite(score), score, np.min(score[finite]) if finite.any() else 0.0)
        a, b = fit_logistic(x[sel], (correct & in_catalog)[sel].astype(float), weight[sel])
        accepted = score >= threshold
        out.append(LengthCalibration(
            length_s=float(length), threshold=float(threshold), a=a, b=b,
            val_far=float(accepted[outside].mean()), val_hit_rate=float((accepted & correct)[inside].mean()),
            n_in=int(inside.sum()), n_out=int(outside.sum())))
    return tuple(out)

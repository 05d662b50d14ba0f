"""Compare field clips with the reference distribution: an Evidently 0.7 Report with DataDriftPreset over the
feature columns (per-feature tests chosen by Evidently for the sample sizes, the dataset drifts when at least
`drift_share` of the columns drift), saved as HTML, and read back into a plain JSON verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def drift_report(current: pd.DataFrame, reference: pd.DataFrame, features: list[str], drift_share: float,
                 threshold: float, html_path: Path) -> dict[str, Any]:
    """Run the report on the `features` columns, write it to `html_path` (atomically); returns
    {"drift", "drift_share", "drifted_count", "n_features", "drifted_features", "features": {name: {"method",
    "value", "threshold", "drifted"}}, "n_current", "n_reference"}."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from resonance.io import atomic_path

    cur = current[features].astype(float)
    ref = reference[features].astype(float)
    report = Report([DataDriftPreset(columns=features, drift_share=drift_share, threshold=threshold)])
    snapshot = report.run(current_data=cur, reference_data=ref)
    with atomic_path(html_path) as tmp:
        snapshot.save_html(str(tmp))
    return read_verdict(snapshot.dict(), features, drift_share, len(cur), len(ref))


def read_verdict(snapshot: dict[str, Any], features: list[str], drift_share: float, n_current: int,
                 n_reference: int) -> dict[str, Any]:
    """The verdict from a snapshot's dict (DriftedColumnsCount and one ValueDrift per column). A column drifts
    when its p-value is below the threshold (tests) or its distance at or above it (distances)."""
    per: dict[str, dict[str, Any]] = {}
    count = None
    for m in snapshot.get("metrics", []):
        cfg = m.get("config") or {}
        kind = str(cfg.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            count = m["value"]
        elif kind.endswith("ValueDrift") and cfg.get("column") in features:
            method, value, thr = str(cfg.get("method")), float(m["value"]), float(cfg.get("threshold"))
            drifted = value < thr if "p_value" in method else value >= thr
            per[cfg["column"]] = {"method": method, "value": round(value, 6), "threshold": thr, "drifted": drifted}
    drifted = [f for f in features if per.get(f, {}).get("drifted")]
    share = (count or {}).get("share", len(drifted) / max(1, len(features)))
    return {"drift": bool(share >= drift_share), "drift_share": round(float(share), 4),
            "drifted_count": len(drifted), "n_features": len(features), "drifted_features": drifted,
            "features": per, "n_current": n_current, "n_reference": n_reference,
            "threshold_share": drift_share}

"""One monitor run (`resonance monitor`, flows/monitor.py): recover, claim the inbox, validate, describe, compare
with the reference, report, archive. See resonance.monitor.inbox for the folder contract.

Outputs in monitoring/reports/RUN/: drift_report.html (Evidently), features.csv (one row per clip),
verdict.json (written last: drift, drifted features, per-feature tests, clips, rejections with reasons, the
Great Expectations summary, the recognizer used); reports/latest.json is a copy of the last verdict.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resonance.audio import AudioError
from resonance.config.embedding import EmbeddingParams
from resonance.config.mlops import DeployParams, MonitorParams
from resonance.io import atomic_path, write_json
from resonance.monitor import inbox
from resonance.monitor.checks import probe, validate_table
from resonance.monitor.features import recognition_features, signal_features

NOT_DECODED_DBFS = -200.0  # rms of a clip not decoded (too long to try): fails the not-silent expectation too


def recognizer_source(project_dir: Path, emb: EmbeddingParams, deploy: DeployParams) -> dict[str, str]:
    """The champion's release (deploy/current) when there is one, else the pipeline's model/index/calibration."""
    current = project_dir / deploy.dir / "current"
    if (current / "release.json").is_file():
        return {"model": str(current / "model.pt"), "index": str(current / "index"),
                "calibration": str(current / "calibration"), "from": "deploy/current"}
    return {"model": str(project_dir / emb.model) if not emb.model.startswith(("models:/", "runs:/")) else emb.model,
            "index": str(project_dir / emb.index), "calibration": str(project_dir / emb.calibration),
            "from": "params embedding"}


class ClipDescriber:
    """Probe, decode and describe clips with one loaded recognizer (signal + recognition features)."""

    def __init__(self, method: Any, p: MonitorParams) -> None:
        self.method, self.p = method, p
        self.sr = method.embedder.sr

    def row(self, path: Path) -> tuple[dict[str, Any], np.ndarray | None]:
        """The validation row of a clip and its decoded audio (None when too long to decode); AudioError when it
        cannot be probed or decoded."""
        info = probe(path)
        if info["probed_duration_s"] is not None and info["probed_duration_s"] > self.p.duration_s[1]:
            return {"duration_s": info["probed_duration_s"], "sample_rate_hz": info["sample_rate_hz"],
                    "channels": info["channels"], "rms_dbfs": NOT_DECODED_DBFS, "nonfinite": 0,
                    "codec": info["codec"]}, None
        from resonance.audio import decode

        audio = decode(path, self.sr)
        rms = float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))
        return {"duration_s": round(audio.size / self.sr, 3), "sample_rate_hz": info["sample_rate_hz"],
                "channels": info["channels"], "rms_dbfs": rms, "nonfinite": int((~np.isfinite(audio)).sum()),
                "codec": info["codec"]}, audio

    def features(self, row: dict[str, Any], audio: np.ndarray) -> dict[str, Any]:
        """Every feature of a decoded clip (resonance.config.mlops.FEATURES)."""
        found = self.method.recognize(audio, self.sr)
        return {**signal_features(audio, self.sr, self.p.frame_s, self.p.clip_level),
                "sample_rate_hz": row["sample_rate_hz"], "channels": row["channels"], **recognition_features(found),
                "track_id": found.track.track_id if found.track else None}

    def describe(self, path: Path) -> dict[str, Any]:
        row, audio = self.row(path)
        if audio is None:
            raise AudioError(f"{path}: longer than {self.p.duration_s[1]:g} s")
        return self.features(row, audio)


def run(project_dir: Path, p: MonitorParams, emb: EmbeddingParams, deploy: DeployParams,
        progress: bool = True) -> dict[str, Any]:
    """Process what waits in the inbox; returns the verdict (status "empty" / "waiting" without a report)."""
    from resonance.index.stage import load_recognizer
    from resonance.monitor.drift import drift_report
    from resonance.monitor.reference import load_reference
    from resonance.progress import progress as progress_bar

    project_dir = Path(project_dir).resolve()
    layout = inbox.Layout(project_dir / p.dir).make()
    recovered = inbox.recover(layout)
    files = inbox.waiting(layout, p.min_age_s)
    if not files:
        return {"status": "empty", "drift": False, "recovered": recovered, "clips": [], "rejected": []}
    t0 = time.perf_counter()
    run_id = inbox.new_run_id()
    claimed = inbox.claim(layout, run_id, files)
    source = recognizer_source(project_dir, emb, deploy)
    method = load_recognizer(source["model"], Path(source["index"]), Path(source["calibration"]), emb)
    describer = ClipDescriber(method, p)
    rows, audio, rejected = [], {}, []
    for clip in progress_bar(claimed, desc="monitor: check", unit="clip", disable=not progress):
        try:
            row, decoded = describer.row(clip)
        except AudioError as exc:
            rejected.append({"clip": clip.name, "reason": str(exc)})
            inbox.reject(layout, run_id, clip, str(exc))
            continue
        rows.append({"clip": clip.name, **row})
        audio[clip.name] = (clip, decoded)
    table = pd.DataFrame(rows)
    failed, suite = validate_table(table, p) if rows else ({}, [])
    for name, reasons in failed.items():
        rejected.append({"clip": name, "reason": "; ".join(reasons)})
        inbox.reject(layout, run_id, audio.pop(name)[0], "; ".join(reasons), {"checks": reasons})
    valid = [(clip, decoded) for clip, decoded in audio.values()]
    if len(valid) < p.min_clips:
        inbox.release(layout, run_id, [clip for clip, _ in valid])
        return {"status": "waiting", "drift": False, "run_id": run_id, "recovered": recovered,
                "waiting_clips": len(valid), "min_clips": p.min_clips, "clips": [], "rejected": rejected}
    features = [{"clip": clip.name, **describer.features(table[table["clip"] == clip.name].iloc[0].to_dict(), a)}
                for clip, a in progress_bar(valid, desc="monitor: features", unit="clip", disable=not progress)]
    current = pd.DataFrame(features)
    reference = load_reference(layout.reference, project_dir / p.reference_queries, method.model_sha256, p,
                               describer.describe, progress)
    report_dir = layout.reports / run_id
    drift = drift_report(current, reference, p.features, p.drift_share, p.stattest_threshold,
                         report_dir / "drift_report.html")
    with atomic_path(report_dir / "features.csv") as tmp:
        current.to_csv(tmp, index=False)
    verdict = {"status": "done", "run_id": run_id, **drift, "recovered": recovered,
               "clips": [c.name for c, _ in valid], "rejected": rejected, "checks": suite,
               "recognizer": {**source, "model_sha256": method.model_sha256},
               "reference": {"queries": p.reference_queries, "clips": int(len(reference))},
               "feature_means": {f: round(float(current[f].astype(float).mean()), 4) for f in p.features},
               "reference_means": {f: round(float(reference[f].astype(float).mean()), 4) for f in p.features},
               "report_html": str(report_dir / "drift_report.html"), "seconds": round(time.perf_counter() - t0, 1)}
    write_json(report_dir / inbox.VERDICT, verdict)  # the run is complete from here on
    inbox.archive(layout, run_id, [c for c, _ in valid])
    shutil.copyfile(report_dir / inbox.VERDICT, layout.reports / ".latest.tmp")
    (layout.reports / ".latest.tmp").replace(layout.reports / "latest.json")
    return verdict


def log_to_mlflow(verdict: dict[str, Any], p: MonitorParams, tracking_uri: str,
                  retrain_reason: str | None = None) -> str | None:
    """Log a finished run's verdict, drift report and features to MLflow (experiment monitor.mlflow_experiment);
    returns the MLflow run id (None for runs without a report)."""
    if verdict.get("status") != "done":
        return None
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(p.mlflow_experiment)
    report_dir = Path(verdict["report_html"]).parent
    with mlflow.start_run(run_name=f"monitor-{verdict['run_id']}") as run:
        mlflow.set_tags({"monitor.run_id": verdict["run_id"], "drift": str(verdict["drift"]).lower(),
                         "drifted_features": ",".join(verdict["drifted_features"]) or "none",
                         "recognizer": verdict["recognizer"]["from"]})
        if retrain_reason:
            mlflow.set_tag("retrain.reason", retrain_reason[:4900])
        mlflow.log_params({"n_reference": verdict["n_reference"], "drift_share_threshold": p.drift_share,
                           "stattest_threshold": p.stattest_threshold})
        numbers = {"n_clips": len(verdict["clips"]), "n_rejected": len(verdict["rejected"]),
                   "drift_share": verdict["drift_share"], "drifted_count": verdict["drifted_count"]}
        numbers.update({f"mean/{k}": v for k, v in verdict["feature_means"].items()})
        numbers.update({f"test/{k}": f["value"] for k, f in verdict["features"].items()})
        mlflow.log_metrics(numbers)
        for name in ("drift_report.html", inbox.VERDICT, "features.csv"):
            mlflow.log_artifact(str(report_dir / name), "monitor")
        return run.info.run_id


def describe(verdict: dict[str, Any]) -> str:
    """One line for the terminal."""
    if verdict["status"] == "empty":
        return "monitor: the inbox is empty" + (f" (recovered {verdict['recovered']})" if any(
            verdict["recovered"].values()) else "")
    if verdict["status"] == "waiting":
        return (f"monitor: {verdict['waiting_clips']} valid clip(s) wait for at least {verdict['min_clips']}; "
                f"{len(verdict['rejected'])} rejected")
    state = (f"DRIFT ({verdict['drifted_count']}/{verdict['n_features']} features: "
             f"{', '.join(verdict['drifted_features'])})" if verdict["drift"] else
             f"no drift ({verdict['drifted_count']}/{verdict['n_features']} features drifted)")
    return (f"monitor: {len(verdict['clips'])} clip(s) vs {verdict['n_reference']} reference clips: {state}; "
            f"{len(verdict['rejected'])} rejected; {verdict['seconds']:.0f} s -> {verdict['report_html']}")

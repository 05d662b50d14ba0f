"""`resonance field evaluate CSV`: a labeled field set evaluated like a query set.

The CSV has a header with at least `file`, `track_id`, `venue`, `device` (other columns are kept as they are):
file is relative to the CSV's folder (or absolute), track_id empty for a song outside the catalog. Every row is
checked before anything is identified: a missing column, an empty venue or device, a missing or empty file, or a
track id the index does not hold is a FieldError naming the row (row 1 = the first line after the header).

Per group (all, each venue, each device, each venue x device): n_in in-catalog clips and top1 = the share
accepted with the right song; guess_top1 = the best guess right whether accepted or not; wrong_accepts; n_out
out-of-catalog clips, false_accepts and far = false_accepts / n_out. Outputs in OUT: metrics.json (groups and one
row per clip), report.md; plus a flat headline JSON for DVC; logged to MLflow (experiment evaluate.mlflow_experiment)
when a tracking URI is set, beside the simulated evaluation runs.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resonance.field.build import FieldError
from resonance.io import atomic_open, write_json

REQUIRED = ("file", "track_id", "venue", "device")
MAX_LISTED_ERRORS = 10


@dataclass(frozen=True)
class FieldRow:
    """One labeled field clip (track_id None: outside the catalog)."""

    row: int
    path: Path
    track_id: str | None
    venue: str
    device: str
    extra: dict[str, str]


def read_csv(csv_path: Path, known_tracks: set[str]) -> list[FieldRow]:
    """Every row of a field CSV, checked (module docstring); FieldError listing the bad rows."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FieldError(f"{csv_path}: no such field CSV")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise FieldError(f"{csv_path}: missing column(s) {missing} (need {list(REQUIRED)})")
        raw = list(reader)
    if not raw:
        raise FieldError(f"{csv_path}: no rows")
    rows, errors = [], []
    for i, rec in enumerate(raw, start=1):
        file = (rec.get("file") or "").strip()
        track = (rec.get("track_id") or "").strip() or None
        venue, device = (rec.get("venue") or "").strip(), (rec.get("device") or "").strip()
        path = Path(file) if Path(file).is_absolute() else csv_path.parent / file
        where = f"{csv_path}: row {i} ({file or 'no file'})"
        if not file:
            errors.append(f"{where}: the file column is empty")
        elif not path.is_file():
            errors.append(f"{where}: file not found at {path}")
        elif path.stat().st_size == 0:
            errors.append(f"{where}: the file is empty (0 bytes)")
        if track is not None and track not in known_tracks:
            errors.append(f"{where}: track_id {track!r} is not in the index ({len(known_tracks)} tracks); leave "
                          "it empty for a song outside the catalog")
        if not venue or not device:
            errors.append(f"{where}: venue and device must not be empty")
        rows.append(FieldRow(i, path, track, venue, device,
                             {k: v for k, v in rec.items() if k not in REQUIRED and k is not None}))
    if errors:
        more = f" (and {len(errors) - MAX_LISTED_ERRORS} more)" if len(errors) > MAX_LISTED_ERRORS else ""
        raise FieldError("; ".join(errors[:MAX_LISTED_ERRORS]) + more)
    return rows


def _group(results: list[dict[str, Any]]) -> dict[str, Any]:
    inside = [r for r in results if r["truth"] is not None]
    out = [r for r in results if r["truth"] is None]
    top1 = sum(r["accepted"] and r["predicted"] == r["truth"] for r in inside)
    guess = sum(r["guess"] == r["truth"] for r in inside)
    wrong = sum(r["accepted"] and r["predicted"] != r["truth"] for r in inside)
    fa = sum(bool(r["accepted"]) for r in out)
    return {"n": len(results), "n_in": len(inside), "n_out": len(out),
            "top1": round(top1 / len(inside), 4) if inside else None,
            "guess_top1": round(guess / len(inside), 4) if inside else None, "wrong_accepts": wrong,
            "false_accepts": fa, "far": round(fa / len(out), 4) if out else None}


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The groups of the module docstring from per-clip results (truth, predicted, guess, accepted, venue,
    device)."""
    def by(key) -> dict[str, Any]:
        names = sorted({key(r) for r in results})
        return {n: _group([r for r in results if key(r) == n]) for n in names}

    return {"all": _group(results), "venue": by(lambda r: r["venue"]), "device": by(lambda r: r["device"]),
            "venue_device": by(lambda r: f"{r['venue']}|{r['device']}")}


def evaluate(rows: list[FieldRow], method: Any, progress: bool = True) -> list[dict[str, Any]]:
    """Identify every clip (decoded with ffmpeg at the model's rate); FieldError naming an undecodable row."""
    from resonance.audio import AudioError, decode
    from resonance.progress import progress as progress_bar

    sr = method.embedder.sr
    results = []
    for row in progress_bar(rows, desc="field evaluate", unit="clip", disable=not progress):
        try:
            audio = decode(row.path, sr)
        except AudioError as exc:
            raise FieldError(f"row {row.row} ({row.path}): {exc}") from None
        start = time.perf_counter()
        found = method.recognize(audio, sr)
        results.append({"row": row.row, "file": str(row.path), "truth": row.track_id, "venue": row.venue,
                        "device": row.device, "predicted": found.track.track_id if found.track else None,
                        "guess": found.guess.track_id if found.guess else None, "accepted": bool(found.accepted),
                        "confidence": round(float(found.confidence), 4), "reason": found.reason,
                        "latency_ms": round((time.perf_counter() - start) * 1000, 1), **row.extra})
    return results


def report_markdown(metrics: dict[str, Any], csv_path: str) -> str:
    """The field report: the note that it stands in for real recordings, then the per-group table."""
    from resonance.registry.figures import field_table

    cells = ["| venue x device | in catalog | top-1 | out | false accepts |", "|---|---:|---:|---:|---:|"]
    for name, g in metrics["venue_device"].items():
        top1 = "n/a" if g["top1"] is None else f"{100 * g['top1']:.1f}%"
        far = "n/a" if g["far"] is None else f"{100 * g['far']:.1f}%"
        cells.append(f"| {name.replace('|', ' x ')} | {g['n_in']} | {top1} | {g['n_out']} | {far} |")
    return "\n".join([f"# Field test: `{csv_path}`", "",
                      "The default field set is built from real measured responses (PA cabinet, halls, street, "
                      "phone speaker) outside the simulator, with real crowd recordings: it stands in for real "
                      "field clips of the catalog, which do not exist here.", "", field_table(metrics), "",
                      "\n".join(cells), ""])


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Flat figures for DVC: field_top1, field_far, then per venue and device."""
    out: dict[str, Any] = {"field_top1": metrics["all"]["top1"], "field_far": metrics["all"]["far"],
                           "field_clips": metrics["all"]["n"]}
    for kind in ("venue", "device"):
        for name, g in metrics[kind].items():
            out[f"field_top1_{kind}_{name}"] = g["top1"]
            out[f"field_far_{kind}_{name}"] = g["far"]
    return out


def run(csv_path: Path, method: Any, out_dir: Path, metrics_path: Path | None, mlflow_experiment: str,
        progress: bool = True) -> dict[str, Any]:
    """Check, evaluate, score and write (module docstring); returns the metrics."""
    rows = read_csv(Path(csv_path), {t.track_id for t in method.index.tracks})
    results = evaluate(rows, method, progress)
    metrics = {"csv": str(csv_path), **score(results), "clips": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    with atomic_open(out_dir / "report.md") as fh:
        fh.write(report_markdown(metrics, str(csv_path)))
    if metrics_path is not None:
        write_json(metrics_path, headline(metrics))
    if os.environ.get("MLFLOW_TRACKING_URI"):
        _log_mlflow(metrics, out_dir, mlflow_experiment)
    return metrics


def _log_mlflow(metrics: dict[str, Any], out_dir: Path, experiment: str) -> None:
    import mlflow

    from resonance.registry.versions import field_metrics

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"field-{Path(metrics['csv']).parent.name}"):
        mlflow.log_params({"method": "embedding", "query_set": metrics["csv"], "kind": "field"})
        mlflow.log_metrics(field_metrics(metrics))
        for name in ("metrics.json", "report.md"):
            mlflow.log_artifact(str(out_dir / name))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def describe(metrics: dict[str, Any], out_dir: Path) -> str:
    """One line for the terminal."""
    a = metrics["all"]
    venues = ", ".join(f"{k} {_pct(g['top1'])}" for k, g in metrics["venue"].items())
    devices = ", ".join(f"{k} {_pct(g['top1'])}" for k, g in metrics["device"].items())
    return (f"field evaluate: {a['n']} clips: top-1 {_pct(a['top1'])} of {a['n_in']} in catalog (venues: {venues}; "
            f"devices: {devices}); false accepts {_pct(a['far'])} of {a['n_out']} outside -> {out_dir}")

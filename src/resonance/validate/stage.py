"""`resonance validate`: compute per-track audio stats, run the GX suites, write a report and metrics.

Outputs: OUT/audio_stats.jsonl (one row per track), OUT/results.json (every expectation), OUT/report.md
(readable, failures first) and, when everything passes, the metrics JSON that DVC tracks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from resonance.audio import AudioError
from resonance.catalog.manifest import Track, load_manifest
from resonance.config import ValidateParams
from resonance.io import atomic_open, write_json, write_jsonl
from resonance.validate.stats import file_stats
from resonance.validate.suites import (
    audio_expectations,
    manifest_expectations,
    run_suites,
    split_count_expectations,
)


def compute_stats(tracks: list[Track], catalog_dir: Path, p: ValidateParams, progress: bool = True,
                  workers: int = 2) -> pd.DataFrame:
    """One row of audio statistics per track (an unreadable file gets readable=False, not an exception)."""
    from tqdm import tqdm

    def one(t: Track) -> dict:
        row: dict = {"track_id": t.track_id}
        try:
            row |= file_stats(catalog_dir / t.audio_path, t.sha256, p.frame_ms, p.silence_threshold_db, p.clip_level)
            row["readable"] = True
        except AudioError as exc:
            row |= {"readable": False, "error": str(exc), "sha256_match": False, "channels": 0, "sample_rate": 0,
                    "nonfinite": 0, "rms_dbfs": None, "silence_fraction": None, "clipping_fraction": None}
        return row

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(tqdm(pool.map(one, tracks), total=len(tracks), desc="validate: audio stats", unit="track",
                         disable=not progress, dynamic_ncols=True))
    return pd.DataFrame(rows)


def run(p: ValidateParams, catalog_dir: Path, out_dir: Path, metrics_path: Path, progress: bool = True) -> dict:
    """Validate the catalog at `catalog_dir`; returns the summary (with `success`)."""
    tracks = load_manifest(catalog_dir)
    manifest = pd.DataFrame([t.to_dict() for t in tracks], columns=list(Track.__dataclass_fields__))
    stats = compute_stats(tracks, catalog_dir, p, progress)
    if stats.empty:
        stats = pd.DataFrame(columns=["track_id", "readable"])
    splits = manifest.groupby("split").size().reindex(p.splits, fill_value=0)
    counts = pd.DataFrame({"split": splits.index, "tracks": splits.to_numpy()})
    results = run_suites({
        "manifest": (manifest, manifest_expectations(p)),
        "audio": (stats, audio_expectations(p)),
        "split_counts": (counts, split_count_expectations(p)),
    })
    summary = summarize(results, manifest, stats)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "audio_stats.jsonl", stats.to_dict(orient="records"))
    write_json(out_dir / "results.json", results)
    with atomic_open(out_dir / "report.md") as fh:
        fh.write(render_report(results, summary, catalog_dir))
    if summary["success"]:
        write_json(metrics_path, summary)
    else:
        Path(metrics_path).unlink(missing_ok=True)
    summary["report"] = str(out_dir / "report.md")
    return summary


def summarize(results: list[dict], manifest: pd.DataFrame, stats: pd.DataFrame) -> dict:
    """Counts and medians a person (and DVC metrics) want to see."""
    failed = [r for r in results if not r["success"]]

    def med(col: str) -> float | None:
        return round(float(stats[col].median()), 4) if col in stats and stats[col].notna().any() else None

    return {
        "success": not failed,
        "expectations": len(results),
        "failed": len(failed),
        "tracks": int(len(manifest)),
        "hours": round(float(manifest["duration_s"].sum()) / 3600, 3) if len(manifest) else 0.0,
        "splits": {k: int(v) for k, v in manifest["split"].value_counts().sort_index().items()},
        "median_rms_dbfs": med("rms_dbfs"),
        "median_silence_fraction": med("silence_fraction"),
        "median_clipping_fraction": med("clipping_fraction"),
    }


def render_report(results: list[dict], summary: dict, catalog_dir: Path) -> str:
    """Markdown: verdict, then failed expectations with offending tracks, then the passed ones."""
    verdict = "PASSED" if summary["success"] else f"FAILED ({summary['failed']} of {summary['expectations']})"
    lines = [f"# Catalog validation: {verdict}", "",
             f"Catalog `{catalog_dir}`: {summary['tracks']} tracks, {summary['hours']:.1f} h, splits {summary['splits']}.",
             "", "| | suite | expectation | column | settings | unexpected | examples |", "|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r["success"]):
        mark = "ok" if r["success"] else "**FAIL**"
        ex = ", ".join(str(e) for e in r["examples"][:5]) or (str(r["observed"]) if r["observed"] is not None else "")
        if r.get("error"):
            ex = f"error: {r['error'][:120]}"
        settings = ", ".join(f"{k}={v}" for k, v in r["kwargs"].items() if k != "result_format")[:80]
        lines.append(f"| {mark} | {r['suite']} | {r['expectation']} | {r['column']} | {settings} | "
                     f"{r['unexpected_count']} ({r['unexpected_percent']:.1f}%) | {ex} |")
    return "\n".join(lines) + "\n"


def describe(summary: dict) -> str:
    """One line for the terminal."""
    if summary["success"]:
        return (f"validate: all {summary['expectations']} expectations passed on {summary['tracks']} tracks "
                f"({summary['hours']:.1f} h) -> {summary['report']}")
    return (f"validate: {summary['failed']} of {summary['expectations']} expectations FAILED; "
            f"see {summary['report']}")

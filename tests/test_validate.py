"""Great Expectations validation: a healthy catalog passes; planted bad rows fail with a readable report."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resonance.catalog.stage import run as build
from resonance.config import CatalogParams, ValidateParams, load_section
from resonance.validate.stage import run as validate
from resonance.validate.stats import audio_stats


@pytest.fixture()
def catalog(params_file: Path, cache_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "catalog"
    build(load_section(params_file, "catalog", CatalogParams), out, cache_dir, progress=False)
    return out


def _validate(params_file: Path, catalog: Path, tmp_path: Path) -> dict:
    p = load_section(params_file, "validate", ValidateParams)
    return validate(p, catalog, tmp_path / "validate", tmp_path / "metrics.json", progress=False)


def test_healthy_catalog_passes_and_writes_metrics(params_file: Path, catalog: Path, tmp_path: Path) -> None:
    summary = _validate(params_file, catalog, tmp_path)
    assert summary["success"], (tmp_path / "validate" / "report.md").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tracks"] == summary["tracks"] >= 3 and metrics["failed"] == 0
    stats = [json.loads(line) for line in (tmp_path / "validate" / "audio_stats.jsonl").read_text().splitlines()]
    assert len(stats) == metrics["tracks"] and all(s["sha256_match"] for s in stats)


def _plant(catalog: Path, edit) -> None:
    path = catalog / "manifest.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = edit(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("edit, expectation", [
    (lambda rows: rows + [rows[0]], "expect_column_values_to_be_unique"),
    (lambda rows: [{**rows[0], "license": "All rights reserved"}] + rows[1:], "expect_column_values_to_match_regex"),
    (lambda rows: [{**rows[0], "duration_s": -1.0}] + rows[1:], "expect_column_values_to_be_between"),
    (lambda rows: [{**rows[0], "split": "test"}] + rows[1:], "expect_column_values_to_be_in_set"),
    (lambda rows: [{**rows[0], "sha256": rows[1]["sha256"]}] + rows[1:], "expect_column_values_to_be_unique"),
])
def test_planted_bad_row_fails(params_file: Path, catalog: Path, tmp_path: Path, edit, expectation: str) -> None:
    _plant(catalog, edit)
    summary = _validate(params_file, catalog, tmp_path)
    assert not summary["success"]
    assert not (tmp_path / "metrics.json").exists()
    report = (tmp_path / "validate" / "report.md").read_text()
    assert report.startswith("# Catalog validation: FAILED")
    failed = [r for r in json.loads((tmp_path / "validate" / "results.json").read_text()) if not r["success"]]
    assert expectation in {r["expectation"] for r in failed}


def test_cli_exits_nonzero_on_failure(params_file: Path, catalog: Path, tmp_path: Path) -> None:
    _plant(catalog, lambda rows: [{**rows[0], "license": "proprietary"}] + rows[1:])
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(params_file), "-q", "validate",
                           "--catalog", str(catalog), "--out", str(tmp_path / "v"),
                           "--metrics", str(tmp_path / "m.json")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "report.md" in proc.stdout


def test_audio_stats_on_known_signals() -> None:
    sr = 16000
    sine = 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr * 2) / sr).astype(np.float32)
    s = audio_stats(sine, sr, frame_ms=50, silence_threshold_db=-60, clip_level=0.999)
    assert abs(s["rms_dbfs"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.05
    assert s["silence_fraction"] == 0 and s["clipping_fraction"] == 0 and s["nonfinite"] == 0
    gated = np.concatenate([sine, np.zeros(sr * 2, np.float32)])
    assert abs(audio_stats(gated, sr, 50, -60, 0.999)["silence_fraction"] - 0.5) < 0.01
    clipped = np.clip(sine * 4, -1, 1)
    assert audio_stats(clipped, sr, 50, -60, 0.999)["clipping_fraction"] > 0.5
    broken = sine.copy()
    broken[:10] = np.nan
    assert audio_stats(broken, sr, 50, -60, 0.999)["nonfinite"] == 10

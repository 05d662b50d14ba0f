"""Validation's audio suite on planted bad audio: a copy of the fixture catalog with one track's FLAC altered (a
changed sample, silence, clipping, another sample rate), validated for real (Great Expectations).

Each plant must fail exactly the audio expectation that guards against it, name the planted track, leave the
others passing, and stop the pipeline (no metrics file, a FAILED report). Where the plant changes the PCM on
purpose (silence, clipping) the manifest's sha256 is updated to the new audio, so the hash check does not mask the
expectation under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from resonance.audio import pcm_sha256, write_flac
from resonance.catalog.manifest import load_manifest
from resonance.config import ValidateParams, load_section
from resonance.validate.stage import run as validate

IN_SET, BETWEEN = "expect_column_values_to_be_in_set", "expect_column_values_to_be_between"


def _flip_one_sample(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, int, bool]:
    out = pcm.copy()
    out[out.size // 2] ^= 1  # one least significant bit: inaudible, but no longer the catalogued audio
    return out, sr, False


def _silence(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, int, bool]:
    return np.zeros_like(pcm), sr, True


def _clip(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, int, bool]:
    return np.clip(pcm.astype(np.int32) * 16, -32767, 32767).astype(np.int16), sr, True  # driven 24 dB into the rails


def _other_rate(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, int, bool]:
    return pcm, 22050, False  # the same samples stored as 22.05 kHz: same PCM hash, wrong rate


# plant -> the failed (expectation, column) pairs of the audio suite, and nothing else
PLANTS: dict[str, tuple[Callable, set[tuple[str, str]]]] = {
    "sha mismatch": (_flip_one_sample, {(IN_SET, "sha256_match")}),
    "silent track": (_silence, {(BETWEEN, "rms_dbfs"), (BETWEEN, "silence_fraction")}),
    "clipped track": (_clip, {(BETWEEN, "clipping_fraction")}),
    "wrong sample rate": (_other_rate, {(IN_SET, "sample_rate")}),
}


@pytest.fixture()
def catalog(built: dict, tmp_path: Path) -> Path:
    """A private copy of the session's fixture catalog (it passes validation as built: test_validate.py)."""
    return Path(shutil.copytree(built["root"] / "catalog", tmp_path / "catalog"))


def _plant(catalog: Path, how: Callable) -> str:
    """Alter the first track's FLAC with `how`; returns its track id."""
    track = load_manifest(catalog)[0]
    path = catalog / track.audio_path
    pcm, sr = sf.read(str(path), dtype="int16")
    new, new_sr, rehash = how(pcm, sr)
    path.unlink()
    write_flac(path, new, new_sr)
    if rehash:
        rows = [json.loads(line) for line in (catalog / "manifest.jsonl").read_text().splitlines()]
        rows[0]["sha256"] = pcm_sha256(new)
        (catalog / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return track.track_id


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_planted_bad_audio_fails_its_expectation(built: dict, catalog: Path, tmp_path: Path, plant: str) -> None:
    how, expected = PLANTS[plant]
    bad = _plant(catalog, how)
    p = load_section(built["params"], "validate", ValidateParams)
    summary = validate(p, catalog, tmp_path / "validate", tmp_path / "metrics.json", progress=False)
    assert not summary["success"]
    assert not (tmp_path / "metrics.json").exists()
    results = json.loads((tmp_path / "validate" / "results.json").read_text())
    failed = [r for r in results if not r["success"]]
    assert {(r["expectation"], r["column"]) for r in failed if r["suite"] == "audio"} == expected
    assert all(r["suite"] == "audio" for r in failed), failed  # the manifest and split counts still pass
    for r in failed:
        assert r["examples"] == [bad] and r["unexpected_count"] == 1, r
    report = (tmp_path / "validate" / "report.md").read_text()
    assert report.startswith("# Catalog validation: FAILED")
    fail_lines = [line for line in report.splitlines() if line.startswith("| **FAIL**")]
    assert len(fail_lines) == len(expected) and all(bad in line for line in fail_lines)
    stats = {json.loads(line)["track_id"]: json.loads(line)
             for line in (tmp_path / "validate" / "audio_stats.jsonl").read_text().splitlines()}
    assert all(s["sha256_match"] for tid, s in stats.items() if tid != bad)


def test_the_cli_stops_the_pipeline_on_bad_audio(built: dict, catalog: Path, tmp_path: Path) -> None:
    bad = _plant(catalog, _silence)
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(built["params"]), "-q", "validate",
                           "--catalog", str(catalog), "--out", str(tmp_path / "v"),
                           "--metrics", str(tmp_path / "m.json")], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout and not (tmp_path / "m.json").exists()
    assert bad in (tmp_path / "v" / "report.md").read_text()

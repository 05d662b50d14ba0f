"""One real Debian music package end to end: apt-get download, extraction, tracker-module decoding, license.

Uses the network to Debian's archive (a 1.5 MB package); skipped where apt cannot see the package.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resonance.catalog.manifest import load_manifest
from resonance.catalog.stage import run
from resonance.config import CatalogParams, ValidateParams, load_section
from resonance.validate.stage import run as validate

from conftest import ROOT

PACKAGE = "tecnoballz-data"  # 15 MOD tracker tunes by one composer, GPL-3+


def _apt_knows(package: str) -> bool:
    if shutil.which("apt-cache") is None:
        return False
    proc = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
    return proc.returncode == 0 and "Package:" in proc.stdout


@pytest.mark.network
@pytest.mark.skipif(not _apt_knows(PACKAGE), reason=f"apt lists do not know {PACKAGE} (run `apt-get update`)")
def test_real_package_becomes_a_valid_catalog(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["catalog"]["profiles"]["one"] = {"max_tracks": 4, "packages": [PACKAGE]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    cat = load_section(path, "catalog", CatalogParams)
    header = run(cat, tmp_path / "catalog", tmp_path / "cache", profile="one", progress=False)
    tracks = load_manifest(tmp_path / "catalog")
    assert header["tracks"] == len(tracks) == 4
    assert all(t.package == PACKAGE and t.license.startswith("GPL") and t.duration_s >= 45 for t in tracks)
    assert all(t.source_path.endswith(".mod") for t in tracks)
    summary = validate(load_section(path, "validate", ValidateParams), tmp_path / "catalog", tmp_path / "v",
                       tmp_path / "m.json", progress=False)
    assert summary["tracks"] == 4
    failed = [r for r in json.loads((tmp_path / "v" / "results.json").read_text()) if not r["success"]]
    # With only four tracks a split may be empty; everything else about real audio must pass.
    assert all(r["suite"] == "split_counts" or r["expectation"] == "expect_column_distinct_values_to_contain_set"
               for r in failed), failed


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not _apt_knows(PACKAGE), reason=f"apt lists do not know {PACKAGE} (run `apt-get update`)")
def test_real_package_end_to_end_through_the_cli(tmp_path: Path) -> None:
    """Slow tier: the real package through the command line, as a user runs it: `resonance catalog` (apt-get
    download, tracker modules decoded), `validate`, `index build` of every track (an untrained `fast` model: it
    maps an exact, hop-aligned excerpt onto the very windows it indexed), then `identify --json` of excerpts of
    three real tracks saved as WAV files: each named, at its offset."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf
    import torch

    from resonance.config import load_train
    from resonance.index.calibration import Calibration, LengthCalibration
    from resonance.index.method import model_sha256
    from resonance.model.embedder import Embedder, EmbeddingModel, save_bundle

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["catalog"]["profiles"]["one"] = {"max_tracks": 6, "packages": [PACKAGE]}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))

    def cli(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(path), "-q", *args],
                              capture_output=True, text=True, timeout=2400)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # validate may fail a split count only
        return proc

    cli("catalog", "--profile", "one", "--out", str(tmp_path / "catalog"), "--cache", str(tmp_path / "cache"))
    tracks = load_manifest(tmp_path / "catalog")
    assert len(tracks) == 6 and all(t.source_path.endswith(".mod") and t.duration_s >= 45 for t in tracks)
    cli("validate", "--catalog", str(tmp_path / "catalog"), "--out", str(tmp_path / "v"),
        "--metrics", str(tmp_path / "m.json"))
    failed = [r for r in json.loads((tmp_path / "v" / "results.json").read_text()) if not r["success"]]
    assert all(r["suite"] == "split_counts" or r["expectation"] == "expect_column_distinct_values_to_contain_set"
               for r in failed), failed

    fast = load_train(path, "fast")
    torch.manual_seed(0)
    model = EmbeddingModel(fast.frontend, fast.encoder, fast.encoders[fast.encoder], fast.window_s, fast.hop_s)
    save_bundle(model, tmp_path / "model" / "model.pt")
    out = cli("index", "build", "--model", str(tmp_path / "model"), "--catalog", str(tmp_path / "catalog"),
              "--out", str(tmp_path / "index")).stdout
    assert out.startswith("index build: 6 tracks"), out
    first, _ = sf.read(tmp_path / "catalog" / tracks[0].audio_path, dtype="float32")
    lengths = (LengthCalibration(3.0, -50.0, 4.0, 200.0, 0.01, 0.5, 10, 10),)  # accepts any exact excerpt
    Calibration(model_sha256(model), "sequence", "margin", 8, 0.01, lengths,
                Embedder(model).embed(first[: 60 * 16000])).save(tmp_path / "calibration")
    clips, truth = [], {}
    for t in tracks[1:4]:
        audio, sr = sf.read(tmp_path / "catalog" / t.audio_path, dtype="float32")
        offset = 0.5 * int(t.duration_s / 2 / 0.5)  # mid-track, on the reference hop
        clip = tmp_path / f"{t.track_id}.wav"
        sf.write(clip, audio[int(offset * sr): int((offset + 4.0) * sr)], sr, subtype="PCM_16")
        clips.append(str(clip))
        truth[str(clip)] = (t.track_id, offset)
    proc = cli("identify", "--json", *clips, "--model", str(tmp_path / "model"), "--index", str(tmp_path / "index"),
               "--calibration", str(tmp_path / "calibration"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 3
    for row in rows:
        track_id, offset = truth[row["file"]]
        assert row["track_id"] == track_id and row["accepted"], row
        assert abs(row["offset_s"] - offset) <= 0.5 and np.isfinite(row["confidence"]), row

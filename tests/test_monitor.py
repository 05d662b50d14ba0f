"""Drift monitoring of field recordings: the per-clip features (pure), the crash-safe inbox, and on the fixture
project built once through the real pipeline: corrupt and silent clips rejected with their reason, clean clips
(an independent draw of the simulated conditions) without drift, drifted clips (much lower SNR, another sample
rate, heavy clipping) reported as drift and retraining triggered through the real Prefect flows, and a monitor
killed mid-run losing nothing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from resonance.monitor import inbox
from resonance.monitor.features import signal_features

from conftest import ROOT, music_clip

# The fixture project is built once through the real pipeline: a few minutes on an idle 2-core machine, up to
# an hour when other jobs hold both cores (its build counts against the first test that needs it).
pytestmark = pytest.mark.timeout(5400)

SR = 16000


def test_features_follow_noise_clipping_reverb_and_bandwidth() -> None:
    from scipy.signal import fftconvolve, resample_poly

    clean = music_clip(6.0, seed=3, sr=SR)
    rng = np.random.default_rng(0)
    base = signal_features(clean, SR, 0.05, 0.98)
    noisy = signal_features(clean + 0.3 * rng.standard_normal(clean.size).astype(np.float32), SR, 0.05, 0.98)
    assert noisy["snr_est_db"] < base["snr_est_db"] - 6
    clipped = signal_features(np.clip(clean * 30, -1, 1), SR, 0.05, 0.98)
    assert clipped["clipping_fraction"] > 0.2 > base["clipping_fraction"]
    tail = np.exp(-np.arange(int(4.5 * SR)) / (0.43 * SR)) * rng.standard_normal(int(4.5 * SR))  # RT60 3 s
    hall = fftconvolve(clean, tail)[:clean.size]
    hall = (hall / np.max(np.abs(hall)) * 0.3).astype(np.float32)
    assert signal_features(hall, SR, 0.05, 0.98)["rt60_est_s"] > 1.5 * base["rt60_est_s"]
    narrow = resample_poly(resample_poly(clean, 1, 4), 4, 1).astype(np.float32)  # 2 kHz band limit
    shape = signal_features(narrow, SR, 0.05, 0.98)
    assert shape["spectral_centroid_hz"] < base["spectral_centroid_hz"]
    assert shape["spectral_bandwidth_hz"] < base["spectral_bandwidth_hz"]
    assert base["loudness_dbfs"] == pytest.approx(base["rms_dbfs"], abs=3.0)


def test_recovery_archives_complete_runs_and_returns_the_rest(tmp_path: Path) -> None:
    layout = inbox.Layout(tmp_path / "monitoring").make()
    for run, names in (("run-a", ["a1.wav", "a2.ogg"]), ("run-b", ["b1.mp3"])):
        (layout.processing / run).mkdir()
        for n in names:
            (layout.processing / run / n).write_bytes(b"x")
    (layout.reports / "run-a").mkdir()
    (layout.reports / "run-a" / inbox.VERDICT).write_text("{}")  # run-a finished its report before the kill
    (layout.inbox / "b1.mp3").write_bytes(b"newer")  # a new clip of the same name arrived meanwhile
    assert inbox.recover(layout) == {"archived": 2, "returned": 1}
    assert sorted(p.name for p in (layout.archive / "run-a").iterdir()) == ["a1.wav", "a2.ogg"]
    assert sorted(p.name for p in layout.inbox.iterdir()) == ["b1.1.mp3", "b1.mp3"]
    assert not any(layout.processing.iterdir())


@pytest.fixture()
def monitored(mlops_project: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built project with empty monitoring folders (the reference cache kept) and its MLflow store."""
    proj = mlops_project["dir"]
    for name in ("inbox", "processing", "archive", "rejected", "reports"):
        shutil.rmtree(proj / "monitoring" / name, ignore_errors=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlops_project["uri"])
    return proj


@pytest.fixture(scope="module")
def fresh_clips(mlops_project: dict, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Clips of an independent draw of the simulated val conditions (another seed than the reference's)."""
    from resonance.banks.stage import load_banks
    from resonance.config import QueriesParams, SimulateParams, load_section
    from resonance.queries.stage import run

    proj = mlops_project["dir"]
    params = load_section(proj / "params.yaml", "queries", QueriesParams)
    params = dataclasses.replace(params, seed=params.seed + 1)
    out = tmp_path_factory.mktemp("fresh")
    run(params, load_section(proj / "params.yaml", "simulate", SimulateParams), load_banks(proj / "data/banks"),
        proj / "data/catalog", proj / "data/outside", out, progress=False)
    clips = sorted((out / "val" / "audio").glob("*.flac"))
    rng = np.random.default_rng(5)
    return [clips[i] for i in sorted(rng.choice(len(clips), 10, replace=False))]


def drop_clean(clips: list[Path], folder: Path) -> list[str]:
    """Copy clips into the inbox in several formats (FLAC as is, WAV, Ogg Vorbis)."""
    names = []
    for i, clip in enumerate(clips):
        audio, sr = sf.read(str(clip), dtype="float32")
        fmt = ("flac", "wav", "ogg")[i % 3]
        name = f"clean-{i:02d}.{fmt}"
        sf.write(str(folder / name), audio, sr, format=fmt.upper(), subtype="VORBIS" if fmt == "ogg" else "PCM_16")
        names.append(name)
    return names


def drop_drifted(clips: list[Path], folder: Path) -> list[str]:
    """The same kind of clips as a different field: 10 dB more noise, 8 kHz, driven 30x into clipping."""
    from scipy.signal import resample_poly

    rng = np.random.default_rng(9)
    names = []
    for i, clip in enumerate(clips):
        audio, sr = sf.read(str(clip), dtype="float64")
        noise = rng.standard_normal(audio.size) * np.sqrt(np.mean(audio ** 2) * 10)
        low = resample_poly(audio + noise, 1, 2)
        name = f"drifted-{i:02d}.wav"
        sf.write(str(folder / name), np.clip(low / np.max(np.abs(low)) * 30, -1, 1), sr // 2, subtype="PCM_16")
        names.append(name)
    return names


def load_flow(name: str, attr: str):
    key = f"resonance_flows_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "flows" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[key], attr)


def test_corrupt_silent_and_too_few_clips(monitored: Path, fresh_clips: list[Path]) -> None:
    from resonance.config import EmbeddingParams, load_section
    from resonance.config.mlops import DeployParams, MonitorParams
    from resonance.monitor.stage import run

    box = monitored / "monitoring" / "inbox"
    box.mkdir(parents=True, exist_ok=True)
    (box / "corrupt.ogg").write_bytes(np.random.default_rng(1).bytes(5000))
    (box / "empty.mp3").write_bytes(b"")
    sf.write(str(box / "silent.wav"), np.zeros(SR * 3, np.float32), SR)
    sf.write(str(box / "short.wav"), music_clip(0.5, seed=2, sr=SR), SR)
    names = drop_clean(fresh_clips[:2], box)  # two good clips: fewer than monitor.min_clips
    params = [load_section(monitored / "params.yaml", n, c) for n, c in
              (("monitor", MonitorParams), ("embedding", EmbeddingParams), ("deploy", DeployParams))]
    verdict = run(monitored, *params, progress=False)
    assert verdict["status"] == "waiting" and verdict["waiting_clips"] == 2
    assert sorted(p.name for p in box.iterdir()) == sorted(names)  # they wait in the inbox
    why = {r["clip"]: r["reason"] for r in verdict["rejected"]}
    assert set(why) == {"corrupt.ogg", "empty.mp3", "silent.wav", "short.wav"}
    assert "not readable audio" in why["corrupt.ogg"] and "empty" in why["empty.mp3"]
    assert "rms_dbfs" in why["silent.wav"] and "duration_s" in why["short.wav"]
    rejected = monitored / "monitoring" / "rejected" / verdict["run_id"]
    for name in why:
        assert (rejected / name).is_file()
        assert json.loads((rejected / f"{name}.reason.json").read_text())["reason"] == why[name]


def test_clean_clips_no_drift_drifted_clips_trigger_retrain(prefect_harness, monitored: Path,
                                                            fresh_clips: list[Path], mlops_project: dict) -> None:
    from mlflow.tracking import MlflowClient

    monitor = load_flow("monitor", "monitor")
    box = monitored / "monitoring" / "inbox"
    box.mkdir(parents=True, exist_ok=True)
    clean = drop_clean(fresh_clips, box)
    verdict = monitor(project_dir=str(monitored))
    assert verdict["status"] == "done" and verdict["drift"] is False, verdict["features"]
    assert verdict["retrain"] is None and sorted(verdict["clips"]) == sorted(clean)
    report = monitored / "monitoring" / "reports" / verdict["run_id"]
    assert (report / "drift_report.html").stat().st_size > 10000 and (report / "features.csv").is_file()
    assert sorted(p.name for p in (monitored / "monitoring" / "archive" / verdict["run_id"]).iterdir()) == \
        sorted(clean)
    assert not any(box.iterdir())

    drifted = drop_drifted(fresh_clips, box)
    verdict = monitor(project_dir=str(monitored))
    assert verdict["drift"] is True, verdict["features"]
    assert {"sample_rate_hz", "clipping_fraction", "snr_est_db"} <= set(verdict["drifted_features"])
    assert sorted(verdict["clips"]) == sorted(drifted)
    retrain = verdict["retrain"]
    assert retrain is not None and retrain["reason"].startswith("drift in field recordings")
    assert verdict["run_id"] in retrain["reason"]
    assert retrain["ran"] == [] and retrain["decision"] == "unchanged"  # nothing changed: nothing retrained
    run = MlflowClient(mlops_project["uri"]).get_run(verdict["mlflow_run_id"])
    assert run.data.tags["drift"] == "true" and run.data.tags["retrain.reason"] == retrain["reason"]
    assert json.loads((monitored / "monitoring" / "reports" / "latest.json").read_text())["run_id"] == \
        verdict["run_id"]


def test_a_killed_monitor_loses_nothing(monitored: Path, fresh_clips: list[Path]) -> None:
    box = monitored / "monitoring" / "inbox"
    box.mkdir(parents=True, exist_ok=True)
    names = sorted(drop_clean(fresh_clips, box) + drop_drifted(fresh_clips[:3], box))
    cmd = [sys.executable, "-m", "resonance", "-q", "monitor", "--no-mlflow", "--json"]
    proc = subprocess.Popen(cmd, cwd=monitored, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ})
    processing = monitored / "monitoring" / "processing"
    deadline = time.time() + 120
    while time.time() < deadline and not (processing.is_dir() and any(processing.glob("*/*"))):
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]  # it must not end (or fail) on its own
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-run: the clips were claimed, nothing reported yet
    proc.wait()

    def everywhere() -> list[str]:
        root = monitored / "monitoring"
        return sorted(p.name for sub in ("inbox", "processing", "archive", "rejected") for p in (root / sub).rglob("*")
                      if p.is_file() and not p.name.endswith(".reason.json"))

    assert everywhere() == names  # every clip is still somewhere, exactly once
    claimed = len(list(processing.glob("*/*")))  # the kill may land mid-claim: the rest is still in the inbox
    assert claimed, "the kill did not land mid-run"
    again = subprocess.run(cmd, cwd=monitored, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    verdict = json.loads(again.stdout)
    assert verdict["status"] == "done" and verdict["recovered"]["returned"] == claimed
    assert sorted(verdict["clips"]) == names and everywhere() == names
    assert not any(box.iterdir()) and not list(processing.glob("*/*"))

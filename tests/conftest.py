"""Shared fixtures: short generated music clips, real .deb packages built from them, and shrunken params.

The params are the project's real params.yaml, shrunk (short durations, one fixture package), never a
fake config invented for tests.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SR_SRC = 44100

# Quiet, offline, state inside the test's own folders; the venv's tools (resonance, dvc) on PATH.
os.environ.update(DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1",
                  PREFECT_SERVER_ANALYTICS_ENABLED="false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="resonance-prefect-"))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def music_clip(seconds: float, seed: int, sr: int = SR_SRC) -> np.ndarray:
    """A few seconds of generated 'music' (n_samples,): random notes with harmonics, envelopes and a beat."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    t_note = 0.0
    while t_note < seconds:
        dur = rng.uniform(0.15, 0.6)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        i0, i1 = int(t_note * sr), min(n, int((t_note + dur) * sr))
        t = np.arange(i1 - i0) / sr
        env = np.exp(-t * rng.uniform(2, 8))
        for h in range(1, 5):
            out[i0:i1] += env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h
        t_note += dur
    beat = (np.arange(n) % int(0.5 * sr)) < int(0.02 * sr)
    out += 0.3 * beat * rng.standard_normal(n)
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def write_ogg(path: Path, audio: np.ndarray, sr: int = SR_SRC) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, format="OGG", subtype="VORBIS")
    return path


def build_deb(out_dir: Path, package: str, files: dict[str, bytes], copyright_text: str,
              version: str = "1.0-1") -> Path:
    """A real .deb (via dpkg-deb --build) holding `files` (member path -> bytes) and a copyright file."""
    root = out_dir / f"{package}-root"
    shutil.rmtree(root, ignore_errors=True)
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        f"Description: resonance test fixture\n")
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    deb = out_dir / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return deb


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fixture

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: music/bonus_*
Copyright: 2021 Someone Else
License: CC-BY-SA-3.0
"""

PKG = "resonance-fixture-music"
MUSIC_DIR = "usr/share/games/fixture/music"


@pytest.fixture(scope="session")
def fixture_debs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one real .deb with 4 distinct songs, an exact and a near duplicate, and bad files."""
    import soundfile as sf

    work = tmp_path_factory.mktemp("debs")
    clips = {f"song_{i}.ogg": music_clip(6.0, seed=i) for i in range(3)}
    files = {f"{MUSIC_DIR}/{name}": write_ogg(work / name, a).read_bytes() for name, a in clips.items()}
    files[f"{MUSIC_DIR}/bonus_theme.ogg"] = write_ogg(work / "bonus.ogg", music_clip(7.0, seed=10)).read_bytes()
    files[f"{MUSIC_DIR}/copies/song_0_copy.ogg"] = files[f"{MUSIC_DIR}/song_0.ogg"]  # exact duplicate
    sf.write(str(work / "near.wav"), clips["song_1.ogg"], SR_SRC)  # same song, other encoding
    files[f"{MUSIC_DIR}/song_1_remaster.wav"] = (work / "near.wav").read_bytes()
    files[f"{MUSIC_DIR}/jingle.ogg"] = write_ogg(work / "jingle.ogg", music_clip(1.0, seed=5)).read_bytes()
    files[f"{MUSIC_DIR}/silence.ogg"] = write_ogg(work / "sil.ogg", np.zeros(SR_SRC * 5, np.float32)).read_bytes()
    tail = np.concatenate([music_clip(2.5, seed=6), np.zeros(SR_SRC * 8, np.float32)])
    files[f"{MUSIC_DIR}/mostly_silent.ogg"] = write_ogg(work / "ms.ogg", tail).read_bytes()
    files[f"{MUSIC_DIR}/corrupt.ogg"] = np.random.default_rng(0).bytes(20000)
    files[f"{MUSIC_DIR}/empty.ogg"] = b""
    files["usr/share/games/fixture/readme.txt"] = b"not music"
    debs = work / "debs"
    debs.mkdir()
    build_deb(debs, PKG, files, DEP5)
    return debs


@pytest.fixture()
def cache_dir(tmp_path: Path, fixture_debs: Path) -> Path:
    """A catalog cache pre-seeded with the fixture .deb (as if apt-get download had fetched it)."""
    cache = tmp_path / "cache"
    shutil.copytree(fixture_debs, cache / "debs")
    return cache


def shrunk_params() -> dict:
    """The project's params.yaml, shrunk to the fixture package and few-second tracks."""
    params = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    cat = params["catalog"]
    cat.update(min_duration_s=3.0, max_duration_s=60.0, fingerprint_length_s=10, profile="fixture")
    cat["profiles"]["fixture"] = {"max_tracks": None, "packages": [PKG]}
    cat["sources"][PKG] = {"container": None, "pattern": rf"^{MUSIC_DIR}/.*\.(ogg|wav)$"}
    params["validate"].update(duration_s=[3.0, 60.0])
    cat["seed"] = seed_covering_all_splits(cat["splits"])
    return params


SONGS = ["song_0.ogg", "song_1.ogg", "song_2.ogg", "bonus_theme.ogg"]  # the distinct songs of the fixture


def seed_covering_all_splits(fractions: dict) -> int:
    """The first seed under which the fixture's 4 songs land in all three splits (so validation can pass)."""
    from resonance.catalog.build import assign_split, track_id_for

    ids = [track_id_for(PKG, f"{MUSIC_DIR}/{s}") for s in SONGS]
    return next(seed for seed in range(1000) if len({assign_split(i, seed, fractions) for i in ids}) == 3)


@pytest.fixture()
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(shrunk_params(), sort_keys=False))
    return path


def dvc(project: Path, *args: str) -> str:
    """Run `dvc ARGS` in `project` (its site cache kept inside it); returns stdout+stderr, asserts success."""
    proc = subprocess.run(["dvc", *args], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "DVC_SITE_CACHE_DIR": str(project / ".dvc" / "site-cache")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture()
def project(tmp_path: Path, fixture_debs: Path) -> Path:
    """A throwaway DVC project: this repo's dvc.yaml and src/, shrunk params, the fixture .deb cached."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (proj / "params.yaml").write_text(yaml.safe_dump(shrunk_params(), sort_keys=False))
    shutil.copytree(fixture_debs, proj / "data" / "cache" / "debs")
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    dvc(proj, "init", "-q")
    return proj

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

from resonance.kernels import pin_blas_kernels

pin_blas_kernels()  # before numpy loads: the test process runs the OpenBLAS kernels the CLI processes it starts run

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SR_SRC = 44100

# Quiet, offline, state inside the test's own folders; the venv's tools (resonance, dvc) on PATH.
os.environ.update(DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1",
                  PREFECT_SERVER_ANALYTICS_ENABLED="false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="resonance-prefect-"))
# Never the project's own MLflow store (make exports it): tests log to a throwaway sqlite store.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tempfile.mkdtemp(prefix='resonance-mlflow-')}/mlflow.db"
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def scramble_global_rngs(seed: int) -> None:
    """Reseed every global random generator (random, numpy's legacy one, torch's if loaded). Called between two
    runs that must give the same bits, so that code drawing from hidden global state fails the comparison."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


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
def cache_dir(tmp_path: Path, extra_debs: Path) -> Path:
    """A catalog cache pre-seeded with the fixture .deb (as if apt-get download had fetched it)."""
    cache = tmp_path / "cache"
    shutil.copytree(extra_debs, cache / "debs")
    shutil.copytree(extra_debs, cache / "noise" / "debs")
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
    cat["profiles"]["outside"] = {"max_tracks": None, "packages": [OUTSIDE_PKG]}
    cat["sources"][OUTSIDE_PKG] = {"container": None, "pattern": rf"^{MUSIC_DIR}/.*\.ogg$"}
    banks = params["banks"]
    banks.update(rooms_per_class=2, crowd_beds=2, crowd_bed_s=6.0, synthetic_voices=1, max_speech_clips=20,
                 noise_packages=[NOISE_PKG], noise_sources={NOISE_PKG: {"container": None, "pattern": r"\.wav$"}})
    banks["rooms"] = {k: banks["rooms"][k] for k in ("club", "theatre", "arena", "festival")}
    banks["rooms"]["arena"].update(rt60_s=[2.0, 2.2])
    banks["crowd"].update(voices=[3, 5], clips_per_voice=3)
    sim = params["simulate"]
    sim["presets"].pop("stadium")  # not in the shrunk room bank
    params["train"]["data"]["presets"].remove("stadium")
    params["train"]["data"]["conditions"]["rooms"].pop("stadium")
    params["train"]["profile"] = "fast"  # the pipeline's train stage in < 1 min
    sim["grid"].update(snr_db=[10.0, -10.0])
    params["evaluate"].update(query_set="val", index_sizes=[2], bootstrap_samples=200)
    params["embedding"].update(cohort_size=256, cohort_top=16)
    params["queries"].update(lengths_s=[1.0, 3.0], sets={"val": {"split": "val", "excerpts": 4,
                                                               "outside_excerpts": 2}})
    from mlops_support import shrink_mlops  # the MLOps sections (promote, monitor, field, flows)

    shrink_mlops(params)
    return params


OUTSIDE_PKG = "resonance-fixture-outside"
NOISE_PKG = "resonance-fixture-crowd"
NOISE_DIR = "usr/share/fixture/sounds"


def noise_burst_clip(seed: int, seconds: float, per_s: float, decay_s: float, sr: int = SR_SRC) -> np.ndarray:
    """Stand-in applause (decay ~10 ms: claps) or cheering (decay ~0.3 s): random decaying noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.zeros(n)
    for start in rng.uniform(0.0, seconds, size=int(per_s * seconds)):
        i = int(start * sr)
        m = min(int(5 * decay_s * sr), n - i)
        out[i:i + m] += rng.uniform(0.3, 1.0) * rng.standard_normal(m) * np.exp(-np.arange(m) / (decay_s * sr))
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def espeak_wav(text: str, voice: str) -> bytes:
    """Real (synthetic) speech from espeak-ng as WAV bytes."""
    proc = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True)
    return proc.stdout


@pytest.fixture(scope="session")
def extra_debs(fixture_debs: Path) -> Path:
    """Adds to the fixture .deb folder: an outside-music package (2 new songs) and a crowd/speech package."""
    import soundfile as sf

    work = fixture_debs.parent
    songs = {f"{MUSIC_DIR}/other_{i}.ogg": write_ogg(work / f"o{i}.ogg", music_clip(7.0, seed=100 + i)).read_bytes()
             for i in range(2)}
    build_deb(fixture_debs, OUTSIDE_PKG, songs, DEP5)
    files = {}
    for i, (name, clip) in enumerate([("applause", noise_burst_clip(1, 4.0, 60, 0.01)),
                                      ("cheer", noise_burst_clip(2, 4.0, 4, 0.3))]):
        sf.write(str(work / f"{name}.wav"), clip, SR_SRC)
        files[f"{NOISE_DIR}/{name}.wav"] = (work / f"{name}.wav").read_bytes()
    for i, (text, voice) in enumerate([("Where is the bar? I need a drink.", "en"),
                                       ("They were better last year, I think.", "de"),
                                       ("Let's get closer to the stage now.", "fr")]):
        files[f"usr/share/games/fillets-ng/sound/fish/cs/line_{i}.wav"] = espeak_wav(text, voice)
    build_deb(fixture_debs, NOISE_PKG, files, DEP5)
    from mlops_support import build_ir_deb  # stand-ins of the measured responses the field set uses

    build_ir_deb(fixture_debs)
    return fixture_debs


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
def project(tmp_path: Path, extra_debs: Path) -> Path:
    """A throwaway DVC project: this repo's dvc.yaml and src/, shrunk params, the fixture .deb cached."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    for folder in ("src", "benchmarks"):
        shutil.copytree(ROOT / folder, proj / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                                   "RESULTS.md", "*.png"))
    (proj / "params.yaml").write_text(yaml.safe_dump(shrunk_params(), sort_keys=False))
    shutil.copytree(extra_debs, proj / "data" / "cache" / "debs")
    shutil.copytree(extra_debs, proj / "data" / "cache" / "noise" / "debs")
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    dvc(proj, "init", "-q")
    dvc(proj, "config", "core.site_cache_dir", str(proj / ".dvc" / "site-cache"))
    return proj


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, extra_debs: Path) -> dict:
    """Catalog, outside catalog and banks built once from the fixture packages."""
    from resonance.banks.stage import run as build_banks
    from resonance.catalog.stage import run as build_catalog
    from resonance.config import BanksParams, CatalogParams, load_section

    root = tmp_path_factory.mktemp("stages")
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(shrunk_params(), sort_keys=False))
    cache = root / "cache"
    shutil.copytree(extra_debs, cache / "debs")
    shutil.copytree(extra_debs, cache / "noise" / "debs")
    cat = load_section(params_file, "catalog", CatalogParams)
    build_catalog(cat, root / "catalog", cache, progress=False)
    build_catalog(cat, root / "outside", cache, profile="outside", progress=False, exclude=root / "catalog")
    header = build_banks(load_section(params_file, "banks", BanksParams), cat.sample_rate, root / "banks",
                         cache / "noise", progress=False)
    return {"root": root, "params": params_file, "banks_header": header}


@pytest.fixture(scope="session")
def prefect_harness():
    """An ephemeral Prefect API for the whole session (the MLOps flow tests)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):  # measured 330 s at nice 19 on the busy 2-core box
        yield


@pytest.fixture(scope="session")
def mlops_project(tmp_path_factory: pytest.TempPathFactory, extra_debs: Path) -> dict:
    """A fixture project built once through the real pipeline (dvc repro), its model registered, promoted
    (the first model) and deployed, in its own MLflow store (mlruns/ inside it). See mlops_support."""
    from mlops_support import build_and_deploy, make_project, mlops_params

    return build_and_deploy(make_project(tmp_path_factory.mktemp("mlops") / "proj", extra_debs, mlops_params()))

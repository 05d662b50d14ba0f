"""Helpers of the MLOps tests (registry, flows, monitor, field): a real .deb of measured-response stand-ins, the
shrunk params of the MLOps sections, and a fixture project built once through the real pipeline.

Only plain functions here; the fixtures that use them live in conftest.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

IR_PKG = "resonance-fixture-irs"
IR_FILES = {  # member path -> (channels, rate, seconds, decay time constant s): the real packages' member names
    "usr/share/gx_head/sounds/greathall.wav": (2, 48000, 1.2, 0.25),
    "usr/share/gx_head/sounds/amps/Mesa Boogie Mark V.wav": (1, 44100, 0.06, 0.008),
    "usr/share/gx_head/sounds/amps/Marshall MG 15.wav": (1, 44100, 0.05, 0.004),
    "usr/share/jconvolver/config-files/demo-reverbs/street2-L.wav": (1, 48000, 0.4, 0.06),
    "usr/share/jconvolver/config-files/demo-reverbs/street2-R.wav": (1, 48000, 0.4, 0.06),
}


def impulse_response(channels: int, sr: int, seconds: float, decay_s: float, seed: int) -> np.ndarray:
    """(n, channels) float32: a direct impulse then exponentially decaying noise (what a measured response is)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = rng.standard_normal((n, channels)) * np.exp(-t / decay_s)[:, None] * 0.3
    out[0] = 1.0
    return (out / np.max(np.abs(out))).astype(np.float32)


def build_ir_deb(debs_dir: Path) -> Path:
    """A real .deb holding stand-ins of the measured responses at the real packages' member paths."""
    import soundfile as sf

    from conftest import DEP5, build_deb

    files = {}
    for i, (member, (ch, sr, seconds, decay)) in enumerate(IR_FILES.items()):
        buf = io.BytesIO()
        sf.write(buf, impulse_response(ch, sr, seconds, decay, seed=50 + i), sr, format="WAV", subtype="PCM_16")
        files[member] = buf.getvalue()
    return build_deb(debs_dir, IR_PKG, files, DEP5)


def shrink_mlops(params: dict) -> dict:
    """The MLOps sections of the real params.yaml, shrunk to the fixture (in place; returns params)."""
    params["field"].update(packages={IR_PKG: {"container": None,
                                              "pattern": r"^usr/share/(gx_head/sounds/.*|jconvolver/.*)\.wav$"}},
                           excerpts=2, outside_excerpts=1, clip_s=3.0, preroll_s=0.5)
    params["promote"]["headline"] = "hit_rate_len3"  # the fixture's query lengths are 1 and 3 s, SNRs +10/-10
    params["monitor"].update(min_age_s=0.0, min_clips=4, reference_clips=200)
    params["flows"].update(retries=0, retry_delay_s=0.0)
    return params


@contextlib.contextmanager
def tracking_store(uri: str) -> Iterator[None]:
    """MLFLOW_TRACKING_URI set to `uri` for the block (restored after)."""
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old


def make_project(proj: Path, extra_debs: Path, params: dict) -> Path:
    """A throwaway DVC project like conftest's `project`: this repo's dvc.yaml, src/, benchmarks/, `params`."""
    from conftest import ROOT, dvc

    proj.mkdir(parents=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    for folder in ("src", "benchmarks"):
        shutil.copytree(ROOT / folder, proj / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                                   "RESULTS.md", "*.png"))
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(extra_debs, proj / "data" / "cache" / "debs")
    shutil.copytree(extra_debs, proj / "data" / "cache" / "noise" / "debs")
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
    dvc(proj, "init", "-q")
    dvc(proj, "config", "core.site_cache_dir", str(proj / ".dvc" / "site-cache"))
    return proj


def mlops_params() -> dict:
    """conftest's shrunk params for the MLOps fixture projects. evaluate.index_sizes is emptied: the catalog-size
    check scores 5 s, 0 dB queries, which the shrunk grid (+10/-10 dB, 1 and 3 s) has none of."""
    from conftest import shrunk_params

    params = shrunk_params()
    params["evaluate"]["index_sizes"] = []
    return params


def store_uri(proj: Path) -> str:
    return f"sqlite:///{proj / 'mlruns' / 'mlflow.db'}"


def build_and_deploy(proj: Path) -> dict:
    """The real pipeline on the project (dvc repro), its model registered, gated (the first becomes champion)
    and deployed, with plain function calls (no Prefect). Returns what each step returned."""
    from resonance.config import load_section
    from resonance.config.mlops import DeployParams, PromoteParams
    from resonance.orchestrate import dvc_repro
    from resonance.registry.deploy import build_release
    from resonance.registry.gate import run_gate
    from resonance.registry.versions import register

    (proj / "mlruns").mkdir(exist_ok=True)
    with tracking_store(store_uri(proj)):
        ran = dvc_repro(proj, [], log=lambda line: None)
        version = register(proj)
        decision = run_gate(proj, version["version"], version["figures"],
                            load_section(proj / "params.yaml", "promote", PromoteParams), log=lambda line: None)
        release = build_release(proj, load_section(proj / "params.yaml", "deploy", DeployParams),
                                log=lambda line: None)
    return {"dir": proj, "uri": store_uri(proj), "ran": ran, "version": version, "decision": decision,
            "release": release}

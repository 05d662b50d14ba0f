"""Where a model version came from: the git commit, the dvc.lock hashes of the data it was trained and measured
on, the params of the train section, and the machine's CPU with the OpenBLAS kernels pinned for it
(`resonance.kernels`). Plain reads of the project folder (no MLflow here)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from resonance.errors import ResonanceError
from resonance.kernels import runtime

DATA_PATHS = ("data/catalog", "data/banks", "data/queries")  # the data lineage a version records


class RegistryError(ResonanceError):
    """A registry step cannot run: no trained model, a version missing from the store, bad evaluation files."""


def tracking_uri(project_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, or the project's sqlite store `sqlite:///<abs project>/mlruns/mlflow.db`; a profile
    copy (runs/NAME/, its source.json naming the project) uses the store of the project it was made from, as
    `make run PROFILE=NAME` did."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    project_dir = Path(project_dir).resolve()
    try:
        source = json.loads((project_dir / "source.json").read_text()).get("project")
    except (OSError, ValueError, AttributeError):
        source = None
    if source and Path(source).is_dir():
        project_dir = Path(source)
    store = project_dir / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def git_commit(project_dir: Path) -> dict[str, Any]:
    """{"commit": HEAD sha or "none" (no git / no commit yet), "dirty": uncommitted changes to tracked files}. A
    profile copy (runs/NAME/, a git repository without commits) answers with the commit recorded in its
    source.json when it was made from the project."""
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
    except FileNotFoundError:
        return {"commit": "none", "dirty": False}
    if head.returncode != 0:
        source = Path(project_dir) / "source.json"  # a profile copy (runs/NAME/): the commit it was made from
        if source.is_file():
            made_from = json.loads(source.read_text())
            return {"commit": str(made_from.get("commit", "none")), "dirty": bool(made_from.get("dirty"))}
        return {"commit": "none", "dirty": False}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def dvc_lock_hashes(project_dir: Path, paths: tuple[str, ...] = DATA_PATHS) -> dict[str, str | None]:
    """The md5 dvc.lock records for each output path in `paths` (None when no stage outputs it yet)."""
    import yaml

    lock_path = Path(project_dir) / "dvc.lock"
    if not lock_path.is_file():
        return {p: None for p in paths}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    found: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") in paths and out.get("md5"):
                found[out["path"]] = out["md5"]
    return {p: found.get(p) for p in paths}


def data_key(hashes: dict[str, str | None]) -> str:
    """A short key of the data a figure was measured on (catalog + queries): figures compare only within a key."""
    text = f"{hashes.get('data/catalog')}|{hashes.get('data/queries')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_params(project_dir: Path) -> dict[str, Any]:
    """The raw `train` section of the project's params.yaml (profiles included) and the profile in force."""
    from resonance.config import load_params

    section = load_params(Path(project_dir) / "params.yaml").get("train")
    if not isinstance(section, dict):
        raise RegistryError(f"{project_dir}/params.yaml: no `train:` section")
    return section


def params_md5(section: dict[str, Any]) -> str:
    """md5 of a params section as sorted JSON (what dvc compares, in one short string)."""
    return hashlib.md5(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()


def lineage(project_dir: Path) -> dict[str, Any]:
    """Everything a version records about its origin (see the module docstring)."""
    section = train_params(project_dir)
    hashes = dvc_lock_hashes(project_dir)
    return {"git": git_commit(project_dir), "dvc_lock": hashes, "data_key": data_key(hashes),
            "train_profile": section.get("profile"), "train_params_md5": params_md5(section),
            "runtime": runtime()}

"""The DVC remote: the project's default is a local folder (.dvc/config), and a `dvc push` / `dvc pull` round trip
through such a remote restores the pipeline's outputs byte for byte on the fixture project."""

from __future__ import annotations

import configparser
import hashlib
import shutil
from pathlib import Path

from conftest import ROOT, dvc


def test_the_default_remote_is_a_local_folder() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    remote = config["core"]["remote"]
    url = config[f"'remote \"{remote}\"'"]["url"]
    assert "://" not in url and not Path(url).is_absolute()  # a folder beside the project, no credentials


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_then_pull_restores_the_outputs(project: Path, tmp_path: Path) -> None:
    dvc(project, "repro", "validate")  # catalog + validate: real outputs in the cache
    before = {name: _digest(project / "data" / name) for name in ("catalog", "validate")}
    remote = tmp_path / "remote"
    dvc(project, "remote", "add", "-d", "local", str(remote))
    assert "pushed" in dvc(project, "push")
    assert any(remote.rglob("*")), "nothing reached the remote"
    shutil.rmtree(project / ".dvc" / "cache")
    for name in ("catalog", "validate"):
        shutil.rmtree(project / "data" / name)
    dvc(project, "pull", "--with-deps", "validate")  # the stages that were built (the rest never ran here)
    assert {name: _digest(project / "data" / name) for name in ("catalog", "validate")} == before
    assert "up to date" in dvc(project, "status", "--with-deps", "validate")

"""The MLflow registry side: the promotion gate's rule (pure), lineage from dvc.lock and git, and on a fixture
project built once through the real pipeline (real MLflow sqlite store): the registered version's tags,
description and artifacts, the first model promoted, re-evaluation reproducing a version's figures, the manual
override through the CLI and the versions listing, and the champion's release swapped in for the service."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_support import store_uri, tracking_store
from resonance.config.mlops import PromoteParams
from resonance.registry.gate import decide
from resonance.registry.lineage import RegistryError, dvc_lock_hashes, git_commit

# The fixture project is built once through the real pipeline: a few minutes on an idle 2-core machine, up to
# an hour when other jobs hold both cores (its build counts against the first test that needs it).
pytestmark = pytest.mark.timeout(5400)

PARAMS = PromoteParams(headline="hit_rate_len5_snr0_reverb", margin=0.01, cell_tolerance=0.08,
                       open_set="hit_rate_at_far1", open_set_tolerance=0.02, reevaluate_champion=True)


def figures(head: float, open_set: float, cells: dict[str, float], key: str = "k1") -> dict:
    return {"data_key": key, "headline": {"hit_rate_len5_snr0_reverb": head, "hit_rate_at_far1": open_set},
            "cells": {c: {"hits": int(r * 100), "n": 100, "hit_rate": r} for c, r in cells.items()}}


CELLS = {"snr10_dry_clip0": 0.9, "snr0_hall_clip0": 0.4, "snr-10_arena_clip1": 0.05}


def test_gate_promotes_the_first_model() -> None:
    d = decide(figures(0.3, 0.1, CELLS), None, PARAMS)
    assert d.promote and "first model" in d.reasons[0]


def test_gate_promotes_a_clear_improvement_without_regressions() -> None:
    better = {**CELLS, "snr0_hall_clip0": 0.45}
    d = decide(figures(0.35, 0.11, better), figures(0.30, 0.10, CELLS), PARAMS)
    assert d.promote, d.reasons
    assert d.figures["delta.hit_rate_len5_snr0_reverb"] == pytest.approx(0.05)
    assert d.figures["champion.hit_rate_len5_snr0_reverb"] == 0.30


@pytest.mark.parametrize("challenger, why", [
    (figures(0.305, 0.10, CELLS), "less than the margin"),                       # +0.005 < margin 0.01
    (figures(0.40, 0.05, CELLS), "open set"),                                  # open set -0.05 > 0.02
    (figures(0.40, 0.10, {**CELLS, "snr10_dry_clip0": 0.7}), "grid cell"),     # one cell -0.20 > 0.08
])
def test_gate_holds_with_the_reason(challenger: dict, why: str) -> None:
    d = decide(challenger, figures(0.30, 0.10, CELLS), PARAMS)
    assert d.decision == "hold"
    assert any(why in r for r in d.reasons), d.reasons


def test_gate_never_compares_figures_of_other_data() -> None:
    d = decide(figures(0.9, 0.9, CELLS, key="new"), figures(0.1, 0.1, CELLS, key="old"), PARAMS)
    assert d.decision == "hold" and "other data" in d.reasons[0]


def test_gate_names_an_unknown_headline_key() -> None:
    bad = PromoteParams(**{**PARAMS.__dict__, "headline": "hit_rate_len7"})
    with pytest.raises(RegistryError, match="hit_rate_len7"):
        decide(figures(0.3, 0.1, CELLS), None, bad)


def test_lineage_reads_dvc_lock_and_the_git_commit(tmp_path: Path) -> None:
    lock = {"schema": "2.0", "stages": {
        "catalog": {"cmd": "x", "outs": [{"path": "data/catalog", "hash": "md5", "md5": "abc.dir"}]},
        "queries": {"cmd": "y", "outs": [{"path": "data/queries", "hash": "md5", "md5": "def.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert dvc_lock_hashes(tmp_path) == {"data/catalog": "abc.dir", "data/banks": None, "data/queries": "def.dir"}
    assert git_commit(tmp_path) == {"commit": "none", "dirty": False}  # not a repository
    run = {"cwd": tmp_path, "check": True, "capture_output": True}
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "add", "dvc.lock"], **run)
    subprocess.run(["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "lock"], **run)
    head = subprocess.run(["git", "rev-parse", "HEAD"], **run, text=True).stdout.strip()
    assert git_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "dvc.lock").write_text("changed: true\n")
    assert git_commit(tmp_path)["dirty"] is True


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_registered_version_carries_lineage_description_and_artifacts(mlops_project: dict) -> None:
    proj, uri = mlops_project["dir"], mlops_project["uri"]
    v = mlops_project["version"]
    mc = _client(uri)
    mv = mc.get_model_version(v["name"], v["version"])
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert mv.tags["lineage.dvc.data_catalog"] == lock["catalog"]["outs"][0]["md5"]
    assert mv.tags["lineage.dvc.data_queries"] == lock["queries"]["outs"][0]["md5"]
    assert mv.tags["lineage.dvc.data_banks"] == lock["banks"]["outs"][0]["md5"]
    assert mv.tags["lineage.git_commit"] == "none" and mv.tags["lineage.train_profile"] == "fast"
    from resonance.kernels import runtime

    assert {k: mv.tags.get(f"lineage.{k}") for k, v in runtime().items() if v} == {
        k: v for k, v in runtime().items() if v}  # the machine's CPU and OpenBLAS kernels
    assert mv.tags["eval.hit_rate_len3"] == str(json.loads((proj / "metrics/evaluate_embedding.json").read_text())
                                                ["hit_rate_len3"])
    # the first model is promoted, with its reason, and both aliases point at it
    assert mv.tags["promotion.decision"] == "promote" and "first model" in mv.tags["promotion.reason"]
    assert mv.tags["promotion.mode"] == "gate"
    assert set(mv.aliases) == {"champion", "challenger"}
    # a readable description: the per-condition table, the field test and the training summary
    text = mv.description
    assert "Song top-1 per condition" in text and "| snr10_dry_clip0 |" in text and "| snr-10_arena_clip1 |" in text
    assert "Field test" in text and "venue=greathall" in text and "device=phone" in text
    assert "## Training" in text and "## Promotion (gate" in text
    arts = {a.path for a in mc.list_artifacts(mv.run_id, "registry")}
    assert {"registry/evaluation", "registry/figures", "registry/field", "registry/lineage.json",
            "registry/params_train.json"} <= arts
    evaluation = {a.path for a in mc.list_artifacts(mv.run_id, "registry/evaluation")}
    assert {"registry/evaluation/report.md", "registry/evaluation/hit_rate_vs_snr.png"} <= evaluation
    metrics = mc.get_run(mv.run_id).data.metrics
    assert "eval/hit_rate_len3" in metrics and "field/top1/all" in metrics and "field/far/device/phone" in metrics


def test_registering_again_changes_nothing(mlops_project: dict) -> None:
    from resonance.registry.versions import register

    with tracking_store(mlops_project["uri"]):
        again = register(mlops_project["dir"])
    assert again["new"] is False and again["version"] == mlops_project["version"]["version"]


def test_reevaluating_a_version_on_the_same_data_reproduces_its_figures(mlops_project: dict) -> None:
    from resonance.registry.evaluation import reevaluate
    from resonance.registry.versions import load_figures

    v = mlops_project["version"]
    with tracking_store(mlops_project["uri"]):
        stored = load_figures(v["run_id"], v["figures"]["data_key"])
        fresh = reevaluate(mlops_project["dir"], f"models:/{v['name']}/{v['version']}", v["figures"]["data_key"],
                           log=lambda line: None)
    assert fresh["cells"] == stored["cells"]
    rates = [k for k in stored["headline"] if k.startswith(("hit_rate", "segment_hit_rate", "far"))]
    assert rates and {k: fresh["headline"][k] for k in rates} == {k: stored["headline"][k] for k in rates}


@pytest.fixture()
def project_copy(mlops_project: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built project (its own MLflow store: this test may move aliases)."""
    copy = tmp_path / "copy"
    shutil.copytree(mlops_project["dir"], copy, symlinks=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(copy))
    return copy


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resonance", *args], cwd=project, capture_output=True, text=True)


def test_manual_promotion_is_recorded_and_the_release_follows(project_copy: Path, mlops_project: dict) -> None:
    from resonance.config import load_section
    from resonance.config.mlops import DeployParams
    from resonance.registry.deploy import build_release, current_release

    name, v1 = mlops_project["version"]["name"], mlops_project["version"]["version"]
    mc = _client(store_uri(project_copy))
    first = mc.get_model_version(name, v1)
    v2 = str(mc.create_model_version(name, source=first.source, run_id=first.run_id).version)  # a second one
    assert _cli(project_copy, "promote", v1, "--reason", "x").returncode == 2  # already the champion
    missing = _cli(project_copy, "promote", "99", "--reason", "x")
    assert missing.returncode == 2 and "not in the MLflow store" in missing.stderr
    assert _cli(project_copy, "promote", v2).returncode == 2  # --reason is required
    done = _cli(project_copy, "promote", f"v{v2}", "--reason", "field tests at the venue look better")
    assert done.returncode == 0, done.stderr
    mv = mc.get_model_version(name, v2)
    assert mv.tags["promotion.decision"] == "promote" and mv.tags["promotion.mode"] == "manual"
    assert mv.tags["promotion.reason"] == "manual: field tests at the venue look better"
    assert mv.tags["promotion.compared_with"] == f"v{v1}" and "champion" in mv.aliases
    assert mc.get_model_version(name, v1).tags["promotion.replaced_by"] == f"v{v2}"
    deploy = load_section(project_copy / "params.yaml", "deploy", DeployParams)
    before = current_release(project_copy / deploy.dir)
    assert before["built_from"] == "pipeline"  # v1's release copied the index and calibration dvc repro built
    params = yaml.safe_load((project_copy / "params.yaml").read_text())
    params["embedding"]["batch"] += 1  # the pipeline's index is out of date now: the release builds its own
    (project_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    release = build_release(project_copy, deploy, log=lambda line: None)
    assert release["swapped"] and release["version"] == v2 and release["model_uri"] == f"models:/{name}/{v2}"
    assert release["built_from"] == "rebuilt"
    assert current_release(project_copy / deploy.dir)["version"] == v2
    assert json.loads((project_copy / deploy.dir / "previous" / "release.json").read_text()) == before
    for part in ("model.pt", "index/index.json", "calibration/calibration.json"):
        assert (project_copy / deploy.dir / "current" / part).is_file()
    assert not list((project_copy / deploy.dir).glob(".staging-*"))
    assert build_release(project_copy, deploy, log=lambda line: None)["swapped"] is False  # nothing changed
    # the history a reviewer reads: v1 gated in as the first model, v2 promoted by hand and now champion
    listed = _cli(project_copy, "versions", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["version"]: r for r in json.loads(listed.stdout)["versions"]}
    assert rows[int(v1)]["decision"] == "promote" and rows[int(v1)]["mode"] == "gate"
    assert "first model" in rows[int(v1)]["reason"] and rows[int(v1)]["profile"] == "fast"
    assert rows[int(v2)]["mode"] == "manual" and "champion" in rows[int(v2)]["aliases"]
    assert rows[int(v2)]["compared_with"] == f"v{v1}" and rows[int(v2)]["steps"] == rows[int(v1)]["steps"] > 0
    table = _cli(project_copy, "versions", "--out", "docs/versions.md")
    assert table.returncode == 0 and (project_copy / "docs/versions.md").read_text() == table.stdout
    assert f"Champion: v{v2}" in table.stdout and f"| v{v2} | champion" in table.stdout
    assert "promote (manual)" in table.stdout and "field tests at the venue look better" in table.stdout


def test_a_profile_copy_reports_the_commit_and_the_store_it_was_made_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from resonance.registry.lineage import git_commit, tracking_uri

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)  # runs/NAME/: a repository without commits
    assert git_commit(tmp_path) == {"commit": "none", "dirty": False}
    (tmp_path / "source.json").write_text(json.dumps({"commit": "ab" * 20, "dirty": True, "profile": "quick"}))
    assert git_commit(tmp_path) == {"commit": "ab" * 20, "dirty": True}
    # ... and, with no MLFLOW_TRACKING_URI, the MLflow store of the project it was made from (as `make run` used)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"  # no project named
    main = tmp_path / "main"
    main.mkdir()
    (tmp_path / "source.json").write_text(json.dumps({"commit": "ab" * 20, "project": str(main)}))
    assert tracking_uri(tmp_path) == f"sqlite:///{main.resolve()}/mlruns/mlflow.db"

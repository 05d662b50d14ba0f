"""The champion's release for the service: one folder with everything recognition needs, swapped in whole.

    deploy/current/release.json    {format, model_name, version, model_uri (pinned: models:/NAME/N), alias,
                                    run_id, model_sha256, index {tracks, windows}, catalog_md5, built_from
                                    (pipeline: the dvc stages' data/index and data/calibration, which were
                                    built for this model and are current, copied; rebuilt: built here),
                                    built_at}
    deploy/current/model.pt        the model bundle of that version (from the MLflow model's files)
    deploy/current/index/          its FAISS index of the catalog (`resonance index build`)
    deploy/current/calibration/    its open-set calibration (`resonance calibrate`, val queries)
    deploy/previous/               the release it replaced (rollback: swap it back)

A release is built in deploy/.staging-vN-STAMP/ and exchanged with deploy/current in one renameat2 call
(resonance.index.persist.swap_in), so a service watching deploy/current/release.json sees the old or the new
release whole, never a mix: it reloads on its own when the file changes. The alias is resolved to its version
once at the start, so a champion moving during the build cannot mix two models.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resonance.config.mlops import DeployParams
from resonance.io import write_json
from resonance.registry.lineage import RegistryError, dvc_lock_hashes
from resonance.registry.versions import CHAMPION, alias_version, client, model_name

RELEASE_FORMAT = 1


def current_release(deploy_dir: Path) -> dict[str, Any] | None:
    """release.json of deploy_dir/current, or None when nothing is deployed yet."""
    path = Path(deploy_dir) / "current" / "release.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def champion_changed(project_dir: Path, params: DeployParams) -> dict[str, Any]:
    """{"name", "champion" (version or None), "deployed" (version or None), "changed" (a rebuild is due)}."""
    project_dir = Path(project_dir)
    mc = client(project_dir)
    name = model_name(project_dir)
    champ = alias_version(mc, name, CHAMPION)
    release = current_release(project_dir / params.dir)
    deployed = str(release["version"]) if release and release.get("model_name") == name else None
    champion = str(champ.version) if champ else None
    return {"name": name, "champion": champion, "deployed": deployed,
            "changed": champion is not None and champion != deployed}


def _model_bundle(model_uri: str, target: Path) -> None:
    """Copy the model.pt bundle logged with the MLflow model to `target`."""
    import tempfile

    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="resonance-release-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        bundles = sorted(local.rglob("model.pt"))
        if not bundles:
            raise RegistryError(f"{model_uri}: this MLflow model carries no model.pt bundle")
        shutil.copyfile(bundles[0], target)


def build_release(project_dir: Path, params: DeployParams, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the champion's release and swap it in (module docstring). Returns release.json's content plus
    {"swapped": True}; {"swapped": False, ...} when the deployed release already is the champion's."""
    from resonance.config import EmbeddingParams, load_section
    from resonance.index.method import model_sha256
    from resonance.index.persist import swap_in
    from resonance.index.stage import load_recognizer
    from resonance.model.embedder import load_model
    from resonance.registry.evaluation import build_index_and_calibration, reuse_pipeline_build

    project_dir = Path(project_dir)
    state = champion_changed(project_dir, params)
    if state["champion"] is None:
        raise RegistryError(f"no `{CHAMPION}` alias on {state['name']!r} yet: run the retrain flow (or "
                            "`resonance promote VERSION --reason ...`) first")
    if not state["changed"]:
        return {**(current_release(project_dir / params.dir) or {}), "swapped": False}
    version, name = state["champion"], state["name"]
    mv = client(project_dir).get_model_version(name, version)
    uri = f"models:/{name}/{version}"
    deploy_dir = (project_dir / params.dir).resolve()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    staging = deploy_dir / f".staging-v{version}-{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        log(f"rebuild-index: building the release of {uri} (champion) in {staging}")
        _model_bundle(uri, staging / "model.pt")
        built_from = "pipeline"
        if not reuse_pipeline_build(project_dir, model_sha256(load_model(staging / "model.pt")), params.catalog,
                                    params.val_queries, staging, log):
            built_from = "rebuilt"
            build_index_and_calibration(project_dir, uri, staging, params.catalog, params.val_queries, log)
        emb = load_section(project_dir / "params.yaml", "embedding", EmbeddingParams)
        method = load_recognizer(staging / "model.pt", staging / "index", staging / "calibration", emb)  # the check
        release = {"format": RELEASE_FORMAT, "model_name": name, "version": version, "model_uri": uri,
                   "alias": CHAMPION, "run_id": mv.run_id, "model_sha256": method.model_sha256,
                   "index": {"tracks": len(method.index.tracks), "windows": method.index.n_windows},
                   "catalog_md5": dvc_lock_hashes(project_dir).get("data/catalog"), "built_from": built_from,
                   "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_json(staging / "release.json", release)
        current, previous = deploy_dir / "current", deploy_dir / "previous"
        had_current = current.exists()
        swap_in(staging, current)
        if had_current and staging.exists():  # the old release, now at the staging path
            shutil.rmtree(previous, ignore_errors=True)
            staging.replace(previous)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    client(project_dir).set_model_version_tag(name, version, "deploy.released_at", release["built_at"])
    log(f"rebuild-index: v{version} deployed: {release['index']['tracks']} tracks, "
        f"{release['index']['windows']:,} windows -> {current}")
    return {**release, "swapped": True}

"""Describe the model version `resonance train` registered: lineage tags, a markdown description (evaluation per
condition, field test, training), artifacts on its run (report, plots, figures, lineage, params), alias
`challenger`. Idempotent: a version already described is left alone (`registry.registered` tag)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from resonance.registry.figures import condition_table, field_table, gate_figures, headline_table, training_table
from resonance.registry.lineage import RegistryError, lineage, tracking_uri, train_params

CHALLENGER, CHAMPION = "challenger", "champion"
DESCRIPTION_LIMIT = 4900  # MLflow keeps model version descriptions up to 5000 characters
HEADLINE_KEYS = ("hit_rate_len3", "hit_rate_len5", "hit_rate_len5_snr0_reverb", "hit_rate_len3_snr0_reverb",
                 "hit_rate_at_far1", "far_at_threshold", "latency_p50_ms_len5", "index_bytes_per_hour")


def client(project_dir: Path) -> Any:
    """An MlflowClient on the project's tracking store (see `lineage.tracking_uri`)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(project_dir)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def model_name(project_dir: Path) -> str:
    """The registered model name: train.registered_model (with the train profile in force applied)."""
    from resonance.config import train_section

    return train_section(train_params(project_dir)).registered_model


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise RegistryError(f"{path}: missing ({what}); run `dvc repro` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from None


def get_version(mlflow_client: Any, name: str, version: str) -> Any:
    """The ModelVersion, or RegistryError saying the store does not hold it."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model version {version} of {name!r} is not in the MLflow store "
                            f"{mlflow_client.tracking_uri}: the model was trained against another store; run "
                            "`dvc repro -f train` to train and register it here, or point MLFLOW_TRACKING_URI at "
                            "that store") from None


def alias_version(mlflow_client: Any, name: str, alias: str) -> Any | None:
    """The ModelVersion an alias points to, or None (no such alias or no such model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def evaluation(project_dir: Path) -> dict[str, Any]:
    """The evaluation files of the embedding as the pipeline left them: headline, full metrics, report folder,
    and the field test (None when that stage has not run)."""
    project_dir = Path(project_dir)
    headline = _read_json(project_dir / "metrics" / "evaluate_embedding.json", "embedding evaluation headline")
    report_dir = project_dir / "data" / "evaluate" / "embedding"
    metrics = _read_json(report_dir / "metrics.json", "embedding evaluation metrics")
    field_path = project_dir / "data" / "evaluate_field" / "metrics.json"
    field = json.loads(field_path.read_text()) if field_path.is_file() else None
    return {"headline": headline, "metrics": metrics, "report_dir": report_dir, "field": field,
            "field_dir": field_path.parent}


def describe(name: str, version: str, lin: dict[str, Any], ev: dict[str, Any], summary: dict[str, Any],
             reason: str | None, extra: str = "") -> str:
    """The version's markdown description (at most DESCRIPTION_LIMIT characters: the per-condition table is
    left to the artifacts when it does not fit)."""
    git, hashes = lin["git"], lin["dvc_lock"]
    commit = git["commit"][:12] + (" (with uncommitted changes)" if git["dirty"] else "")
    keys = [k for k in HEADLINE_KEYS if k in ev["headline"]]
    parts = [f"# {name} version {version}",
             f"Trained from commit `{commit}`, train profile `{lin['train_profile']}` (params md5 "
             f"`{lin['train_params_md5'][:12]}`), on data (dvc.lock md5): catalog `{hashes['data/catalog']}`, banks "
             f"`{hashes['data/banks']}`, queries `{hashes['data/queries']}`."]
    if reason:
        parts.append(f"Retrained because: {reason}")
    parts += [f"## Evaluation on `{ev['metrics'].get('query_set')}`", headline_table(ev["headline"], keys)]
    cond = "### Song top-1 per condition\n" + condition_table(ev["metrics"])
    rest = ["## Field test (built from real measured responses; stands in for real field recordings)",
            field_table(ev["field"]), "## Training", training_table(summary),
            "Artifacts: `registry/evaluation/` (report.md, plots, headline.json), `registry/figures/`, "
            "`registry/lineage.json`, `registry/params_train.json`, `registry/field/`."]
    if extra:
        rest.append(extra)
    text = "\n\n".join(parts + [cond] + rest)
    if len(text) > DESCRIPTION_LIMIT:
        text = "\n\n".join(parts + ["_per-condition table: see registry/evaluation/report.md_"] + rest)
    return text[:DESCRIPTION_LIMIT]


def register(project_dir: Path, reason: str | None = None) -> dict[str, Any]:
    """Describe and tag the version data/model/train.json names, log its artifacts, point `challenger` at it.

    Returns {"name", "version", "new" (False: it was already described, nothing done), "figures" (the gate
    figures), "run_id"}. RegistryError when the model, its evaluation or the version is missing."""
    project_dir = Path(project_dir)
    summary = _read_json(project_dir / "data" / "model" / "train.json", "training summary")
    if not summary.get("model_version") or not summary.get("mlflow_run_id"):
        raise RegistryError(f"{project_dir}/data/model/train.json names no registered model version")
    mc = client(project_dir)
    name = model_name(project_dir)
    version = str(summary["model_version"])
    mv = get_version(mc, name, version)
    ev = evaluation(project_dir)
    lin = lineage(project_dir)
    figures = gate_figures(ev["headline"], ev["metrics"], lin["data_key"])
    if mv.tags.get("registry.registered") == "true":
        return {"name": name, "version": version, "new": False, "figures": figures, "run_id": mv.run_id}
    _log_artifacts(mv.run_id, project_dir, lin, ev, figures)
    tags = {"registry.registered": "true", "lineage.git_commit": lin["git"]["commit"],
            "lineage.git_dirty": str(lin["git"]["dirty"]).lower(), "lineage.train_profile": str(lin["train_profile"]),
            "lineage.train_params_md5": lin["train_params_md5"], "eval.data_key": lin["data_key"],
            "eval.query_set": str(ev["metrics"].get("query_set"))}
    tags.update({f"lineage.{k}": str(v) for k, v in lin["runtime"].items() if v})
    tags.update({f"lineage.dvc.{p.replace('/', '_')}": str(h) for p, h in lin["dvc_lock"].items()})
    tags.update({f"eval.{k}": str(ev["headline"][k]) for k in HEADLINE_KEYS if k in ev["headline"]})
    if reason:
        tags["retrain.reason"] = reason[:4900]
    for key, value in tags.items():
        mc.set_model_version_tag(name, version, key, value)
    mc.update_model_version(name, version, description=describe(name, version, lin, ev, summary, reason))
    mc.set_registered_model_alias(name, CHALLENGER, version)
    return {"name": name, "version": version, "new": True, "figures": figures, "run_id": mv.run_id}


def _log_artifacts(run_id: str, project_dir: Path, lin: dict[str, Any], ev: dict[str, Any],
                   figures: dict[str, Any]) -> None:
    """Artifacts and metrics on the version's training run (module docstring)."""
    import mlflow

    from resonance.registry.figures import FIGURES_FORMAT

    numbers = {f"eval/{k}": float(v) for k, v in figures["headline"].items()}
    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(figures, f"registry/figures/{lin['data_key']}.json")
        mlflow.log_dict(lin, "registry/lineage.json")
        mlflow.log_dict(train_params(project_dir), "registry/params_train.json")
        mlflow.log_dict(ev["headline"], "registry/evaluation/headline.json")
        for path in sorted(ev["report_dir"].glob("*")):
            if path.suffix in (".md", ".png"):
                mlflow.log_artifact(str(path), "registry/evaluation")
        if ev["field"] is not None:
            for path in sorted(ev["field_dir"].glob("*")):
                if path.suffix in (".md", ".json", ".png"):
                    mlflow.log_artifact(str(path), "registry/field")
            numbers.update(field_metrics(ev["field"]))
        mlflow.log_metrics(numbers)
        mlflow.set_tag("registry.figures_format", str(FIGURES_FORMAT))


def field_metrics(field: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics of a field test: field/top1/all, field/far/venue/greathall, ..."""
    out: dict[str, float] = {}
    groups = [("all", field.get("all"))] + [(f"{kind}/{k}", g) for kind in ("venue", "device")
                                            for k, g in sorted((field.get(kind) or {}).items())]
    for label, g in groups:
        for key in ("top1", "far", "n_in", "n_out"):
            if g and g.get(key) is not None:
                out[f"field/{key}/{label}"] = float(g[key])
    return out


def load_figures(run_id: str, data_key: str) -> dict[str, Any] | None:
    """The gate figures a run stored for `data_key` (None when it holds none for that data)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="resonance-figures-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"registry/figures/{data_key}.json",
                                                       dst_path=tmp)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())


def store_figures(run_id: str, figures: dict[str, Any]) -> None:
    """Keep gate figures measured later (a re-evaluation on newer data) on the version's run."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(figures, f"registry/figures/{figures['data_key']}.json")

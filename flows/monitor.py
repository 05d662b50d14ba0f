"""monitor: drift monitoring of the field recordings dropped in monitoring/inbox/ (any audio format).

    .venv/bin/python flows/monitor.py            # one run now

Steps: check-and-describe (resonance.monitor.stage.run: recover a killed run, validate with Great Expectations,
features, Evidently drift report + JSON verdict under monitoring/reports/RUN/, clips archived or rejected with
their reason), log-to-mlflow (retried), and when drift is found (and monitor.retrain_on_drift) the `retrain`
flow, with the drift recorded as its reason.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

ROOT = Path(__file__).resolve().parents[1]


def _params(project_dir: str, name: str, cls):
    from resonance.config import load_section

    return load_section(Path(project_dir) / "params.yaml", name, cls)


@task(name="check-and-describe")
def check(project_dir: str) -> dict:
    from resonance.config import EmbeddingParams
    from resonance.config.mlops import DeployParams, MonitorParams
    from resonance.monitor.stage import describe, run

    verdict = run(Path(project_dir), _params(project_dir, "monitor", MonitorParams),
                  _params(project_dir, "embedding", EmbeddingParams), _params(project_dir, "deploy", DeployParams),
                  progress=False)
    get_run_logger().info(describe(verdict))
    return verdict


@task(name="log-to-mlflow")
def log_run(project_dir: str, verdict: dict, reason: str | None) -> str | None:
    from resonance.config.mlops import MonitorParams
    from resonance.monitor.stage import log_to_mlflow
    from resonance.registry.lineage import tracking_uri

    return log_to_mlflow(verdict, _params(project_dir, "monitor", MonitorParams), tracking_uri(Path(project_dir)),
                         reason)


def drift_reason(verdict: dict) -> str:
    """The retrain reason a drift verdict gives."""
    means = ", ".join(f"{f} {verdict['reference_means'][f]:g} -> {verdict['feature_means'][f]:g}"
                      for f in verdict["drifted_features"])
    return (f"drift in field recordings: monitor run {verdict['run_id']}, {verdict['drifted_count']}/"
            f"{verdict['n_features']} features drifted ({means}); report {verdict['report_html']}")


@flow(name="monitor", log_prints=True)
def monitor(project_dir: str = str(ROOT), retrain_on_drift: bool | None = None) -> dict:
    """Returns the verdict plus {"mlflow_run_id", "retrain" (the retrain flow's result, or None)}."""
    from resonance.config.mlops import FlowsParams, MonitorParams

    p = _params(project_dir, "flows", FlowsParams)
    verdict = check(project_dir)
    reason = drift_reason(verdict) if verdict.get("drift") else None
    verdict["mlflow_run_id"] = log_run.with_options(retries=p.retries, retry_delay_seconds=p.retry_delay_s)(
        project_dir, verdict, reason)
    verdict["retrain"] = None
    if verdict["status"] == "done":
        rows = "\n".join(f"| {f} | {t['method']} | {t['value']:.4g} | {'yes' if t['drifted'] else 'no'} |"
                         for f, t in verdict["features"].items())
        create_markdown_artifact(key="monitor", description="resonance monitor: drift verdict",
                                 markdown=f"## drift: **{verdict['drift']}** ({verdict['drift_share']:.0%} of "
                                          f"features)\n\n| feature | test | value | drifted |\n|---|---|---:|---|\n"
                                          f"{rows}\n\nReport: {verdict['report_html']}\n")
    wanted = _params(project_dir, "monitor", MonitorParams).retrain_on_drift if retrain_on_drift is None \
        else retrain_on_drift
    if reason and wanted:
        get_run_logger().info(f"monitor: {reason}: starting retrain")
        verdict["retrain"] = _retrain_flow()(project_dir=project_dir, reason=reason)
    return verdict


def _retrain_flow():
    """The retrain flow of flows/retrain.py (flows/ is not a package)."""
    from resonance.orchestrate import flow_module

    return flow_module(Path(__file__).parent, "retrain").retrain


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in monitor().items() if k != "features"}, indent=2, default=str))

"""The Prefect flow runs the DVC stages for real (ephemeral Prefect API via prefect_test_harness)."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from conftest import ROOT


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _load_flow():
    spec = importlib.util.spec_from_file_location("resonance_flows_pipeline", ROOT / "flows" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.resonance_pipeline


@pytest.mark.slow  # the retrain flow test below runs the same `dvc repro` inside a Prefect flow (default tier)
def test_pipeline_flow_reproduces_stages_then_finds_them_up_to_date(prefect_api, project: Path) -> None:
    flow = _load_flow()
    stages = yaml.safe_load((project / "params.yaml").read_text())["flows"]["stages"]
    first = flow(project_dir=str(project))
    assert first["ran"] == {stage: True for stage in stages}
    assert first["metrics"]["success"] is True and first["metrics"]["tracks"] >= 3
    assert (project / "data" / "queries" / "val" / "queries.jsonl").is_file()
    second = flow(project_dir=str(project))
    assert second["ran"] == {stage: False for stage in stages}


# --- the MLOps flows: retrain with the promotion gate, a failed validation stopping it (issue 12) ---

def _mlops_flow(name: str, attr: str):
    spec = importlib.util.spec_from_file_location(f"resonance_flows_{name}", ROOT / "flows" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def _mlops_project(project: Path, monkeypatch: pytest.MonkeyPatch, **changes) -> tuple[Path, str]:
    """The fixture project with the MLOps test params (mlops_support.mlops_params) and its own MLflow store."""
    from mlops_support import mlops_params, store_uri

    params = mlops_params()
    for section, values in changes.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(project))
    return project, store_uri(project)


@pytest.mark.slow  # about 4.5 min: three real retrain runs on the fixture project
@pytest.mark.timeout(5400)
def test_retrain_flow_promotes_the_first_model_then_nothing_then_holds_a_worse_one(
        prefect_api, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from resonance.registry.deploy import current_release

    project, uri = _mlops_project(project, monkeypatch)
    retrain = _mlops_flow("retrain", "retrain")
    first = retrain(project_dir=str(project))
    assert {"catalog", "validate", "train", "evaluate_embedding", "field", "evaluate_field"} <= set(first["ran"])
    assert not {"evaluate@landmark", "evaluate@chromaprint", "report"} & set(first["ran"])  # flows.retrain_targets
    assert first["new"] and first["decision"] == "promote" and first["champion"] == first["version"]
    assert first["deployed"] == first["version"] == current_release(project / "deploy")["version"]
    mc = MlflowClient(uri)
    name = first["name"]
    mv = mc.get_model_version(name, first["version"])
    assert mv.tags["promotion.decision"] == "promote" and "first model" in mv.tags["promotion.reason"]

    second = retrain(project_dir=str(project))  # nothing changed
    assert second["ran"] == [] and second["new"] is False and second["decision"] == "unchanged"
    assert len(mc.search_model_versions(f"name='{name}'")) == 1

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["profiles"]["fast"].update(steps_per_epoch=2, max_epochs=1)  # far fewer steps: worse
    params["promote"]["margin"] = 0.25  # a tiny val set is noisy: ask for a clear gain
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = retrain(project_dir=str(project), reason="fewer steps, to see the gate hold")
    assert "train" in third["ran"] and third["new"] and third["version"] != first["version"]
    assert third["decision"] == "hold" and third["champion"] == first["version"]
    mv = mc.get_model_version(name, third["version"])
    assert mv.tags["promotion.decision"] == "hold" and "less than the margin 0.25" in mv.tags["promotion.reason"]
    assert mv.tags["promotion.compared_with"] == f"v{first['version']}"
    assert mv.tags["promotion.champion.hit_rate_len3"] == str(first_figure := mc.get_model_version(
        name, first["version"]).tags["eval.hit_rate_len3"])
    assert float(mv.tags["promotion.challenger.hit_rate_len3"]) - float(first_figure) < 0.25
    assert mv.tags["retrain.reason"] == "fewer steps, to see the gate hold"
    assert set(mv.aliases) == {"challenger"} and "champion" in mc.get_model_version(name, first["version"]).aliases
    assert current_release(project / "deploy")["version"] == first["version"]  # the service keeps the champion


@pytest.mark.timeout(3600)
def test_retrain_flow_stops_before_training_when_validation_fails(prefect_api, project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    project, uri = _mlops_project(project, monkeypatch, validate={"rms_dbfs": [-3.0, -1.0]})  # nothing that loud
    retrain = _mlops_flow("retrain", "retrain")
    state = retrain(project_dir=str(project), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="validate"):
        state.result()
    assert (project / "data" / "validate" / "report.md").is_file()
    assert not (project / "data" / "model").exists() and not (project / "metrics" / "validate.json").exists()
    assert MlflowClient(uri).search_registered_models() == []


def test_the_schedules_come_from_params() -> None:
    serve = _mlops_flow("serve", "deployments")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["flows"]
    found = {(d.flow_name, d.name): [s.schedule.cron for s in d.schedules or []] for d in serve(ROOT)}
    assert found == {("retrain", "weekly"): [params["retrain_cron"]], ("monitor", "daily"): [params["monitor_cron"]],
                     ("rebuild-index", "on-demand"): []}


def test_dvc_stale_tells_what_a_repro_would_run(mlops_project: dict) -> None:
    from resonance.orchestrate import ReproError, dvc_stale

    proj = mlops_project["dir"]  # built by dvc repro: every stage current
    assert dvc_stale(proj, []) == [] and dvc_stale(proj, ["evaluate_embedding", "evaluate_field"]) == []
    with pytest.raises(ReproError, match="no_such_stage"):
        dvc_stale(proj, ["no_such_stage"])


def test_where_to_look_names_the_ui_the_report_and_what_waits(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from resonance.orchestrate import where_to_look

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    result = {"name": "resonance-embedder", "version": "2", "decision": "hold", "reasons": ["less than the margin"],
              "champion": "1", "deployed": "1", "waiting": ["evaluate@landmark", "report"]}
    text = where_to_look(tmp_path, result)
    assert "http://127.0.0.1:5000/#/models/resonance-embedder/versions/2" in text
    assert "hold (less than the margin); champion v1" in text
    assert "waits for evaluate@landmark, report" in text and "make run ALL=1" in text
    assert "no report yet: drop field clips into monitoring/inbox/" in text
    assert "benchmarks/RESULTS.md (every method" in where_to_look(tmp_path, {**result, "waiting": []})

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


def test_pipeline_flow_reproduces_stages_then_finds_them_up_to_date(prefect_api, project: Path) -> None:
    flow = _load_flow()
    stages = yaml.safe_load((project / "params.yaml").read_text())["flows"]["stages"]
    first = flow(project_dir=str(project))
    assert first["ran"] == {stage: True for stage in stages}
    assert first["metrics"]["success"] is True and first["metrics"]["tracks"] >= 3
    assert (project / "data" / "queries" / "val" / "queries.jsonl").is_file()
    second = flow(project_dir=str(project))
    assert second["ran"] == {stage: False for stage in stages}

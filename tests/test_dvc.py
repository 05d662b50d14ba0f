"""The DVC pipeline end to end on the fixture package: repro builds, a second repro does nothing,
a changed param reruns only the stages that use it."""

from pathlib import Path

import pytest
import yaml

from conftest import dvc as _dvc


@pytest.mark.slow  # about 2.5 min: the fixture pipeline reproduced three times
def test_repro_twice_then_param_change_reruns_only_dependents(project: Path) -> None:
    first = _dvc(project, "repro")
    for stage in ("catalog", "outside", "validate", "banks", "queries", "train", "evaluate@landmark",
                  "evaluate@chromaprint", "evaluate_embedding", "index", "report"):
        assert f"Running stage '{stage}'" in first
    assert (project / "metrics" / "validate.json").is_file()
    assert (project / "dvc.lock").is_file()

    second = _dvc(project, "repro")
    assert "Running stage" not in second
    assert "Data and pipelines are up to date" in second

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["validate"]["max_silence_fraction"] = 0.6
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _dvc(project, "repro")
    assert "Running stage 'validate'" in third
    for stage in ("catalog", "outside", "banks", "queries", "train", "evaluate", "index", "report"):
        assert f"Running stage '{stage}" not in third

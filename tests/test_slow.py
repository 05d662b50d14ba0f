"""Slow tier (`make test-slow`): the full-size model (the default profile's architecture and batch) trained for a few
steps through the real `resonance train` on the fixture catalog and banks, exported to ONNX and registered.

Only the step count, the time guard, the validation set and the stretch length are shrunk (the fixture songs are
6-7 s long: a default 8-window stretch with 2 s of preroll does not fit in them); the frontend, the encoder, the
batch size, the loss, the DataLoader worker and the thread settings are the default profile's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from resonance.cli import main
from resonance.config import load_train
from resonance.model.builders import count_parameters
from resonance.model.embedder import load_model
from resonance.train.export import example_audio
from resonance.train.module import build_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_the_full_size_model_trains_exports_and_registers(built: dict, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import onnxruntime as ort

    params = yaml.safe_load(built["params"].read_text())
    train = params["train"]
    train.update(profile="default", steps_per_epoch=4, max_epochs=1, max_time_min=60.0)
    train["data"].update(windows_per_segment=2, preroll_s=0.5)
    train["val"].update(tracks=4, segment_s=6.0, queries_per_track=1, distractors=200)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "mlruns").mkdir()
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    root = built["root"]
    code = main(["-q", "--params", str(path), "train", "--catalog", str(root / "catalog"), "--banks",
                 str(root / "banks"), "--out", str(tmp_path / "model")])
    assert code == 0
    p = load_train(path)
    default = load_train(Path(__file__).resolve().parents[1] / "params.yaml", "default")
    assert (p.frontend, p.encoder, p.encoders, p.batch_size) == \
        (default.frontend, default.encoder, default.encoders, default.batch_size)  # the full-size model
    summary = json.loads((tmp_path / "model" / "train.json").read_text())
    assert summary["profile"] == "default" and summary["steps"] == 4 and summary["stopped_by"] == "max_epochs"
    assert summary["parameters"] == count_parameters(build_model(p)) > 1_000_000
    assert summary["onnx_max_abs_diff"] < 1e-4
    model = load_model(tmp_path / "model")
    x = example_audio(model, 4, seed=3)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    assert ref.shape == (4, default.encoders[default.encoder]["dim"])
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)
    session = ort.InferenceSession(str(tmp_path / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"audio": x})[0], ref, atol=1e-4)
    version = mlflow.MlflowClient(uri).get_model_version_by_alias(default.registered_model, "challenger")
    assert str(version.version) == str(summary["model_version"])

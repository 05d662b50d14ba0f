"""After training: the ONNX export (audio -> embedding, checked against torch), the training curves PNG, and the
MLflow model (signature, input example, pip requirements) registered with the `challenger` alias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from resonance.config import TrainParams
from resonance.io import atomic_path

ALIAS = "challenger"


def example_audio(model: Any, n: int = 2, seed: int = 0) -> np.ndarray:
    """(n, window samples) float32 at the model's rate, music-like (six tones with a beat-like envelope over a
    quiet noise floor; white noise alone would hide frontend errors): the export and signature example."""
    rng = np.random.default_rng(seed)
    t = np.arange(model.window) / model.sr
    tones = sum(np.sin(2 * np.pi * rng.uniform(80, 4000, (n, 1)) * t) * rng.uniform(0.02, 0.2, (n, 1))
                for _ in range(6))
    return (tones * np.exp(-3 * (t % 0.25)) + 0.003 * rng.standard_normal((n, model.window))).astype(np.float32)


def export_onnx(model: Any, path: Path) -> float:
    """Export audio (batch, window) -> embedding (batch, dim) to ONNX (dynamic batch) with torch's dynamo
    exporter (torch.stft becomes the ONNX STFT op), then run it in onnxruntime on music-like input; returns the
    max |onnx - torch| difference."""
    import logging

    import onnxruntime as ort
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    x = torch.from_numpy(example_audio(model, 3))
    with atomic_path(path) as tmp:
        # optimize=False: onnxscript's graph optimiser drops the frontend's `mel + 1e-10` (log floor) as if it
        # were `+ 0`, which turns silent bands into log(0) and breaks the match with torch.
        program = torch.onnx.export(model.eval(), (x,), dynamo=True, optimize=False, input_names=["audio"],
                                    output_names=["embedding"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    verbose=False)
        program.save(str(tmp))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check = example_audio(model, 5, seed=1)
    with torch.inference_mode():
        ref = model(torch.from_numpy(check)).numpy()
    return float(np.abs(session.run(None, {"audio": check})[0] - ref).max())


def plot_curves(logger: Any, path: Path) -> None:
    """Training loss per step and the validation scores per epoch (top-1, window recall@10, similarity gap) from
    the MLflow run, against steps and training minutes, as a PNG (the learning curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow.tracking import MlflowClient

    client = MlflowClient(logger._tracking_uri)
    loss = client.get_metric_history(logger.run_id, "train/loss_step")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    a.plot([m.step for m in loss], [m.value for m in loss], lw=0.8)
    a.set(xlabel="step", ylabel="train loss", title="contrastive loss")
    t0 = min((m.timestamp for m in loss), default=0)
    for name, label in (("val/top1", "query top-1"), ("val/window_recall", "window recall@10"),
                        ("val/gap", "similarity gap (cosine)")):
        history = client.get_metric_history(logger.run_id, name)
        if history:
            b.plot([m.step for m in history], [m.value for m in history], marker="o", label=label)
    minutes = [(m.step, (m.timestamp - t0) / 60000) for m in client.get_metric_history(logger.run_id, "val/top1")]
    b.set(xlabel="step" + (f" (last validation at {minutes[-1][1]:.0f} min)" if minutes else ""),
          title="validation (val songs among distractors)", ylim=(min(0.0, b.get_ylim()[0]), 1))
    b.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def flat_params(params: TrainParams) -> dict[str, Any]:
    """The params as flat `a.b.c` keys (MLflow params), profiles left out."""
    from dataclasses import asdict

    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    data = asdict(params)
    data.pop("profiles")
    data["encoders"] = {params.encoder: data["encoders"][params.encoder]}
    walk("", data)
    return out


def log_model(model: Any, params: TrainParams, run_id: str, out_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Log params, the model (signature + input example), model.onnx, curves.png and the summary to the run;
    register a model version and point the `challenger` alias at it. Returns model_uri, run_id, version."""
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    from resonance.train.stage import PIP_REQUIREMENTS, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    example = example_audio(model)
    with torch.inference_mode():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    # the run's own experiment (a set_experiment() earlier in this process must not make start_run refuse it)
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params(flat_params(params))
        info = mlflow.pytorch.log_model(model, name="model", signature=signature, input_example=example,
                                        pip_requirements=PIP_REQUIREMENTS, extra_files=[str(out_dir / "model.pt")],
                                        registered_model_name=params.registered_model)
        for name in ("model.onnx", "curves.png"):
            if (out_dir / name).is_file():
                mlflow.log_artifact(str(out_dir / name))
        mlflow.log_dict(summary, "train_summary.json")
        mlflow.log_metrics({"best_val_top1": summary["best_val_top1"] or 0.0,
                            "best_val_window_recall": summary.get("best_val_window_recall") or 0.0,
                            "onnx_max_abs_diff": summary["onnx_max_abs_diff"]})
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(params.registered_model, ALIAS, version)
    return {"mlflow_run_id": run_id, "model_version": version,
            "model_uri": f"models:/{params.registered_model}@{ALIAS}"}

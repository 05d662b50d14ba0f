"""`resonance train`: fit the embedding model with Lightning, keep the best checkpoint by val top-1, write the
model bundle + ONNX export, and log everything to MLflow (params, curves, the model with signature, the ONNX file,
a registered model version with the `challenger` alias).

Outputs in OUT (default data/model): model.pt (bundle, see resonance.model.embedder), model.onnx, train.json
(summary), curves.png, checkpoints/; plus the metrics JSON DVC tracks.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from resonance.config import SimulateParams, TrainParams
from resonance.errors import ResonanceError
from resonance.io import write_json

log = logging.getLogger(__name__)
PIP_REQUIREMENTS = ["torch==2.13.0", "numpy", "resonance"]


class TrainError(ResonanceError):
    """Training cannot start (no tracks, no banks) or produced no usable model."""


def catalog_tracks(catalog_dir: Path, split: str) -> list[Any]:
    """TrackFile for every catalog track of `split`, in manifest order."""
    from resonance.catalog.manifest import load_manifest
    from resonance.train.data import TrackFile

    tracks = [TrackFile(t.track_id, catalog_dir / t.audio_path, int(round(t.duration_s * t.sample_rate)))
              for t in load_manifest(catalog_dir) if t.split == split]
    if not tracks:
        raise TrainError(f"{catalog_dir}: no `{split}` tracks in the catalog")
    return tracks


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, or the project's sqlite store mlruns/mlflow.db under the working folder."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = Path.cwd().resolve() / "mlruns"
    store.mkdir(exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def run(params: TrainParams, sim: SimulateParams, catalog_dir: Path, banks_dir: Path, out_dir: Path,
        metrics_path: Path | None, progress: bool = True) -> dict[str, Any]:
    """Train, export and log; returns the summary written to train.json."""
    import lightning as L
    import torch

    from resonance.banks.stage import load_banks
    from resonance.train.module import ContrastiveModule, PairDataModule
    from resonance.train.valset import build_valset

    t0 = time.perf_counter()
    L.seed_everything(params.seed, workers=True, verbose=False)
    if params.trainer.threads:
        torch.set_num_threads(params.trainer.threads)
    banks = load_banks(banks_dir)
    if banks.sr != params.frontend["sr"]:
        raise TrainError(f"banks at {banks.sr} Hz but train.frontend.sr is {params.frontend['sr']}")
    train_tracks = catalog_tracks(catalog_dir, "train")
    valset = build_valset(catalog_tracks(catalog_dir, "val"), params.val, sim, banks, params.window_s,
                          params.hop_s, params.data.preroll_s, params.seed, distractor_tracks=train_tracks)
    module = ContrastiveModule(params)
    module.valset = valset
    untrained = _untrained_scores(params, valset)
    data = PairDataModule(params, sim, banks, train_tracks, valset)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer, logger, ckpt = _trainer(params, out_dir, progress)
    trainer.fit(module, datamodule=data)
    fit_s = time.perf_counter() - t0
    best = _best_model(module, ckpt.best_model_path)
    summary = _summary(params, trainer, module, valset, fit_s, len(train_tracks), best, untrained)
    _export(best, params, out_dir, summary, logger)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    write_json(out_dir / "train.json", summary)
    if metrics_path is not None:
        write_json(metrics_path, {k: summary[k] for k in ("best_val_top1", "best_val_window_recall", "best_val_gap",
                                                          "val_top1_untrained", "val_window_recall_untrained",
                                                          "epochs", "steps", "fit_s", "parameters", "stopped_by")})
    return summary


def _trainer(params: TrainParams, out_dir: Path, progress: bool) -> tuple[Any, Any, Any]:
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(experiment_name=params.mlflow_experiment, tracking_uri=tracking_uri(),
                          run_name=f"train-{params.encoder}-{params.profile}")
    monitor = f"val/{params.val.monitor}"
    ckpt = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor=monitor, mode="max",
                           save_top_k=1, save_last=True, enable_version_counter=False)
    stop = EarlyStopping(monitor=monitor, mode="max", patience=params.patience)
    callbacks: list[Any] = [ckpt, stop, LearningRateMonitor("step")]
    tty = sys.stderr.isatty()
    if progress and not tty:  # a log, not a terminal: whole lines instead of a redrawn bar
        from resonance.train.loglines import LogLines

        callbacks.append(LogLines(params.steps_per_epoch * params.max_epochs))
    tp = params.trainer
    trainer = L.Trainer(accelerator=tp.accelerator, devices=tp.devices, num_nodes=tp.num_nodes, strategy=tp.strategy,
                        precision=tp.precision, max_epochs=params.max_epochs,
                        max_time={"minutes": params.max_time_min}, limit_train_batches=params.steps_per_epoch,
                        deterministic=True, logger=logger, callbacks=callbacks,
                        enable_progress_bar=progress and tty, num_sanity_val_steps=0, log_every_n_steps=10,
                        reload_dataloaders_every_n_epochs=1, enable_model_summary=progress,
                        default_root_dir=str(out_dir))
    return trainer, logger, ckpt


def _best_model(module: Any, best_path: str) -> Any:
    """The EmbeddingModel with the best checkpoint's weights (the last ones if none was saved)."""
    import torch

    if best_path and Path(best_path).is_file():
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return module.model.eval()


def _untrained_scores(params: TrainParams, valset: Any) -> dict[str, float]:
    """The validation scores of the untrained model (same seed, same shape): what training must beat."""
    import torch

    from resonance.train.module import build_model, valset_embeddings
    from resonance.train.valset import retrieval_scores

    torch.manual_seed(params.seed)
    return retrieval_scores(valset_embeddings(build_model(params), valset), valset)


def _summary(params: TrainParams, trainer: Any, module: Any, valset: Any, fit_s: float, n_tracks: int, best: Any,
             untrained: dict[str, float]) -> dict[str, Any]:
    from resonance.model.builders import count_parameters

    key = params.val.monitor
    chosen = max(module.history, key=lambda h: h[key]) if module.history else {}

    def r4(x: float | None) -> float | None:
        return None if x is None else round(float(x), 4)

    return {"profile": params.profile, "encoder": params.encoder, "loss": params.loss,
            "parameters": count_parameters(best), "train_tracks": n_tracks,
            "val_queries": int(len(valset.query_track)), "val_reference_windows": int(valset.n_ref),
            "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step), "fit_s": round(fit_s, 1),
            "monitor": key, "best_epoch": chosen.get("epoch"), "best_step": chosen.get("step"),
            "best_val_top1": r4(chosen.get("top1")), "best_val_window_recall": r4(chosen.get("window_recall")),
            "best_val_gap": r4(chosen.get("gap")),
            "val_top1_untrained": r4(untrained["top1"]), "val_window_recall_untrained": r4(untrained["window_recall"]),
            "val_gap_untrained": r4(untrained["gap"]), "history": module.history,
            "stopped_by": _stopped_by(trainer, params), "nonfinite_steps": int(module.nonfinite_steps)}


def _stopped_by(trainer: Any, params: TrainParams) -> str:
    """Why fit ended: "early_stopping" (no better val top-1 for `patience` epochs), "max_time" or "max_epochs"."""
    stop = trainer.early_stopping_callback
    if stop is not None and stop.stopped_epoch > 0:
        return "early_stopping"
    return "max_epochs" if trainer.global_step >= params.steps_per_epoch * params.max_epochs else "max_time"


def _export(model: Any, params: TrainParams, out_dir: Path, summary: dict[str, Any], logger: Any) -> None:
    """model.pt, model.onnx (checked against torch), curves.png; then log model + files to the MLflow run."""
    from resonance.model.embedder import save_bundle
    from resonance.train.export import export_onnx, log_model, plot_curves

    save_bundle(model, out_dir / "model.pt", info={k: summary[k] for k in ("profile", "best_val_top1", "steps")})
    summary["onnx_max_abs_diff"] = export_onnx(model, out_dir / "model.onnx")
    plot_curves(logger, out_dir / "curves.png")
    summary.update(log_model(model, params, logger.run_id, out_dir, summary))


def describe(summary: dict[str, Any], out_dir: Path) -> str:
    """A few lines for the terminal."""
    return (f"train: {summary['encoder']} ({summary['parameters'] / 1e6:.2f} M params), {summary['steps']} steps in "
            f"{summary['epochs']} epochs, {summary['fit_s'] / 60:.1f} min (stopped by {summary['stopped_by']}); val "
            f"top-1 {summary['best_val_top1']} (untrained {summary['val_top1_untrained']}), window recall@10 "
            f"{summary['best_val_window_recall']} (untrained {summary['val_window_recall_untrained']}); MLflow "
            f"{summary.get('model_uri')} -> {out_dir}")

"""The trained model as one object: audio windows -> unit embeddings, and how it is saved and loaded.

`EmbeddingModel` (nn.Module) = LogMel frontend + encoder: (batch, window samples) float audio at `sr` ->
(batch, dim) unit vectors. It is what training optimises, what MLflow stores (`mlflow.pytorch`), and what
`Embedder` runs over whole recordings for indexing and queries: one code path for all three.

A bundle (`model.pt`) is a plain dict (configs + state dict) that `torch.load(weights_only=True)` reads back:
    {"format": 1, "frontend": {...}, "encoder": "nafp", "encoder_cfg": {...}, "window_s": 1.0, "hop_s": 0.5,
     "state_dict": {...}, "info": {...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from resonance.errors import ResonanceError
from resonance.model.builders import build_encoder, build_frontend
from resonance.model.frontend import window_samples, windows

BUNDLE_FORMAT = 1


class ModelError(ResonanceError):
    """A model file or URI is missing, unreadable or of another format."""


class EmbeddingModel(nn.Module):
    """(batch, n_samples) float32 audio at `sr` (n_samples = window_s * sr) -> (batch, dim) unit embeddings."""

    def __init__(self, frontend_cfg: Mapping[str, Any], encoder: str, encoder_cfg: Mapping[str, Any],
                 window_s: float, hop_s: float) -> None:
        super().__init__()
        self.frontend = build_frontend(frontend_cfg)
        self.encoder = build_encoder(encoder, encoder_cfg)
        self.config = {"frontend": dict(frontend_cfg), "encoder": encoder, "encoder_cfg": dict(encoder_cfg),
                       "window_s": float(window_s), "hop_s": float(hop_s)}
        self.sr = int(frontend_cfg["sr"])
        self.window = window_samples(self.sr, window_s, "window_s")
        self.dim = int(encoder_cfg["dim"])

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.frontend(audio))

    def bundle(self, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The plain-dict form saved as model.pt (see the module docstring)."""
        return {"format": BUNDLE_FORMAT, **self.config, "state_dict": self.state_dict(), "info": dict(info or {})}

    @classmethod
    def from_bundle(cls, bundle: Mapping[str, Any]) -> EmbeddingModel:
        if bundle.get("format") != BUNDLE_FORMAT:
            raise ModelError(f"model bundle format {bundle.get('format')!r}, this code reads {BUNDLE_FORMAT}")
        frontend = {"floor_db": None, **bundle["frontend"]}  # bundles from before the relative floor have none
        model = cls(frontend, bundle["encoder"], bundle["encoder_cfg"], bundle["window_s"],
                     bundle["hop_s"])
        model.load_state_dict(bundle["state_dict"])
        return model.eval()


def save_bundle(model: EmbeddingModel, path: Path, info: Mapping[str, Any] | None = None) -> Path:
    """Write model.pt atomically (temp file + rename)."""
    from resonance.io import atomic_path

    with atomic_path(Path(path)) as tmp:
        torch.save(model.bundle(info), tmp)
    return Path(path)


def load_model(source: str | Path) -> EmbeddingModel:
    """An EmbeddingModel in eval mode from a bundle file (model.pt), a folder holding one, or an MLflow model URI
    (`models:/name@alias`, `models:/name/3`, `runs:/...`; needs MLFLOW_TRACKING_URI). ModelError when missing."""
    text = str(source)
    if text.startswith(("models:/", "runs:/")):
        return _load_mlflow(text)
    path = Path(text)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ModelError(f"{path}: no model here (train one with `resonance train`, or pass --model)")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a model bundle"
        raise ModelError(f"{path}: not a resonance model bundle ({type(exc).__name__}: {exc})") from None
    if not isinstance(bundle, dict):
        raise ModelError(f"{path}: not a resonance model bundle")
    return EmbeddingModel.from_bundle(bundle)


def _load_mlflow(uri: str) -> EmbeddingModel:
    """The model.pt bundle logged with an MLflow model (`extra_files`), downloaded and loaded. (The model's
    `pytorch` flavour itself is a torch.export program for serving; it has no config attributes.)"""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except (MlflowException, OSError) as exc:
        raise ModelError(f"{uri}: cannot load from MLflow: {exc}") from None
    bundles = sorted(local.rglob("model.pt"))
    if not bundles:
        raise ModelError(f"{uri}: this MLflow model carries no resonance model.pt bundle")
    return load_model(bundles[0])


class Embedder:
    """Runs an EmbeddingModel over whole recordings: mono float32 (n_samples,) at model.sr -> (n_windows, dim).

    Windows of window_s every `hop_s` (default: the model's hop); audio shorter than one window is zero-padded
    to one window. `batch` windows go through the model at a time, without gradients.
    """

    def __init__(self, model: EmbeddingModel, batch: int = 256) -> None:
        self.model = model.eval()
        self.batch = batch
        self.sr = model.sr
        self.dim = model.dim
        self.window_s = model.config["window_s"]
        self.hop_s = model.config["hop_s"]

    def embed(self, audio: np.ndarray, hop_s: float | None = None) -> np.ndarray:
        """(n_samples,) -> (n_windows, dim) float32 unit rows; window i starts at i * hop_s seconds."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"Embedder.embed: expected mono (n_samples,) audio, got shape {audio.shape}")
        if audio.size < self.model.window:
            audio = np.pad(audio, (0, self.model.window - audio.size))
        frames = windows(audio, self.sr, self.window_s, hop_s or self.hop_s)
        out = np.empty((frames.shape[0], self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, frames.shape[0], self.batch):
                out[i:i + self.batch] = self.model(torch.from_numpy(np.array(frames[i:i + self.batch]))).numpy()
        return out

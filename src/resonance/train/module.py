"""Lightning pieces: the contrastive LightningModule and the DataModule of on-the-fly concert pairs.

The same code runs on many GPUs or nodes by changing `train.trainer` (accelerator gpu, devices N, num_nodes M,
strategy ddp): pairs are a pure function of (seed, epoch, index), so DDP's DistributedSampler splits them.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch

from resonance.config import SimulateParams, TrainParams
from resonance.model.builders import build_loss
from resonance.model.embedder import EmbeddingModel
from resonance.model.losses import MemoryQueue, nt_xent_with_queue
from resonance.simulate.chain import Banks
from resonance.train.data import SegmentSource, TrackFile, worker_context, worker_init
from resonance.train.stream import PairStream
from resonance.train.valset import ValSet, retrieval_scores


def build_model(params: TrainParams) -> EmbeddingModel:
    """The untrained EmbeddingModel the params describe (ParamsError if a transformer's input size does not match
    the frontend's n_mels x frames of one window)."""
    if params.encoder == "transformer":
        from resonance.config import ParamsError
        from resonance.model.frontend import FrontendConfig, window_samples

        fe = FrontendConfig(**params.frontend)
        want = (fe.n_mels, fe.n_frames(window_samples(fe.sr, params.window_s, "window_s")))
        cfg = params.encoders["transformer"]
        if (cfg.get("n_mels"), cfg.get("n_frames")) != want:
            raise ParamsError(f"train.encoders.transformer: n_mels x n_frames must be {want[0]} x {want[1]} "
                              f"(the frontend's output for one window), got {cfg.get('n_mels')} x {cfg.get('n_frames')}")
    return EmbeddingModel(params.frontend, params.encoder, params.encoders[params.encoder], params.window_s,
                          params.hop_s)


MAX_NONFINITE_SHARE = 0.01  # more skipped (non-finite) steps than this share of the run: it diverged, stop


class ContrastiveModule(L.LightningModule):
    """Trains an EmbeddingModel on (view_a, view_b) batches with the configured loss; validates by retrieval."""

    def __init__(self, params: TrainParams) -> None:
        super().__init__()
        self.params = params
        self.model = build_model(params)
        kwargs = {"margin": params.margin} if params.loss == "triplet" else {"temperature": params.temperature}
        self.loss_fn = build_loss(params.loss, **kwargs)
        use_queue = params.queue_size > 0 and params.loss == "nt_xent"
        self.queue = MemoryQueue(self.model.dim, params.queue_size) if use_queue else None
        self._val_z: list[torch.Tensor] = []
        self.valset: ValSet | None = None
        self._masks = torch.Generator().manual_seed(params.seed)  # SpecAugment draws
        self.history: list[dict[str, float]] = []  # every validation's scores, in order
        self.nonfinite_steps = 0  # steps skipped because their loss was NaN or infinite

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)

    def _embed_views(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(za, zb): the anchors as they are, the concert views with SpecAugment masking (when configured). a, b:
        audio (batch, window), or log-mel (batch, n_mels, n_frames) already made by the loader (`PairStream`)."""
        aug = self.params.augment
        mel = self.model.frontend(torch.cat([a, b])) if a.ndim == 2 else torch.cat([a, b])
        if aug.freq_masks or aug.time_masks:
            from resonance.model.augment import mask_logmel

            mel_b = mask_logmel(mel[a.shape[0]:], self._masks, aug.freq_masks, aug.freq_width, aug.time_masks,
                                aug.time_width)
            mel = torch.cat([mel[:a.shape[0]], mel_b])
        z = self.model.encoder(mel)
        return z[:a.shape[0]], z[a.shape[0]:]

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor | None:
        """The contrastive loss of one batch (a, b) or (a, b, stretch ids) (see `PairStream`); None (the step is
        skipped: no update) when it is not finite, which is counted, and an error once over MAX_NONFINITE_SHARE of
        the run's steps were."""
        a, b = batch[0], batch[1]
        ids = batch[2] if len(batch) > 2 else None
        za, zb = self._embed_views(a, b)
        # the loss in float32 also under bf16-mixed: bf16's 8-bit mantissa would blur logits s / T (T = 0.05)
        with torch.autocast(device_type=za.device.type, enabled=False):
            loss = self._loss(za.float(), zb.float(), a.shape[0], ids)
        if torch.isfinite(loss):
            return loss
        self.nonfinite_steps += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), on_step=True, batch_size=a.shape[0])
        total = self.params.steps_per_epoch * self.params.max_epochs
        if self.nonfinite_steps > max(1, MAX_NONFINITE_SHARE * total):
            from resonance.train.stage import TrainError

            raise TrainError(f"training diverged: {self.nonfinite_steps} steps gave a non-finite loss (over "
                             f"{MAX_NONFINITE_SHARE:.0%} of {total}); with train.trainer.precision bf16-mixed try "
                             f"32-true, else lower train.optim.lr")
        return None

    def _loss(self, za: torch.Tensor, zb: torch.Tensor, n: int, ids: torch.Tensor | None = None) -> torch.Tensor:
        z = torch.cat([za, zb])
        if self.params.loss == "nt_xent":
            queue = self.queue if self.queue is not None and self.global_step >= self.params.queue_start else None
            loss = nt_xent_with_queue(za, zb, queue, self.params.temperature, ids) if queue is not None \
                else self.loss_fn(za, zb)
            if queue is not None and bool(torch.isfinite(za).all()):  # clean anchors: what a query meets
                queue.enqueue(za.detach(), ids)
        else:
            labels = torch.arange(n, device=z.device).repeat(2)
            loss = self.loss_fn(z, labels)
        with torch.no_grad():
            pos = (za * zb).sum(1).mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        self.log("train/pos_sim", pos, on_step=True, on_epoch=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        import os

        self._train_threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)  # no DataLoader worker renders now: use every core

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._val_z.append(self.model(batch).float().cpu())

    def on_validation_epoch_end(self) -> None:
        torch.set_num_threads(getattr(self, "_train_threads", torch.get_num_threads()))
        if self.valset is None or not self._val_z:
            return
        z = torch.cat(self._val_z).numpy()
        self._val_z.clear()
        if z.shape[0] != self.valset.n_rows:  # sanity-check runs see only part of the set
            return
        scores = retrieval_scores(z, self.valset)
        self.history.append({"epoch": int(self.current_epoch), "step": int(self.global_step), **scores})
        self.log("val/top1", scores["top1"], prog_bar=True)
        self.log("val/window_top1", scores["window_top1"])
        self.log("val/window_recall", scores["window_recall"], prog_bar=True)
        self.log("val/gap", scores["gap"])

    def configure_optimizers(self) -> Any:
        o = self.params.optim
        opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        total = max(1, self.params.steps_per_epoch * self.params.max_epochs)

        def factor(step: int) -> float:
            if step < o.warmup_steps:
                return (step + 1) / o.warmup_steps
            progress = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
            return o.final_lr_ratio + (1 - o.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class PairDataModule(L.LightningDataModule):
    """Train: a PairStream over the train tracks (re-seeded each epoch); val: the ValSet rows in order."""

    def __init__(self, params: TrainParams, sim: SimulateParams, banks: Banks, train_tracks: list[TrackFile],
                 valset: ValSet) -> None:
        super().__init__()
        window = round(params.window_s * banks.sr)
        self.params = params
        source = SegmentSource(train_tracks, params.data, sim, banks, window)
        features = None
        if params.data.loader_features:  # the log-mel on the loader's core (the frontend has no weights)
            from resonance.model.builders import build_frontend

            features = build_frontend(params.frontend)
        self.dataset = PairStream(source, params.batch_size, params.steps_per_epoch, params.seed, features)
        self.valset = valset

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        self.dataset.epoch = self.trainer.current_epoch if self.trainer is not None else 0
        workers = self.params.data.workers
        extra = {"multiprocessing_context": worker_context(), "worker_init_fn": worker_init,
                 "prefetch_factor": self.params.data.windows_per_segment + 1} if workers else {}
        return torch.utils.data.DataLoader(self.dataset, batch_size=None, num_workers=workers,
                                           persistent_workers=False, **extra)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(ValBatches(self.valset), batch_size=None)


class ValBatches(torch.utils.data.IterableDataset):
    """The valset's rows in order, `batch` at a time, as float32 (batch, window) tensors."""

    def __init__(self, valset: ValSet, batch: int = 256) -> None:
        super().__init__()
        self.valset, self.batch = valset, batch

    def __len__(self) -> int:
        return math.ceil(self.valset.n_rows / self.batch)

    def __iter__(self):
        for i in range(0, self.valset.n_rows, self.batch):
            yield torch.from_numpy(self.valset.rows(i, i + self.batch))


def valset_embeddings(model: EmbeddingModel, valset: ValSet, batch: int = 256) -> np.ndarray:
    """(n_rows, dim) embeddings of every valset row, without gradients."""
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(valset.rows(i, i + batch))).numpy()
                               for i in range(0, valset.n_rows, batch)])

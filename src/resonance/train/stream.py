"""The training batches of one epoch as a torch IterableDataset, sharded over DataLoader workers and DDP ranks.

Batch j of epoch e is slot j % k of block j // k (see `resonance.train.data`); its contents are a pure function
of (seed, e, j). Worker w of W on rank r of R renders the blocks m with m % (W R) == r W + w, each once, and
yields its k batches one after another; the order in which the model meets the batches depends on W and R
(both params), never their contents.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from resonance.train.data import SegmentSource, render_block


def _shard() -> tuple[int, int]:
    """(this loader's shard, number of shards) over DataLoader workers x DDP ranks."""
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    dist = torch.distributed
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() \
        else (0, 1)
    return rank * workers + worker, workers * world


class PairStream(torch.utils.data.IterableDataset):
    """`n_batches` batches (a, b, ids): a and b float32, two views of `batch` windows each, as audio (batch,
    window), or as log-mel (batch, n_mels, n_frames) when `features` (audio (n, window) -> log-mel: the model's
    frontend, which has no trainable weights) is given, so the loader's core makes the spectrograms beside the
    rendering and the training process spends its core on the encoder; ids (batch,) int64 the stretch each pair
    was cut from (unique within an epoch: the k batches of a block share them), so a memory queue can keep a
    stretch's other windows out of its negatives."""

    def __init__(self, source: SegmentSource, batch: int, n_batches: int, seed: int,
                 features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        if batch < 1 or n_batches < 1:
            raise ValueError(f"PairStream: batch and n_batches must be >= 1, got {batch}, {n_batches}")
        self.source, self.batch, self.n_batches, self.seed = source, batch, n_batches, seed
        self.features = features
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_batches

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_batches / self.source.k)

    def block(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Block m of the current epoch: (a, b), float32 (k, batch, window) audio, or (k, batch, n_mels, n_frames)
        log-mel with `features` (made a batch at a time: the same numbers as the model's own frontend call)."""
        a, b = (torch.from_numpy(x) for x in render_block(self.source, self.seed, self.epoch, m, self.batch))
        if self.features is None:
            return a, b
        with torch.no_grad():
            mels = [self.features(torch.cat([a[j], b[j]])) for j in range(a.shape[0])]  # (2 batch, mels, frames)
        mel = torch.stack(mels)
        return mel[:, :self.batch], mel[:, self.batch:]

    def batch_at(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch j of the current epoch (renders its whole block; for checks, not for the training loop)."""
        a, b = self.block(j // self.source.k)
        return a[j % self.source.k], b[j % self.source.k]

    def stretch_ids(self, m: int) -> torch.Tensor:
        """(batch,) int64: the ids of block m's stretches in the current epoch."""
        return (self.epoch * self.n_blocks + m) * self.batch + torch.arange(self.batch, dtype=torch.int64)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        shard, shards = _shard()
        k = self.source.k
        for m in range(shard, self.n_blocks, shards):
            a, b = self.block(m)
            ids = self.stretch_ids(m)
            for j in range(min(k, self.n_batches - m * k)):
                yield a[j].clone(), b[j].clone(), ids  # their own storage: one batch does not pin the block

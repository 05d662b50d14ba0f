"""SpecAugment-style masking of log-mel spectrograms (training only): a model that must recognise a window with
some bands and some frames blotted out learns not to lean on any one of them, as a crowd or a room will blot out
different ones in every concert."""

from __future__ import annotations

import torch


def mask_logmel(logmel: torch.Tensor, generator: torch.Generator, freq_masks: int, freq_width: int,
                time_masks: int, time_width: int) -> torch.Tensor:
    """(batch, n_mels, n_frames) -> the same with, per example, `freq_masks` bands of 0..freq_width mel bands and
    `time_masks` stretches of 0..time_width frames set to the example's mean level. Draws from `generator`."""
    if logmel.ndim != 3:
        raise ValueError(f"mask_logmel: expected (batch, n_mels, n_frames), got {tuple(logmel.shape)}")
    batch, n_mels, n_frames = logmel.shape
    keep = torch.ones_like(logmel, dtype=torch.bool)
    for count, width, size, axis in ((freq_masks, freq_width, n_mels, 1), (time_masks, time_width, n_frames, 2)):
        if count == 0 or width == 0:
            continue
        w = torch.randint(0, min(width, size) + 1, (batch, count), generator=generator)
        start = (torch.rand((batch, count), generator=generator) * (size - w + 1)).long()
        pos = torch.arange(size).view(1, 1, size)
        hit = ((pos >= start.unsqueeze(-1)) & (pos < (start + w).unsqueeze(-1))).any(dim=1)  # (batch, size)
        keep &= ~(hit.unsqueeze(2) if axis == 1 else hit.unsqueeze(1)).to(keep.device)
    mean = logmel.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep, logmel, mean)

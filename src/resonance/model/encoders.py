"""Encoders: log-mel (batch, n_mels, n_frames) -> embedding (batch, dim) with unit L2 norm.

Both encoders first standardise each example's log-mel to zero mean and unit variance over (mel, frame): a gain
change adds a constant to a log-mel (away from the log_eps floor), so this makes the embedding invariant to it.

- `NafpEncoder`: the convolutional encoder of Neural Audio Fingerprint (Chang et al. 2021), re-implemented from the
  paper's description: separable conv blocks, then NAFP's split ("divide and encode") projection head.
- `PatchTransformerEncoder`: a small AST-style ViT over non-overlapping log-mel patches with a CLS token.
Configs are frozen dataclasses with no defaults (values come from params.yaml through `builders`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def standardize(logmel: torch.Tensor) -> torch.Tensor:
    """(batch, n_mels, n_frames) -> the same, each example shifted and scaled to mean 0, std 1 over (mel, frame)."""
    if logmel.ndim != 3:
        raise ValueError(f"expected log-mel (batch, n_mels, n_frames), got shape {tuple(logmel.shape)}")
    mean = logmel.mean(dim=(1, 2), keepdim=True)
    std = logmel.std(dim=(1, 2), keepdim=True)
    return (logmel - mean) / (std + 1e-5)


@dataclass(frozen=True)
class NafpConfig:
    """NafpEncoder size. channels: output channels of each conv block (each block halves time and frequency);
    kernel: k of the (1 x k) and (k x 1) convs (odd); dim: embedding size, must divide channels[-1];
    head_hidden: hidden units of each group's 2-layer MLP in the split head."""

    channels: list[int]
    kernel: int
    dim: int
    head_hidden: int

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"NafpConfig.channels: need a non-empty list of positive ints, got {self.channels}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"NafpConfig.kernel: must be odd and >= 1, got {self.kernel}")
        if self.dim < 1 or self.channels[-1] % self.dim:
            raise ValueError(f"NafpConfig: dim={self.dim} must divide channels[-1]={self.channels[-1]}")
        if self.head_hidden < 1:
            raise ValueError(f"NafpConfig.head_hidden: must be >= 1, got {self.head_hidden}")


class SeparableBlock(nn.Module):
    """(batch, c_in, F, T) -> (batch, c_out, ceil(F/2), ceil(T/2)): a (1 x k) conv with stride 2 in time, then a
    (k x 1) conv with stride 2 in frequency, each followed by layer norm over (channel, F, T) and ReLU.

    The layer norm is GroupNorm with one group: NAFP's per-example layer norm, without fixing the input size
    (and, unlike batch norm, it cannot leak information between the examples of a contrastive batch)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_out, (1, kernel), stride=(1, 2), padding=(0, pad), bias=False),
            nn.GroupNorm(1, c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, (kernel, 1), stride=(2, 1), padding=(pad, 0), bias=False),
            nn.GroupNorm(1, c_out), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SplitHead(nn.Module):
    """NAFP's divide-and-encode: (batch, features) split into `dim` groups of features // dim; each group gets its
    own Linear(group, hidden) -> ELU -> Linear(hidden, 1), giving (batch, dim). Grouped 1x1 convs do all groups
    at once."""

    def __init__(self, features: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(features, dim * hidden, 1, groups=dim), nn.ELU(),
                                 nn.Conv1d(dim * hidden, dim, 1, groups=dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(-1)).squeeze(-1)


class NafpEncoder(nn.Module):
    """(batch, n_mels, n_frames) log-mel -> (batch, cfg.dim) unit-norm embedding.

    standardise -> len(channels) SeparableBlocks -> mean over what is left of (F, T) (a 1 x 1 map when
    2**len(channels) >= n_mels and n_frames, as in NAFP) -> SplitHead -> L2 normalise. Any input size works.
    """

    def __init__(self, cfg: NafpConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c_in = [1, *cfg.channels[:-1]]
        self.blocks = nn.Sequential(*[SeparableBlock(a, b, cfg.kernel) for a, b in zip(c_in, cfg.channels)])
        self.head = SplitHead(cfg.channels[-1], cfg.dim, cfg.head_hidden)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        # channels-last (NHWC): oneDNN's faster convolution kernels for these small maps; the same numbers
        x = standardize(logmel).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        x = self.blocks(x)  # (batch, channels[-1], F', T')
        return F.normalize(self.head(x.mean(dim=(2, 3))), dim=1)


@dataclass(frozen=True)
class TransformerConfig:
    """PatchTransformerEncoder size. n_mels x n_frames: the exact input size (from the frontend: n_mels and
    FrontendConfig.n_frames(window samples)); patch_mels x patch_frames: patch size (non-overlapping; a remainder
    at the top band or the end is dropped); width: token size; depth: transformer layers; heads: attention heads
    (must divide width); mlp_ratio: feed-forward size / width; dropout: in attention and feed-forward; dim: output."""

    n_mels: int
    n_frames: int
    patch_mels: int
    patch_frames: int
    width: int
    depth: int
    heads: int
    mlp_ratio: float
    dropout: float
    dim: int

    def __post_init__(self) -> None:
        if not (1 <= self.patch_mels <= self.n_mels and 1 <= self.patch_frames <= self.n_frames):
            raise ValueError(f"TransformerConfig: patch {self.patch_mels} x {self.patch_frames} must fit the input "
                             f"{self.n_mels} x {self.n_frames}")
        if self.width < 1 or self.heads < 1 or self.width % self.heads:
            raise ValueError(f"TransformerConfig: heads={self.heads} must divide width={self.width}")
        if self.depth < 1 or self.dim < 1 or self.mlp_ratio <= 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"TransformerConfig: need depth >= 1, dim >= 1, mlp_ratio > 0, 0 <= dropout < 1; "
                             f"got {self}")

    @property
    def n_patches(self) -> int:
        return (self.n_mels // self.patch_mels) * (self.n_frames // self.patch_frames)


class PatchTransformerEncoder(nn.Module):
    """(batch, cfg.n_mels, cfg.n_frames) log-mel -> (batch, cfg.dim) unit-norm embedding (AST-style small ViT).

    standardise -> Conv2d patch embedding (kernel = stride = patch) -> n_patches tokens of `width`, a learned CLS
    token in front, learned positional embeddings (n_patches + 1, width) -> depth pre-norm TransformerEncoderLayers
    (GELU) -> LayerNorm(CLS) -> Linear(width, dim) -> L2 normalise. The input size is fixed by the config.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        patch = (cfg.patch_mels, cfg.patch_frames)
        self.patch_embed = nn.Conv2d(1, cfg.width, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos = nn.Parameter(torch.zeros(1, cfg.n_patches + 1, cfg.width))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, dim_feedforward=round(cfg.mlp_ratio * cfg.width),
                                           dropout=cfg.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.dim)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.ndim != 3 or tuple(logmel.shape[1:]) != (self.cfg.n_mels, self.cfg.n_frames):
            raise ValueError(f"PatchTransformerEncoder: expected (batch, {self.cfg.n_mels}, {self.cfg.n_frames}) "
                             f"log-mel, got {tuple(logmel.shape)}")
        tokens = self.patch_embed(standardize(logmel).unsqueeze(1)).flatten(2).transpose(1, 2)  # (b, n_patches, w)
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        cls = self.norm(self.blocks(tokens)[:, 0])
        return F.normalize(self.proj(cls), dim=1)

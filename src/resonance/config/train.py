"""Dataclasses of the `train` section: the embedding model, its training data, optimiser and Trainer.

A profile (`train.profiles.<name>`) is a nested mapping of overrides merged over the section before it is
built, so `fast` (tests, smoke runs) changes a few sizes and nothing else. Encoder configs stay plain mappings
here (`encoders.<name>`) and are checked by `resonance.model.builders` when the model is built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resonance.config.loader import ParamsError, build, load_params


@dataclass(frozen=True)
class TrainConditions:
    """Concert views with independent draws (`data.views: independent`): a room class by `rooms` (class ->
    probability; `dry` = no room), a crowd SNR uniform in `snr_db` (no crowd with `no_crowd_prob`), a reverberant
    crowd share in `crowd_wet`, and a phone clip mode by `clip_mode_probs`."""

    rooms: dict[str, float]
    snr_db: list[float]
    no_crowd_prob: float
    crowd_wet: list[float]
    clip_mode_probs: dict[str, float]


@dataclass(frozen=True)
class TrainAugment:
    """SpecAugment-style masking of the concert view's log-mel during training: `freq_masks` bands of up to
    `freq_width` mel bands and `time_masks` stretches of up to `time_width` frames, each filled with the
    example's mean level (0 masks: off)."""

    freq_masks: int
    freq_width: int
    time_masks: int
    time_width: int


@dataclass(frozen=True)
class TrainData:
    """How training pairs are drawn. A window of `window_s` at a random position of a random `train` track
    (plus `preroll_s` of music before it, run through the chain and cut off); the second view starts up to
    `offset_jitter_s` away. With probability `clean_anchor_prob` the first view is the clean window (what the
    index holds), otherwise a second concert view; concert views draw a preset from `presets`. Windows are
    rendered `windows_per_segment` at a time (consecutive windows of one stretch, starting every `segment_hop_s`
    seconds: overlapping when shorter than a window; one pass of the chain) and spread over that many batches; `workers` DataLoader processes render them. `views`: `independent` (room, SNR
    and clipping drawn apart: `conditions`) or `presets` (one of `presets`, each tying a room to an SNR range)."""

    views: str
    conditions: TrainConditions
    presets: list[str]
    preroll_s: float
    offset_jitter_s: float
    clean_anchor_prob: float
    windows_per_segment: int
    segment_hop_s: float
    workers: int
    loader_features: bool


@dataclass(frozen=True)
class TrainVal:
    """The validation retrieval check (early stopping): `tracks` val tracks (0 = all), a `segment_s` stretch of
    each indexed at the model's hop, `queries_per_track` concert queries of `query_s` inside each stretch,
    `query_hop_s` between query windows. Window level: `distractors` clean windows of `train` tracks (every
    `distractor_hop_s`) join the reference windows, and each concert query window is scored by whether its
    aligned reference window ranks in the top 10 (recall@10) and by how far its similarity clears the 10th best
    other window (the gap). `monitor` (top1 | window_recall | gap) picks the checkpoint and drives early stopping."""

    tracks: int
    segment_s: float
    queries_per_track: int
    query_s: float
    query_hop_s: float
    presets: list[str]
    distractors: int
    distractor_hop_s: float
    monitor: str


@dataclass(frozen=True)
class TrainOptim:
    """AdamW with linear warm-up then cosine decay to lr * final_lr_ratio over the planned steps."""

    lr: float
    weight_decay: float
    warmup_steps: int
    final_lr_ratio: float


@dataclass(frozen=True)
class TrainerParams:
    """Lightning Trainer knobs; multi-GPU/multi-node = accelerator gpu, devices N, num_nodes M, strategy ddp."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str
    precision: str
    threads: int  # torch intra-op threads in the training process (0 = torch's default)


@dataclass(frozen=True)
class TrainParams:
    """Everything `resonance train` needs (see params.yaml `train:` for the meaning of each key)."""

    seed: int
    profile: str
    frontend: dict[str, Any]
    window_s: float
    hop_s: float
    encoder: str
    encoders: dict[str, Any]
    loss: str
    temperature: float
    margin: float
    queue_size: int
    queue_start: int
    batch_size: int
    steps_per_epoch: int
    max_epochs: int
    max_time_min: float
    patience: int
    data: TrainData
    augment: TrainAugment
    val: TrainVal
    optim: TrainOptim
    trainer: TrainerParams
    mlflow_experiment: str
    registered_model: str
    profiles: dict[str, Any]

    def __post_init__(self) -> None:
        checks = [(self.window_s > 0 and self.hop_s > 0, "window_s and hop_s must be > 0"),
                  (self.batch_size >= 2, "batch_size must be >= 2 (in-batch negatives)"),
                  (self.steps_per_epoch >= 1 and self.max_epochs >= 1, "steps_per_epoch, max_epochs must be >= 1"),
                  (self.queue_size >= 0 and self.queue_start >= 0 and self.patience >= 1,
                   "queue_size >= 0, queue_start >= 0, patience >= 1"),
                  (0 <= self.data.clean_anchor_prob <= 1, "data.clean_anchor_prob must be in [0, 1]"),
                  (self.data.preroll_s >= 0 and self.data.offset_jitter_s >= 0, "data: preroll/jitter >= 0"),
                  (0 < self.data.segment_hop_s <= self.window_s, "data.segment_hop_s must be in (0, window_s]"),
                  (self.data.windows_per_segment >= 1 and self.data.workers >= 0,
                   "data.windows_per_segment must be >= 1 and data.workers >= 0"),
                  (bool(self.data.presets) and bool(self.val.presets), "data.presets and val.presets: not empty"),
                  (self.data.views in ("independent", "presets"), "data.views must be independent or presets"),
                  (self.val.monitor in ("top1", "window_recall", "gap"),
                   "val.monitor must be top1, window_recall or gap"),
                  (self.val.distractors >= 0 and self.val.distractor_hop_s > 0,
                   "val.distractors >= 0 and val.distractor_hop_s > 0"),
                  (min(self.augment.freq_masks, self.augment.freq_width, self.augment.time_masks,
                       self.augment.time_width) >= 0, "augment: counts and widths must be >= 0"),
                  (self.val.query_s >= self.window_s, "val.query_s must be at least one window"),
                  (self.val.segment_s >= self.val.query_s, "val.segment_s must hold a query")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"train: {message}")
        if self.encoder not in self.encoders:
            raise ParamsError(f"train.encoder: {self.encoder!r} has no entry in train.encoders "
                              f"(have {sorted(self.encoders)})")


def _merge(base: dict[str, Any], over: dict[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in out:
            raise ParamsError(f"{where}: override of unknown key {key!r}")
        if isinstance(value, dict) and isinstance(out[key], dict) and key not in ("encoders",):
            out[key] = _merge(out[key], value, f"{where}.{key}")
        elif isinstance(value, dict) and key == "encoders":
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def train_section(data: dict[str, Any], profile: str | None = None) -> TrainParams:
    """TrainParams from the raw `train` mapping with profile `profile` (default: train.profile) applied."""
    if not isinstance(data, dict):
        raise ParamsError("train: expected a mapping")
    name = profile or data.get("profile", "default")
    profiles = data.get("profiles") or {}
    if name != "default":
        if name not in profiles:
            raise ParamsError(f"train.profile: unknown profile {name!r}; known: default, {', '.join(sorted(profiles))}")
        data = _merge(data, profiles[name], f"train.profiles.{name}")
    params = build(TrainParams, data, "train")
    return params if params.profile == name else _replace_profile(params, name)


def _replace_profile(params: TrainParams, name: str) -> TrainParams:
    import dataclasses

    return dataclasses.replace(params, profile=name)


def load_train(path: str | Path, profile: str | None = None) -> TrainParams:
    """The `train` section of the params file at `path`, with a profile applied."""
    data = load_params(path)
    if "train" not in data:
        raise ParamsError(f"{path}: no `train:` section")
    return train_section(data["train"], profile)

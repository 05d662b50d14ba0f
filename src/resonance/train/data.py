"""Training pairs drawn on the fly: random 1 s windows of `train` tracks, each seen through the concert simulator.

Item i of epoch e is a pure function of (seed, e, i): the same params give the same pairs whatever the number of
DataLoader workers. Audio is read straight from the catalog FLACs (a seek, not the whole track), so workers hold
only the banks (RIRs and crowd beds, ~50 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resonance.config import SimulateParams, TrainData
from resonance.simulate.chain import Banks, apply_condition, sample_preset

MAX_DRAWS = 50
SILENCE_DBFS = -50.0  # a window quieter than this (RMS re full scale) is a break in the music


def audible(audio: np.ndarray, floor_db: float = SILENCE_DBFS) -> bool:
    """True when the RMS of `audio` is above floor_db dBFS in every half of it (no half is a silent break)."""
    halves = np.array_split(np.asarray(audio, dtype=np.float64), 2)
    return all(h.size and 10 * np.log10(np.mean(h ** 2) + 1e-20) > floor_db for h in halves)


@dataclass(frozen=True)
class TrackFile:
    """One catalog track: its FLAC, its length in samples and its id."""

    track_id: str
    path: Path
    n_samples: int


def read_segment(track: TrackFile, start: int, n: int) -> np.ndarray:
    """Samples [start, start + n) of a track as float32 (n,); zero-padded where the track ends."""
    import soundfile as sf

    with sf.SoundFile(str(track.path)) as f:
        f.seek(max(0, start))
        out = f.read(n, dtype="float32", always_2d=True)[:, 0]
    return out if out.size == n else np.pad(out, (0, n - out.size))


def concert_view(music: np.ndarray, preroll: int, rng: np.random.Generator, presets: list[str],
                 sim: SimulateParams, banks: Banks) -> np.ndarray:
    """Run (preroll + n,) clean music through a random preset of the chain; return the last n samples."""
    name = presets[int(rng.integers(len(presets)))]
    cond = sample_preset(rng, name, sim.presets[name], sim, banks)
    return apply_condition(music, cond, banks)[preroll:]


class PairDataset:
    """A map-style dataset of (view_a, view_b), each float32 (window,) at banks.sr; len = steps * batch.

    view_b is a concert view of the window starting at t; view_a is the clean window (probability
    clean_anchor_prob) or another concert view, starting at t + u, |u| <= offset_jitter_s.
    """

    def __init__(self, tracks: list[TrackFile], data: TrainData, sim: SimulateParams, banks: Banks,
                 window: int, length: int, seed: int) -> None:
        if not tracks:
            raise ValueError("PairDataset: no training tracks")
        self.tracks, self.data, self.sim, self.banks = tracks, data, sim, banks
        self.window, self.length, self.seed = window, length, seed
        self.preroll = int(round(data.preroll_s * banks.sr))
        self.jitter = int(round(data.offset_jitter_s * banks.sr))
        self.epoch = 0
        weights = np.array([t.n_samples for t in tracks], dtype=np.float64)
        self.p = weights / weights.sum()  # windows uniform over the music, not over the tracks

    def __len__(self) -> int:
        return self.length

    def draw_music(self, rng: np.random.Generator) -> np.ndarray:
        """(preroll + window + 2 * jitter,) clean music at a random place; silent stretches (breaks inside a
        track) are redrawn: a silent window has no song to learn and no level to mix a crowd against."""
        span = self.preroll + self.window + 2 * self.jitter
        for _ in range(MAX_DRAWS):
            track = self.tracks[int(rng.choice(len(self.tracks), p=self.p))]
            music = read_segment(track, int(rng.integers(0, max(1, track.n_samples - span))), span)
            if audible(music[self.jitter:-self.jitter or None]):
                return music
        raise RuntimeError(f"PairDataset: {MAX_DRAWS} draws in a row hit silence; is the catalog silent?")

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        music = self.draw_music(rng)
        shift = int(rng.integers(-self.jitter, self.jitter + 1)) if self.jitter else 0
        n = self.preroll + self.window
        b = concert_view(music[self.jitter:self.jitter + n], self.preroll, rng, self.data.presets, self.sim,
                         self.banks)
        a_music = music[self.jitter + shift:self.jitter + shift + n]
        if rng.random() < self.data.clean_anchor_prob:
            a = np.ascontiguousarray(a_music[self.preroll:], dtype=np.float32)
        else:
            a = concert_view(a_music, self.preroll, rng, self.data.presets, self.sim, self.banks)
        return a, b


def worker_init(_: int) -> None:
    """One torch thread per DataLoader worker: the cores belong to the model step and the other workers."""
    import torch

    torch.set_num_threads(1)

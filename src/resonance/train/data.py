"""Training pairs drawn on the fly: stretches of `train` tracks, each seen through the concert simulator.

A *segment* is k = `windows_per_segment` consecutive windows of one random stretch of music, starting every
`segment_hop_s` (overlapping when that is shorter than a window), rendered through the chain in one pass (one
read, one preroll, one condition for k pairs: the chain's costs are paid once per k pairs, and with half-window
hops each rendered second gives two pairs; that is what lets a 2-core machine keep the model busy). A *block* is `batch` segments; batch j of an
epoch is slot j % k of block j // k: window j % k of every segment of the block. So a batch holds `batch`
different stretches of music and one segment's windows meet in different steps, never as each other's negatives.
Segment s of block m of epoch e is a pure function of (seed, e, m, s). Audio is read straight from the catalog
FLACs (a seek, not the whole track), so workers hold only the banks (RIRs and crowd beds, ~50 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resonance.config import SimulateParams, TrainData
from resonance.simulate.chain import Banks, Condition, apply_condition, sample_independent, sample_preset

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


def draw_condition(rng: np.random.Generator, data: TrainData, sim: SimulateParams, banks: Banks) -> Condition:
    """One training view's concert condition: independent room / SNR / clipping draws, or a random preset."""
    if data.views == "independent":
        c = data.conditions
        return sample_independent(rng, c.rooms, c.snr_db, c.no_crowd_prob, c.crowd_wet, c.clip_mode_probs, sim,
                                  banks)
    name = data.presets[int(rng.integers(len(data.presets)))]
    return sample_preset(rng, name, sim.presets[name], sim, banks)


def concert_view(music: np.ndarray, preroll: int, rng: np.random.Generator, presets: list[str],
                 sim: SimulateParams, banks: Banks) -> np.ndarray:
    """Run (preroll + n,) clean music through a random preset of the chain; return the last n samples."""
    name = presets[int(rng.integers(len(presets)))]
    cond = sample_preset(rng, name, sim.presets[name], sim, banks)
    return apply_condition(music, cond, banks)[preroll:]


def draw_music(rng: np.random.Generator, tracks: list[TrackFile], p: np.ndarray, span: int, inner: slice,
               window: int, step: int) -> np.ndarray:
    """(span,) clean music at a random place (track chosen with probabilities `p`) whose windows in `inner` (one
    every `step` samples) are all audible; silent stretches (breaks inside a track) are redrawn: a silent window
    has no song to learn and no level to mix a crowd against."""
    for _ in range(MAX_DRAWS):
        track = tracks[int(rng.choice(len(tracks), p=p))]
        music = read_segment(track, int(rng.integers(0, max(1, track.n_samples - span))), span)
        core = music[inner]
        if all(audible(core[j:j + window]) for j in range(0, core.size - window + 1, step)):
            return music
    raise RuntimeError(f"training data: {MAX_DRAWS} draws in a row hit silence; is the catalog silent?")


class SegmentSource:
    """Renders training segments: `segment(rng)` -> (a, b), each float32 (k, window) at banks.sr.

    b[j] is window j (starting j * segment_hop_s into the stretch) of one concert view of the stretch; a[j] is
    the clean window j shifted by its own u_j (|u_j| <= offset_jitter_s) with probability clean_anchor_prob, else
    window j of a second concert view (a different condition) of the stretch shifted by one u.
    """

    def __init__(self, tracks: list[TrackFile], data: TrainData, sim: SimulateParams, banks: Banks,
                 window: int) -> None:
        if not tracks:
            raise ValueError("training data: no training tracks")
        self.tracks, self.data, self.sim, self.banks, self.window = tracks, data, sim, banks, window
        self.k = data.windows_per_segment
        self.hop = int(round(data.segment_hop_s * banks.sr))
        self.preroll = int(round(data.preroll_s * banks.sr))
        self.jitter = int(round(data.offset_jitter_s * banks.sr))
        weights = np.array([t.n_samples for t in tracks], dtype=np.float64)
        self.p = weights / weights.sum()  # windows uniform over the music, not over the tracks

    def segment(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k, w, pre, jit, hop = self.k, self.window, self.preroll, self.jitter, self.hop
        n = pre + w + (k - 1) * hop
        music = draw_music(rng, self.tracks, self.p, n + 2 * jit, slice(jit + pre, jit + n), w, hop)

        def view(x: np.ndarray) -> np.ndarray:
            y = apply_condition(x, draw_condition(rng, self.data, self.sim, self.banks), self.banks)[pre:]
            return np.stack([y[j * hop:j * hop + w] for j in range(k)])

        b = view(music[jit:jit + n])
        if rng.random() < self.data.clean_anchor_prob:
            shifts = rng.integers(-jit, jit + 1, size=k) if jit else np.zeros(k, dtype=int)
            a = np.stack([music[jit + pre + j * hop + u:][:w] for j, u in enumerate(shifts)])
        else:
            u = int(rng.integers(-jit, jit + 1)) if jit else 0
            a = view(music[jit + u:jit + u + n])
        return np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)


def render_block(source: SegmentSource, seed: int, epoch: int, block: int, batch: int) -> tuple[np.ndarray,
                                                                                                np.ndarray]:
    """Block `block` of epoch `epoch`: (a, b), float32 (k, batch, window); segment s from rng (seed, epoch,
    block, s), so any worker (or DDP rank) renders the same block alike."""
    pairs = [source.segment(np.random.default_rng([seed, epoch, block, s])) for s in range(batch)]
    a, b = (np.stack(v, axis=1) for v in zip(*pairs))
    return a, b


def worker_context() -> object:
    """The multiprocessing context of DataLoader workers: forkserver, with torch and resonance preloaded once in
    the server. Not a plain fork of the trainer: its threads (MLflow, a Prefect flow's services) would be
    inherited half-alive, and Prefect's at-exit hook then fails the worker as it exits."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["resonance.train.stream"])
    return ctx


def worker_init(_: int) -> None:
    """One torch thread per DataLoader worker: the cores belong to the model step and the other workers."""
    import torch

    torch.set_num_threads(1)

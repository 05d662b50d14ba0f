"""Which windows the model can judge: silence and near-silence are masked, in the index and in queries.

A silent window has no song in it, yet the model still maps it somewhere, and every silent window of every track
lands in about the same place: a hub that collects the votes of any quiet or noise-like query. So a reference
window that is mostly silent is never indexed, and a query window that is mostly silent is no evidence.

A window (window_s of audio every hop_s) is *usable* when at least `min_active` of its frames (`frame_s` long,
back to back) have an RMS level above `floor_dbfs` (dB re full scale). Digital zero is below any floor.
"""

from __future__ import annotations

import numpy as np

from resonance.model.frontend import window_samples


def frame_levels_db(audio: np.ndarray, sr: int, frame_s: float) -> np.ndarray:
    """RMS level (dBFS) of consecutive frames of `frame_s` seconds: (n_samples,) -> (n_samples // frame,)."""
    frame = max(1, int(round(frame_s * sr)))
    n = audio.size // frame
    x = np.asarray(audio[:n * frame], dtype=np.float64).reshape(n, frame)
    return 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-20)


def usable_windows(audio: np.ndarray, sr: int, window_s: float, hop_s: float, floor_dbfs: float,
                   min_active: float, frame_s: float = 0.05) -> np.ndarray:
    """(n_windows,) bool for the windows of `windows(audio, sr, window_s, hop_s)`: True when at least
    `min_active` (0..1) of the window's frames are louder than `floor_dbfs`. Empty for audio under one window."""
    audio = np.asarray(audio)
    win, hop = window_samples(sr, window_s, "window_s"), window_samples(sr, hop_s, "hop_s")
    if audio.ndim != 1 or audio.size < win:
        return np.zeros(0, dtype=bool)
    frame = max(1, int(round(frame_s * sr)))
    active = np.concatenate([[0], np.cumsum(frame_levels_db(audio, sr, frame_s) > floor_dbfs)])
    n_windows = 1 + (audio.size - win) // hop
    first = (np.arange(n_windows) * hop) // frame  # frames fully inside each window
    last = (np.arange(n_windows) * hop + win) // frame
    per_window = np.maximum(1, last - first)
    return (active[last] - active[first]) / per_window >= min_active

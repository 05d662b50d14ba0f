"""Spectral peaks, the "constellation map" of Wang (2003): STFT magnitude in dB, local maxima, density control.

Frame `t` covers samples [t * hop, t * hop + n_fft); bin `b` is b * sr / n_fft Hz. Levels are in dB relative to a
full-scale sine (a sine of amplitude 1 peaks near 0 dB), floored at `floor_db`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.ndimage import maximum_filter

CHUNK_ELEMENTS = 1 << 20  # working-set bound (array elements) of the chunked vectorized loops; not a tuning knob


@dataclass(frozen=True)
class LandmarkConfig:
    """Every knob of landmark fingerprinting (no defaults here: values come from params.yaml or the caller).

    sr: sample rate of the input audio (Hz); n_fft: STFT frame length (samples); hop: STFT hop (samples).
    fmin_hz, fmax_hz: band in which peaks are picked. floor_db: level floor; nothing at or below it is a peak.
    peak_time_frames x peak_freq_bins: the (odd) neighbourhood a peak must be the maximum of.
    peaks_per_s: density target; a peak is kept when fewer than this many stronger peaks lie within +-0.5 s.
    fan_out: targets paired with each anchor peak (the nearest in time first).
    dt_min_frames..dt_max_frames: target zone in time; df_max_bins: target zone half-height in frequency.
    """

    sr: int
    n_fft: int
    hop: int
    fmin_hz: float
    fmax_hz: float
    floor_db: float
    peak_time_frames: int
    peak_freq_bins: int
    peaks_per_s: float
    fan_out: int
    dt_min_frames: int
    dt_max_frames: int
    df_max_bins: int

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft < 2 or not 0 < self.hop <= self.n_fft:
            raise ValueError(f"LandmarkConfig: need sr > 0, n_fft >= 2, 0 < hop <= n_fft; got {self}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sr / 2:
            raise ValueError(f"LandmarkConfig: need 0 <= fmin_hz < fmax_hz <= sr/2, got "
                             f"{self.fmin_hz}..{self.fmax_hz} Hz at sr={self.sr}")
        for name in ("peak_time_frames", "peak_freq_bins"):
            size = getattr(self, name)
            if size < 1 or size % 2 == 0:
                raise ValueError(f"LandmarkConfig.{name}: must be an odd number >= 1, got {size}")
        if self.peaks_per_s <= 0 or self.fan_out < 1:
            raise ValueError("LandmarkConfig: need peaks_per_s > 0 and fan_out >= 1")
        if not 1 <= self.dt_min_frames <= self.dt_max_frames or self.df_max_bins < 0:
            raise ValueError("LandmarkConfig: need 1 <= dt_min_frames <= dt_max_frames and df_max_bins >= 0")

    @property
    def frames_per_s(self) -> float:
        """STFT frames per second of audio (sr / hop)."""
        return self.sr / self.hop

    def band_bins(self) -> tuple[int, int]:
        """The first and one-past-last STFT bin of [fmin_hz, fmax_hz]."""
        lo = int(np.ceil(self.fmin_hz * self.n_fft / self.sr))
        hi = int(np.floor(self.fmax_hz * self.n_fft / self.sr)) + 1
        return lo, min(hi, self.n_fft // 2 + 1)


def check_audio(audio: np.ndarray) -> np.ndarray:
    """Validate mono audio (n_samples,) and return it as float32; ValueError if empty, not 1-D or not finite."""
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise ValueError(f"audio must be 1-D mono, shape (n_samples,); got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("audio is empty (0 samples)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"audio must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("audio has NaN or infinite samples")
    return arr


def spectrogram_db(audio: np.ndarray, config: LandmarkConfig) -> np.ndarray:
    """Hann-windowed STFT level in dB of mono audio (n_samples,) at config.sr.

    Returns float32 (n_frames, n_bins) for the bins of config.band_bins(), floored at config.floor_db. Audio
    shorter than n_fft is zero-padded to one frame.
    """
    x = check_audio(audio)
    if x.size < config.n_fft:
        x = np.pad(x, (0, config.n_fft - x.size))
    window = np.hanning(config.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(x, config.n_fft)[:: config.hop]
    lo, hi = config.band_bins()
    ref = (window.sum() / 2) ** 2  # power of a full-scale sine at its bin
    floor = ref * 10.0 ** (config.floor_db / 10)
    out = np.empty((frames.shape[0], hi - lo), dtype=np.float32)
    step = max(1, CHUNK_ELEMENTS // config.n_fft)  # bounded memory on long tracks
    for start in range(0, frames.shape[0], step):
        spec = sp_fft.rfft(frames[start:start + step] * window, axis=1)[:, lo:hi]
        power = spec.real**2 + spec.imag**2
        out[start:start + step] = 10 * np.log10(np.maximum(power, floor) / ref)
    return out


def find_peaks(spec_db: np.ndarray, config: LandmarkConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of a spectrogram (n_frames, n_bins) from `spectrogram_db`, thinned to config.peaks_per_s.

    Returns (frames int32 (n,), bins int32 (n,), level_db float32 (n,)), sorted by frame then bin; bins are
    absolute STFT bin numbers (the band offset is added back).
    """
    if spec_db.ndim != 2:
        raise ValueError(f"spectrogram must be 2-D (n_frames, n_bins), got shape {spec_db.shape}")
    size = (config.peak_time_frames, config.peak_freq_bins)
    is_peak = (spec_db == maximum_filter(spec_db, size=size, mode="nearest")) & (spec_db > config.floor_db)
    frames, bins = np.nonzero(is_peak)
    level = spec_db[frames, bins]
    keep = _dense_enough(frames, level, config.peaks_per_s, 0.5 * config.frames_per_s)
    lo, _ = config.band_bins()
    return frames[keep].astype(np.int32), (bins[keep] + lo).astype(np.int32), level[keep]


def _dense_enough(frames: np.ndarray, level: np.ndarray, per_s: float, half_frames: float) -> np.ndarray:
    """Mask (n,) of peaks with fewer than `per_s` stronger peaks within +-half_frames (frames sorted ascending).

    The rule depends only on each peak's surroundings, so an excerpt keeps the same peaks as the full track.
    """
    n = frames.size
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    lo = np.searchsorted(frames, frames - half_frames, side="left")
    hi = np.searchsorted(frames, frames + half_frames, side="right")
    width = int((hi - lo).max())
    step = max(1, CHUNK_ELEMENTS // width)
    cols = np.arange(width)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        idx = lo[rows, None] + cols
        valid = idx < hi[rows, None]
        stronger = (level[np.minimum(idx, n - 1)] > level[rows, None]) & valid
        keep[rows] = stronger.sum(axis=1) < per_s
    return keep

"""Audio -> fixed-length windows -> log-mel spectrogram, the input of every encoder.

Conventions (fixed here, so indexing, training and queries see exactly the same features):
- Mel scale: HTK, mel(f) = 2595 * log10(1 + f_hz / 700).
- Filters: triangles on the linear-frequency axis between adjacent mel-spaced edges, PEAK-normalised (height 1 at
  the centre frequency; no area normalisation), so a pure tone at a filter's centre gets weight 1 in that filter.
- STFT: periodic Hann window of n_fft samples, hop `hop`, center=False: frame t covers samples
  [t * hop, t * hop + n_fft) of the window and no padding is invented, so n_frames = 1 + (n_samples - n_fft) // hop.
- Level: power spectrum relative to a full-scale sine, |X|^2 / (sum(window) / 2)^2 (a sine of amplitude 1 at a bin
  centre has power 1 in that bin: 0 dB), mel-projected, then natural log: log(mel_power + floor + log_eps). The
  floor is relative to the window: `floor_db` below its loudest mel bin (over all bands and frames), so detail
  further down than a crowd, a room or a phone's noise leaves audible weighs nothing, whatever the playback level;
  log_eps is an absolute floor in those units (1e-10 is -100 dB re full scale), the only one when floor_db is None
  (models trained before the relative floor).
- Precision: float32 throughout. A float32 FFT's rounding (~1e-7 of the frame's largest bin magnitude, about
  -140 dB) sits far under a relative floor of 80 dB, so it moves the log by < 1e-4; without a relative floor,
  bands more than ~55 dB below the frame's loudest carry log errors above that (as they would in ONNX too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class FrontendConfig:
    """Every knob of the log-mel frontend (no defaults: values come from params.yaml or the caller).

    sr: sample rate of the audio (Hz); n_fft: STFT frame and window length (samples); hop: STFT hop (samples);
    n_mels: mel bands; fmin_hz..fmax_hz: band covered by the filters; log_eps: added to mel power before the log
    (power re a full-scale sine, see the module docstring: 1e-10 is -100 dB); floor_db: the relative log floor,
    this many dB below the window's loudest mel bin (None: none, as in models trained before it existed).
    """

    sr: int
    n_fft: int
    hop: int
    n_mels: int
    fmin_hz: float
    fmax_hz: float
    log_eps: float
    floor_db: float | None

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_fft < 2 or self.hop < 1 or self.n_mels < 1:
            raise ValueError(f"FrontendConfig: need sr > 0, n_fft >= 2, hop >= 1, n_mels >= 1; got {self}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sr / 2:
            raise ValueError(f"FrontendConfig: need 0 <= fmin_hz < fmax_hz <= sr/2, got "
                             f"{self.fmin_hz}..{self.fmax_hz} Hz at sr={self.sr}")
        if self.log_eps <= 0:
            raise ValueError(f"FrontendConfig.log_eps: must be > 0, got {self.log_eps}")
        if self.floor_db is not None and not self.floor_db > 0:
            raise ValueError(f"FrontendConfig.floor_db: must be > 0 dB (or null), got {self.floor_db}")

    def n_frames(self, n_samples: int) -> int:
        """Frames LogMel makes from `n_samples` samples (center=False); ValueError if fewer than n_fft samples."""
        if n_samples < self.n_fft:
            raise ValueError(f"{n_samples} samples is shorter than one STFT frame (n_fft={self.n_fft})")
        return 1 + (n_samples - self.n_fft) // self.hop


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f_hz / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel` (Hz)."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular HTK-mel filters, peak-normalised, as a (n_mels, n_fft // 2 + 1) float32 matrix.

    Filter m rises linearly from edge m to its centre m + 1 (weight 1) and falls to edge m + 2, where the
    n_mels + 2 edges are equally spaced in mel from fmin_hz to fmax_hz. Bin b is at b * sr / n_fft Hz; bins at or
    outside fmin_hz..fmax_hz get weight 0. Raises ValueError if a filter falls between FFT bins (all zero): then
    n_mels is too high for this n_fft at the low end of the band (raise n_fft or fmin_hz, or lower n_mels).
    """
    if not 0 <= fmin_hz < fmax_hz <= sr / 2:
        raise ValueError(f"mel_filterbank: need 0 <= fmin_hz < fmax_hz <= sr/2, got {fmin_hz}..{fmax_hz} at sr={sr}")
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"mel_filterbank: need n_mels >= 1 and n_fft >= 2, got {n_mels}, {n_fft}")
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2))
    edges_hz[0], edges_hz[-1] = fmin_hz, fmax_hz  # exact ends: no rounding leaks weight onto fmax_hz itself
    bins_hz = np.arange(n_fft // 2 + 1) * sr / n_fft
    lo, centre, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lo) / (centre - lo)
    falling = (hi - bins_hz[None, :]) / (hi - centre)
    fb = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(fb.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"mel_filterbank: filter(s) {empty.tolist()} catch no FFT bin (bin spacing "
                         f"{sr / n_fft:.1f} Hz); raise n_fft or fmin_hz, or lower n_mels={n_mels}")
    return fb.astype(np.float32)


class LogMel(nn.Module):
    """(batch, n_samples) float audio at cfg.sr -> (batch, n_mels, n_frames) float32 natural-log mel power.

    n_frames = cfg.n_frames(n_samples). The filterbank (`mel_fb`, (n_mels, n_fft // 2 + 1)) and the Hann window
    (`window`, (n_fft,)) are buffers: they follow .to(device) and are saved in the state dict with the weights.
    """

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        fb = mel_filterbank(cfg.sr, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
        self.register_buffer("mel_fb", torch.from_numpy(fb))
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True, dtype=torch.float32))
        self.power_scale = float((2.0 / self.window.sum()) ** 2)  # |X|^2 -> power re a full-scale sine
        self.floor_ratio = None if cfg.floor_db is None else float(10.0 ** (-cfg.floor_db / 10.0))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim != 2:
            raise ValueError(f"LogMel: expected (batch, n_samples) audio, got shape {tuple(audio.shape)}")
        self.cfg.n_frames(audio.shape[1])  # raises when shorter than one frame
        spec = torch.stft(audio.float(), n_fft=self.cfg.n_fft, hop_length=self.cfg.hop, win_length=self.cfg.n_fft,
                          window=self.window, center=False, return_complex=True)  # (batch, bins, n_frames)
        power = (spec.real.square() + spec.imag.square()) * self.power_scale
        mel = torch.matmul(self.mel_fb, power)  # (batch, n_mels, n_frames)
        if self.floor_ratio is None:
            return torch.log(mel + self.cfg.log_eps)
        return torch.log(mel + (mel.amax(dim=(1, 2), keepdim=True) * self.floor_ratio + self.cfg.log_eps))


def window_samples(sr: int, seconds: float, what: str) -> int:
    """`seconds` at `sr` as a whole number of samples; ValueError if it is not whole (or not positive)."""
    n = seconds * sr
    if n < 1 or abs(n - round(n)) > 1e-6:
        raise ValueError(f"{what}={seconds} s at sr={sr} is {n} samples: need a whole number >= 1")
    return int(round(n))


def windows(audio: np.ndarray, sr: int, window_s: float, hop_s: float) -> np.ndarray:
    """Slice 1-D audio into overlapping windows: (n_windows, window_samples), the same path for every use.

    Window i covers samples [i * hop, i * hop + window) with window = window_s * sr and hop = hop_s * sr (both must
    be whole numbers of samples); n_windows = 1 + (n_samples - window) // hop, the last partial window is dropped.
    Returns a READ-ONLY strided view of `audio` (no copy, same dtype): copy a batch of it before writing to it or
    handing it to torch.from_numpy. ValueError when `audio` is not 1-D or is shorter than one window.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"windows: expected 1-D audio, got shape {audio.shape}")
    win = window_samples(sr, window_s, "window_s")
    hop = window_samples(sr, hop_s, "hop_s")
    if audio.shape[0] < win:
        raise ValueError(f"windows: audio is {audio.shape[0] / sr:.3f} s ({audio.shape[0]} samples), shorter than "
                         f"one {window_s} s window ({win} samples at sr={sr})")
    return np.lib.stride_tricks.sliding_window_view(audio, win)[::hop]

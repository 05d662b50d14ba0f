"""Mixing primitives: levels, exact-SNR mixing, looping, fades, bleed from another stage; input checks.

Audio arrays are 1-D, shape (n_samples,), float, nominally in [-1, 1]; outputs are float32.
Levels are in dB re full scale 1.0 computed from the mean power (`rms_db` of a full-scale sine is -3.01).
The `check_*` helpers are shared by the other `resonance.simulate` modules.
"""

from __future__ import annotations

import math

import numpy as np


def check_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Validate 1-D, non-empty, finite audio (n_samples,); return it as a float64 array (a copy if cast).

    Raises ValueError naming `name` for a wrong number of dimensions, an empty array or NaN/inf samples.
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array (n_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: empty array (0 samples)")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or infinite samples")
    return x


def check_sr(sr: int) -> int:
    """Validate a sample rate in Hz (a positive integer) and return it as int."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr: expected a positive integer sample rate in Hz, got {sr!r}")
    return int(sr)


def check_range(value: tuple[float, float], name: str, low: float = -math.inf) -> tuple[float, float]:
    """Validate a (lo, hi) sampling range: two finite numbers with low <= lo <= hi; return it as floats."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (lo, hi) pair of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < low:
        raise ValueError(f"{name}: need finite {low} <= lo <= hi, got {value!r}")
    return lo, hi


def check_positive(value: float, name: str) -> float:
    """Validate a finite, strictly positive number (a time, a frequency, a ratio)."""
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def check_finite(value: float, name: str) -> float:
    """Validate a finite number (a gain or level in dB)."""
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def rms_db(audio: np.ndarray) -> float:
    """Mean-power level of `audio` (n_samples,) in dB re full scale 1.0; -inf for digital silence."""
    x = check_audio(audio)
    power = float(np.mean(x * x))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def loop_to_length(audio: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Repeat (or cut) `audio` (n_samples,) circularly to exactly `n` samples, float32 shape (n,).

    Without `rng` the result starts at sample 0; with it, at a uniformly drawn offset. Seams are
    not cross-faded (crowd beds are noise-like; a seam is inaudible after mixing).
    """
    x = check_audio(audio)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n: expected a non-negative integer length, got {n!r}")
    offset = int(rng.integers(x.size)) if rng is not None else 0
    return x[(offset + np.arange(n)) % x.size].astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float,
               rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Add `noise` to `signal` (both (n_samples,)) so the signal-to-noise ratio is exactly `snr_db`.

    The noise is looped/cut to the signal's length (`loop_to_length`, random offset if `rng`), then
    scaled; the signal is untouched. Returns (mixture, scaled_noise), float32, shape of `signal`.
    Raises ValueError if the noise or the signal is silent (the SNR would be undefined).
    """
    s = check_audio(signal, "signal")
    snr_db = check_finite(snr_db, "snr_db")
    n = loop_to_length(check_audio(noise, "noise"), s.size, rng).astype(np.float64)
    p_signal, p_noise = float(np.mean(s * s)), float(np.mean(n * n))
    if p_noise == 0.0:
        raise ValueError("noise: silent (all zeros over the signal's length); cannot set an SNR")
    if p_signal == 0.0:
        raise ValueError("signal: silent (all zeros); the SNR is undefined")
    scaled = n * math.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (s + scaled).astype(np.float32), scaled.astype(np.float32)


def fade(audio: np.ndarray, sr: int, fade_in_s: float, fade_out_s: float) -> np.ndarray:
    """Raised-cosine fade-in over the first `fade_in_s` and fade-out over the last `fade_out_s` seconds.

    `audio` (n_samples,) -> float32 (n_samples,). Zero lengths mean no fade; the two fades must fit.
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    n_in, n_out = (int(round(check_finite(s, name) * sr)) for s, name in
                   ((fade_in_s, "fade_in_s"), (fade_out_s, "fade_out_s")))
    if n_in < 0 or n_out < 0 or n_in + n_out > x.size:
        raise ValueError(f"fade: lengths {fade_in_s} s + {fade_out_s} s must be >= 0 and fit "
                         f"in {x.size / sr:.3f} s of audio")
    y = x.copy()
    if n_in:
        y[:n_in] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n_in) / n_in)
    if n_out:
        y[x.size - n_out:] *= 0.5 + 0.5 * np.cos(np.pi * (np.arange(n_out) + 1) / n_out)
    return y.astype(np.float32)


def bleed(audio: np.ndarray, other: np.ndarray, level_db: float,
          rng: np.random.Generator | None = None) -> np.ndarray:
    """Add `other` (e.g. another stage's music, (m_samples,)) at `level_db` relative to `audio`'s level.

    `other` is looped/cut to the length of `audio` (random offset if `rng`); pass it through
    `room.apply_room` first for a distant, reverberant stage. Returns float32 (n_samples,).
    """
    mixture, _ = mix_at_snr(audio, other, -check_finite(level_db, "level_db"), rng)
    return mixture

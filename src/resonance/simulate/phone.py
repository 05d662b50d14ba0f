"""The phone: automatic gain control, mic/preamp saturation or clipping, band limiting, optional codec.

Audio is 1-D, shape (n_samples,), at `sr` Hz; outputs are float32 of the same shape. Levels are dB re
full scale 1.0 (`agc_target_dbfs` is a mean-power level: a full-scale sine is -3 dBFS).
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import signal

from resonance.simulate.mix import (
    check_audio,
    check_finite,
    check_positive,
    check_range,
    check_sr,
)

CLIP_MODES = ("none", "soft", "hard", "both")
FULL_SCALE = 1.0  # the converter's limit: nothing a phone stores exceeds it
CODEC_CONTAINERS = {"libopus": "ogg", "libvorbis": "ogg", "libmp3lame": "mp3", "aac": "adts"}


@dataclass(frozen=True)
class PhoneSpec:
    """One phone's recording chain.

    AGC: target level (dBFS), smoothing time (s), maximum gain (dB). Band: `low_hz`..`high_hz`.
    Clipping: `drive_db` of gain into the nonlinearity, tanh saturation towards `soft_level`, hard clip at
    `hard_level` (linear, re full scale); `clip_mode` is one of CLIP_MODES.
    """

    agc_target_dbfs: float
    agc_time_s: float
    agc_max_gain_db: float
    low_hz: float
    high_hz: float
    drive_db: float
    soft_level: float
    hard_level: float
    clip_mode: str


def sample_phone(rng: np.random.Generator, agc_target_dbfs: tuple[float, float],
                 agc_time_s: tuple[float, float], agc_max_gain_db: tuple[float, float],
                 low_hz: tuple[float, float], high_hz: tuple[float, float], drive_db: tuple[float, float],
                 soft_level: tuple[float, float], hard_level: tuple[float, float],
                 clip_mode_probs: Mapping[str, float]) -> PhoneSpec:
    """Draw a PhoneSpec: every number uniform in its (lo, hi) range, the clip mode from `clip_mode_probs`.

    `clip_mode_probs` maps modes of CLIP_MODES to weights (normalised here; at least one > 0).
    """
    ranges = {"agc_target_dbfs": check_range(agc_target_dbfs, "agc_target_dbfs"),
              "agc_time_s": check_range(agc_time_s, "agc_time_s", low=1e-9),
              "agc_max_gain_db": check_range(agc_max_gain_db, "agc_max_gain_db"),
              "low_hz": check_range(low_hz, "low_hz", low=1e-9),
              "high_hz": check_range(high_hz, "high_hz", low=1e-9),
              "drive_db": check_range(drive_db, "drive_db"),
              "soft_level": check_range(soft_level, "soft_level", low=1e-9),
              "hard_level": check_range(hard_level, "hard_level", low=1e-9)}
    unknown = sorted(set(clip_mode_probs) - set(CLIP_MODES))
    weights = np.array([float(clip_mode_probs.get(m, 0.0)) for m in CLIP_MODES])
    if unknown or not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"clip_mode_probs: need weights >= 0 (some > 0) for modes {CLIP_MODES}, "
                         f"got {dict(clip_mode_probs)}")
    values = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()}
    mode = CLIP_MODES[int(rng.choice(len(CLIP_MODES), p=weights / weights.sum()))]
    return PhoneSpec(**values, clip_mode=mode)


def apply_agc(audio: np.ndarray, sr: int, target_dbfs: float, time_s: float, max_gain_db: float) -> np.ndarray:
    """Slow automatic gain control: bring the short-term level of `audio` (n_samples,) to `target_dbfs`.

    The power envelope is a causal one-pole average with time constant `time_s`, started at the mean
    power of the first `time_s` (as if the phone had been recording already). Gain = target / envelope,
    at most `max_gain_db` (so silence is not blown up). Returns float32 (n_samples,); may exceed 1.
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    target = 10.0 ** (check_finite(target_dbfs, "target_dbfs") / 20.0)
    max_gain = 10.0 ** (check_finite(max_gain_db, "max_gain_db") / 20.0)
    a = math.exp(-1.0 / (check_positive(time_s, "time_s") * sr))
    power = x * x
    start = float(np.mean(power[: max(1, int(time_s * sr))]))
    env, _ = signal.lfilter([1.0 - a], [1.0, -a], power, zi=[a * start])
    with np.errstate(divide="ignore"):
        gain = np.minimum(target / np.sqrt(np.maximum(env, 0.0)), max_gain)
    return (x * gain).astype(np.float32)


def band_limit(audio: np.ndarray, sr: int, low_hz: float, high_hz: float, order: int = 4) -> np.ndarray:
    """Causal Butterworth band-pass `low_hz`..`high_hz` (mic roll-off, codec band) of `audio` (n_samples,).

    If `high_hz` >= sr/2 only the high-pass is applied. `order` is per edge. Returns float32 (n_samples,).
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    low, high = check_positive(low_hz, "low_hz"), check_positive(high_hz, "high_hz")
    if not low < min(high, sr / 2):
        raise ValueError(f"band_limit: need low_hz ({low}) < high_hz ({high}) and < sr/2 ({sr / 2})")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order: expected a positive integer, got {order!r}")
    if high >= sr / 2:
        sos = signal.butter(order, low, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, [low, high], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x).astype(np.float32)


def saturate(audio: np.ndarray, drive_db: float, level: float) -> np.ndarray:
    """Soft clip: level * tanh(10**(drive_db/20) * x / level); (n_samples,) -> float32, |out| < level."""
    x = check_audio(audio)
    level = check_positive(level, "level")
    drive = 10.0 ** (check_finite(drive_db, "drive_db") / 20.0)
    return (level * np.tanh(drive * x / level)).astype(np.float32)


def hard_clip(audio: np.ndarray, level: float) -> np.ndarray:
    """Hard clip `audio` (n_samples,) to [-level, level] (linear, re full scale); float32 out."""
    x = check_audio(audio)
    level = check_positive(level, "level")
    return np.clip(x, -level, level).astype(np.float32)


def apply_phone(audio: np.ndarray, sr: int, spec: PhoneSpec) -> np.ndarray:
    """The phone chain on `audio` (n_samples,): AGC -> drive + clipping (spec.clip_mode) -> band limit.

    The AGC comes first so that `drive_db` and the clip levels are relative to a known level; the band
    limit comes after the nonlinearity (the codec's band also removes clipping harmonics above it).
    The result is clipped to full scale (+-1), like any stored recording. float32 (n_samples,).
    """
    if spec.clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode: {spec.clip_mode!r} is not one of {CLIP_MODES}")
    y = apply_agc(audio, sr, spec.agc_target_dbfs, spec.agc_time_s, spec.agc_max_gain_db)
    if spec.clip_mode in ("soft", "both"):
        y = saturate(y, spec.drive_db, spec.soft_level)
    if spec.clip_mode == "hard":
        y = hard_clip(y * np.float32(10.0 ** (check_finite(spec.drive_db, "drive_db") / 20.0)), spec.hard_level)
    if spec.clip_mode == "both":
        y = hard_clip(y, spec.hard_level)
    y = band_limit(y, sr, spec.low_hz, spec.high_hz)
    return np.clip(y, -FULL_SCALE, FULL_SCALE)


def codec_roundtrip(audio: np.ndarray, sr: int, codec: str = "libopus", bitrate_k: int = 32,
                    timeout_s: float = 60.0) -> np.ndarray:
    """Encode `audio` (n_samples,) with ffmpeg's `codec` at `bitrate_k` kbit/s and decode it back at `sr`.

    Optional stage (needs ffmpeg with that encoder; Opus takes sr in 8/12/16/24/48 kHz). The decoded
    signal is cut or zero-padded at the end to the input length; an encoder delay that the container
    does not signal (MP3 through a pipe) stays in. float32 (n_samples,). Raises RuntimeError on failure.
    """
    from resonance.audio import require_tool

    x = check_audio(audio).astype("<f4")
    sr = check_sr(sr)
    if codec not in CODEC_CONTAINERS:
        raise ValueError(f"codec: {codec!r} unknown; known: {sorted(CODEC_CONTAINERS)}")
    ffmpeg = require_tool("ffmpeg")
    raw = ["-f", "f32le", "-ar", str(sr), "-ac", "1"]
    encode = [ffmpeg, "-nostdin", "-v", "error", *raw, "-i", "pipe:0", "-c:a", codec,
              "-b:a", f"{int(bitrate_k)}k", "-f", CODEC_CONTAINERS[codec], "pipe:1"]
    decode = [ffmpeg, "-nostdin", "-v", "error", "-i", "pipe:0", *raw, "pipe:1"]
    data = x.tobytes()
    for cmd in (encode, decode):
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode(errors="replace")[-300:]
            raise RuntimeError(f"ffmpeg {codec} round trip failed: {err}")
        data = proc.stdout
    y = np.frombuffer(data, dtype="<f4")[: x.size]
    return np.pad(y, (0, x.size - y.size)).astype(np.float32)

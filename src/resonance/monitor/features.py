"""Per-clip features of a recording: level, clipping, a blind SNR and reverberation estimate, spectral shape,
and how the recognizer answered. Pure numpy on mono float32 audio (n_samples,) at `sr` Hz.

- rms_dbfs: whole-clip RMS; peak_dbfs: largest |x|; loudness_dbfs: gated RMS (BS.1770's absolute -70 dBFS and
  relative -10 dB gates on 400 ms blocks, without its K filter);
- clipping_fraction: share of samples with |x| >= clip_level; silence_fraction: share of frames below -60 dBFS;
- snr_est_db: blind estimate: the loudest decile of frame powers against the quietest (the noise floor),
  10 log10((P90 - P10) / P10);
- spectral_centroid_hz, spectral_bandwidth_hz: power-weighted mean frequency and spread (512-point STFT),
  averaged over non-silent frames weighted by their power;
- rt60_est_s: blind decay estimate: the steepest free decays of the 10 ms energy envelope extrapolated to
  60 dB (see `rt60_estimate`); crude (a note's own decay counts too) but it grows with the room's reverb;
- confidence, margin, accepted: the recognizer's calibrated confidence, the best candidate's lead over the best
  other track (0 without a candidate), and whether the answer was accepted (1/0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SILENT_FRAME_DBFS = -60.0
FLOOR = 1e-12


def _frame_power(audio: np.ndarray, n: int, hop: int) -> np.ndarray:
    """Mean power of frames of n samples every hop samples, (n_frames,)."""
    if audio.size < n:
        audio = np.pad(audio, (0, n - audio.size))
    count = 1 + (audio.size - n) // hop
    idx = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    return np.mean(np.square(audio[idx], dtype=np.float64), axis=1)


def db(power: np.ndarray | float) -> np.ndarray | float:
    return 10.0 * np.log10(np.maximum(power, FLOOR))


def gated_loudness(audio: np.ndarray, sr: int) -> float:
    """Gated RMS level in dBFS (400 ms blocks, 75% overlap; absolute gate -70, relative gate -10 dB)."""
    power = _frame_power(audio, int(0.4 * sr), int(0.1 * sr))
    kept = power[db(power) > -70.0]
    if kept.size == 0:
        return float(db(np.mean(power)))
    kept = kept[db(kept) > db(np.mean(kept)) - 10.0]
    return float(db(np.mean(kept)))


def snr_estimate(frame_power: np.ndarray) -> float:
    """10 log10((P90 - P10) / P10) over frame powers (dB), 0 when the clip has no dynamic range."""
    lo, hi = np.percentile(frame_power, [10, 90])
    return float(db(max(hi - lo, FLOOR) / max(lo, FLOOR)))


def spectral_shape(audio: np.ndarray, sr: int, n_fft: int = 512) -> tuple[float, float]:
    """(centroid_hz, bandwidth_hz) of the power spectrum, averaged over non-silent frames weighted by power."""
    hop = n_fft // 2
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    count = 1 + (audio.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(n_fft), axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    total = spec.sum(axis=1)
    keep = db(total / n_fft) > SILENT_FRAME_DBFS
    if not keep.any():
        return 0.0, 0.0
    spec, total = spec[keep], total[keep]
    centroid = (spec @ freqs) / total
    spread = np.sqrt(np.maximum((spec @ freqs ** 2) / total - centroid ** 2, 0.0))
    w = total / total.sum()
    return float(w @ centroid), float(w @ spread)


def rt60_estimate(audio: np.ndarray, sr: int) -> float:
    """Blind reverberation time in s (module docstring): free decays of the 10 ms energy envelope (smoothed over
    50 ms) that fall for at least 100 ms and 10 dB, a line fitted to each; the 10th percentile of their slopes
    (the steepest the room lets through) extrapolated to 60 dB, clamped to [0.05, 10]. No free decay at all (a
    stationary signal): 10."""
    frame = max(1, int(0.01 * sr))
    env = db(_frame_power(audio, frame, frame))
    if env.size < 10:
        return 0.05
    env = np.convolve(env, np.ones(5) / 5, mode="same")
    rises = np.diff(env) >= 0.3  # a decay may wobble by less than 0.3 dB per frame
    slopes, i, n = [], 0, env.size - 1
    while i < n:
        j = i
        while j < n and not rises[j]:
            j += 1
        seg = env[i:j + 1]
        if seg.size >= 10 and seg.max() > SILENT_FRAME_DBFS:
            seg = seg[:int(np.argmin(seg)) + 1]
            if seg.size >= 10 and seg[0] - seg[-1] >= 10.0:
                slopes.append(np.polyfit(np.arange(seg.size) * 0.01, seg, 1)[0])
        i = j + 1
    if not slopes:
        return 10.0
    return float(np.clip(60.0 / -min(-1e-6, float(np.percentile(slopes, 10))), 0.05, 10.0))


def signal_features(audio: np.ndarray, sr: int, frame_s: float, clip_level: float) -> dict[str, float]:
    """The signal features of the module docstring for one clip (mono float32 (n,), sr Hz)."""
    audio = np.asarray(audio, dtype=np.float32)
    frames = _frame_power(audio, max(1, int(frame_s * sr)), max(1, int(frame_s * sr)))
    centroid, bandwidth = spectral_shape(audio, sr)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return {"duration_s": round(audio.size / sr, 3),
            "rms_dbfs": float(db(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else -120.0,
            "loudness_dbfs": gated_loudness(audio, sr), "peak_dbfs": float(db(peak ** 2)),
            "clipping_fraction": float(np.mean(np.abs(audio) >= clip_level)) if audio.size else 0.0,
            "silence_fraction": float(np.mean(db(frames) < SILENT_FRAME_DBFS)),
            "snr_est_db": snr_estimate(frames), "spectral_centroid_hz": centroid,
            "spectral_bandwidth_hz": bandwidth, "rt60_est_s": rt60_estimate(audio, sr)}


def recognition_features(match: Any) -> dict[str, float]:
    """confidence, margin and accepted (1/0) of a resonance.index.method.Match."""
    margin = getattr(match.result, "margin", None)
    margin = float(margin) if margin is not None and np.isfinite(margin) else 0.0
    return {"confidence": float(match.confidence), "margin": margin, "accepted": int(bool(match.accepted))}

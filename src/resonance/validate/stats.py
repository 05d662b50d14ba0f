"""Per-track audio statistics that tell healthy music from broken files (pure numpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resonance.audio import AudioError, pcm_sha256

EPS = 1e-12


def audio_stats(audio: np.ndarray, sr: int, frame_ms: float, silence_threshold_db: float,
                clip_level: float) -> dict[str, float]:
    """Statistics of mono audio (n_samples,) at `sr` Hz.

    Returns rms_dbfs and peak_dbfs (dB re full scale), silence_fraction (share of `frame_ms` frames whose
    RMS is below `silence_threshold_db`), clipping_fraction (share of samples with |x| >= `clip_level`),
    nonfinite (count of NaN/inf samples) and duration_s.
    """
    finite = np.isfinite(audio)
    x = np.where(finite, audio, 0.0).astype(np.float64)
    frame = max(1, int(sr * frame_ms / 1000))
    n_frames = max(1, x.size // frame)
    frames = x[: n_frames * frame].reshape(n_frames, -1) if x.size >= frame else x.reshape(1, -1)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + EPS)
    return {
        "duration_s": x.size / sr,
        "rms_dbfs": float(10 * np.log10(np.mean(x**2) + EPS)) if x.size else -120.0,
        "peak_dbfs": float(20 * np.log10(np.max(np.abs(x)) + EPS)) if x.size else -120.0,
        "silence_fraction": float(np.mean(frame_db < silence_threshold_db)),
        "clipping_fraction": float(np.mean(np.abs(x) >= clip_level)) if x.size else 0.0,
        "nonfinite": int(x.size - np.count_nonzero(finite)),
    }


def file_stats(path: Path, expected_sha256: str, frame_ms: float, silence_threshold_db: float,
               clip_level: float) -> dict[str, object]:
    """Read one catalog FLAC and return its stats, sample rate, and whether its PCM hash matches."""
    import soundfile as sf

    try:
        pcm, sr = sf.read(str(path), dtype="int16", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for broken files
        raise AudioError(f"{path}: unreadable: {exc}") from None
    mono = pcm[:, 0] if pcm.shape[1] == 1 else pcm.mean(axis=1).astype(np.int16)
    audio = mono.astype(np.float32) / 32767.0
    out: dict[str, object] = dict(audio_stats(audio, sr, frame_ms, silence_threshold_db, clip_level))
    out.update(sample_rate=int(sr), channels=int(pcm.shape[1]), sha256_match=pcm_sha256(mono) == expected_sha256)
    return out

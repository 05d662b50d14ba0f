"""Audio in and out: decode anything ffmpeg reads to mono float32 at a fixed rate; write and read FLAC.

Arrays are 1-D float32 in [-1, 1], shape (n_samples,), at sample rate `sr` (Hz).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from resonance.errors import ResonanceError
from resonance.io import atomic_path

FLAC_SUBTYPE = "PCM_16"


class AudioError(ResonanceError, RuntimeError):
    """Audio that cannot be decoded or does not meet the requirements (empty, corrupt, silent...)."""


def require_tool(name: str) -> str:
    """Path of a system tool, or an AudioError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pkg = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "fpcalc": "libchromaprint-tools"}.get(name, name)
        raise AudioError(f"`{name}` not found: run `make setup` (as root) or `apt-get install {pkg}`")
    return path


def decode(path: str | Path, sr: int, timeout_s: float = 120.0) -> np.ndarray:
    """Decode any file ffmpeg reads (Vorbis, Opus, MP3, tracker modules...) to mono float32 at `sr` Hz.

    Returns shape (n_samples,). Raises AudioError for an empty, corrupt or undecodable file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    cmd = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
           "-ac", "1", "-ar", str(sr), "-f", "f32le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"decode timed out after {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError("undecodable: " + (msg[-1] if msg else f"ffmpeg exit {proc.returncode}"))
    audio = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if audio.size == 0:
        raise AudioError("no audio samples decoded")
    if not np.all(np.isfinite(audio)):
        raise AudioError("decoded audio has non-finite samples")
    return audio


def probe_tags(path: str | Path, timeout_s: float = 30.0) -> dict[str, str]:
    """Container/stream tags (lower-case keys, e.g. `title`, `artist`) via ffprobe; {} if none."""
    cmd = [require_tool("ffprobe"), "-v", "error", "-show_entries",
           "format_tags:stream_tags", "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        info = json.loads(proc.stdout or b"{}")
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return {}
    tags: dict[str, str] = {}
    for block in [*info.get("streams", []), info.get("format", {})]:
        for key, value in (block.get("tags") or {}).items():
            tags.setdefault(key.lower(), str(value).strip())
    return tags


def trim_silence(audio: np.ndarray, sr: int, silence_db: float, frame_s: float = 0.05) -> tuple[np.ndarray, float]:
    """Cut leading and trailing frames whose RMS is below `silence_db` (dBFS).

    Returns (trimmed audio (m,), start_s: seconds cut from the start). All-silent audio gives an empty array.
    """
    frame = max(1, int(sr * frame_s))
    n = audio.size // frame
    if n == 0:
        return audio[:0], 0.0
    rms_db = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(rms_db >= silence_db)
    if loud.size == 0:
        return audio[:0], 0.0
    start, stop = loud[0] * frame, audio.size if loud[-1] == n - 1 else (loud[-1] + 1) * frame
    return audio[start:stop], start / sr


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Quantize float audio (n_samples,) to int16 exactly as it is stored in FLAC."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def pcm_sha256(pcm16: np.ndarray) -> str:
    """sha256 of the decoded 16-bit little-endian PCM: equal for equal audio, whatever the source format."""
    return hashlib.sha256(pcm16.astype("<i2").tobytes()).hexdigest()


def write_flac(target: str | Path, pcm16: np.ndarray, sr: int) -> None:
    """Write int16 samples (n_samples,) as mono 16-bit FLAC, atomically."""
    import soundfile as sf

    with atomic_path(target) as tmp:
        sf.write(str(tmp), pcm16, sr, format="FLAC", subtype=FLAC_SUBTYPE)


def read_audio(path: str | Path, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file with libsndfile as mono float32 (n_samples,); returns (audio, sr).

    Multi-channel audio is averaged to mono. If `sr` is given and differs from the file's rate,
    raises AudioError (resampling belongs to `decode`, not to a silent reader).
    """
    import soundfile as sf

    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: unreadable audio: {exc}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio")
    if sr is not None and file_sr != sr:
        raise AudioError(f"{path}: sample rate {file_sr} Hz, expected {sr} Hz")
    return data.mean(axis=1).astype(np.float32), int(file_sr)

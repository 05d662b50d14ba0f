"""Duplicate songs: exact (same decoded PCM hash) and near (same Chromaprint fingerprint, re-encoded/renamed).

Both return {dropped_id: kept_id}; the kept one is the first in the order given (callers sort by id).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resonance.io import atomic_path

MAX_SHIFT = 8  # fingerprint items (~0.12 s each) of misalignment tolerated between two copies


def exact_duplicates(ids: Sequence[str], hashes: Sequence[str]) -> dict[str, str]:
    """Map each id whose audio hash was already seen to the first id with that hash."""
    first: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for tid, h in zip(ids, hashes):
        if h in first:
            dropped[tid] = first[h]
        else:
            first[h] = tid
    return dropped


def fingerprint(path: str | Path, length_s: int = 120, timeout_s: float = 60.0) -> np.ndarray | None:
    """Raw Chromaprint fingerprint (uint32 array, ~8 items/s) via `fpcalc -raw`; None when fpcalc fails."""
    fpcalc = shutil.which("fpcalc")
    if fpcalc is None:
        return None
    try:
        proc = subprocess.run([fpcalc, "-raw", "-length", str(length_s), str(path)],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    # fpcalc may exit non-zero after printing a complete fingerprint (e.g. "Error decoding audio frame (End of
    # file)" on a file shorter than -length): a printed fingerprint is used, a missing one means "none".
    for line in proc.stdout.splitlines():
        if line.startswith("FINGERPRINT="):
            values = [int(v) for v in line.split("=", 1)[1].split(",") if v]
            return np.array(values, dtype=np.int64).astype(np.uint32) if values else None
    return None


def bit_error_rate(a: np.ndarray, b: np.ndarray, max_shift: int = MAX_SHIFT) -> float:
    """Lowest fraction of differing bits between two fingerprints over shifts of up to `max_shift` items."""
    best = 1.0
    for shift in range(-max_shift, max_shift + 1):
        x, y = (a[shift:], b) if shift >= 0 else (a, b[-shift:])
        n = min(len(x), len(y))
        if n < 16:
            continue
        diff = np.bitwise_xor(x[:n], y[:n])
        bits = np.unpackbits(diff.view(np.uint8)).sum()
        best = min(best, float(bits) / (32 * n))
    return best


def near_duplicates(ids: Sequence[str], durations_s: Sequence[float], prints: Sequence[np.ndarray | None],
                    max_ber: float, max_duration_ratio: float = 1.05) -> dict[str, str]:
    """Map ids whose fingerprint is within `max_ber` of an earlier (kept) track of similar duration."""
    dropped: dict[str, str] = {}
    kept: list[int] = []
    for i, tid in enumerate(ids):
        fp = prints[i]
        match = None
        if fp is not None:
            for j in kept:
                other = prints[j]
                ratio = max(durations_s[i], durations_s[j]) / max(min(durations_s[i], durations_s[j]), 1e-9)
                if other is not None and ratio <= max_duration_ratio and bit_error_rate(fp, other) <= max_ber:
                    match = ids[j]
                    break
        if match is None:
            kept.append(i)
        else:
            dropped[tid] = match
    return dropped


@dataclass(frozen=True)
class Reference:
    """Tracks of another catalog that a new one must not repeat: parallel lists, one entry per track."""

    ids: list[str] = field(default_factory=list)
    durations_s: list[float] = field(default_factory=list)
    sha256s: list[str] = field(default_factory=list)
    prints: list[np.ndarray | None] = field(default_factory=list)
    folder: Path | None = None  # the built catalog they come from (its audio: the shared-audio check)


def save_fingerprints(path: str | Path, prints: Mapping[str, np.ndarray | None]) -> None:
    """Write {track_id: uint32 fingerprint} as .npz, atomically (tracks without a fingerprint are left out)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: v for k, v in prints.items() if v is not None})


def load_reference(catalog_dir: str | Path) -> Reference:
    """A built catalog's ids, durations, hashes and fingerprints, to exclude its songs from another build."""
    from resonance.catalog.manifest import load_manifest

    tracks = load_manifest(catalog_dir)
    fp_path = Path(catalog_dir) / "fingerprints.npz"
    prints: dict[str, np.ndarray] = dict(np.load(fp_path)) if fp_path.is_file() else {}
    return Reference([t.track_id for t in tracks], [t.duration_s for t in tracks], [t.sha256 for t in tracks],
                     [prints.get(t.track_id) for t in tracks], Path(catalog_dir))

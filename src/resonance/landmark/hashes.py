"""Peak pairs -> landmark hashes: (f1 anchor bin, df = f2 - f1 bins, dt = t2 - t1 frames) packed in a uint32.

Bit layout (most significant first; HASH_BITS = 25 of the 32 are used):

    | f1: F1_BITS (unsigned) | df + DF_OFFSET: DF_BITS (offset binary) | dt: DT_BITS (unsigned) |

`pack_hash` and `unpack_hash` are exact inverses over the full field ranges. Changing any constant here changes
the meaning of every stored index: bump `index.FORMAT_VERSION` with it.
"""

from __future__ import annotations

import numpy as np

from resonance.landmark.peaks import (
    CHUNK_ELEMENTS,
    LandmarkConfig,
    find_peaks,
    spectrogram_db,
)

F1_BITS = 9  # anchor frequency bin: 0..511 (n_fft up to 1022 over the full band)
DF_BITS = 8  # target - anchor frequency, bins: -128..127
DT_BITS = 8  # target - anchor time, frames: 0..255
HASH_BITS = F1_BITS + DF_BITS + DT_BITS

DT_SHIFT = 0
DF_SHIFT = DT_SHIFT + DT_BITS
F1_SHIFT = DF_SHIFT + DF_BITS

F1_MAX = (1 << F1_BITS) - 1
DF_OFFSET = 1 << (DF_BITS - 1)
DF_MIN, DF_MAX = -DF_OFFSET, DF_OFFSET - 1
DT_MAX = (1 << DT_BITS) - 1


def _int_field(values: np.ndarray | int, name: str, lo: int, hi: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr[(arr < lo) | (arr > hi)][0]
        raise ValueError(f"{name}: {bad} is outside the hash field range [{lo}, {hi}]")
    return arr


def pack_hash(f1: np.ndarray | int, df: np.ndarray | int, dt: np.ndarray | int) -> np.ndarray:
    """Pack integer fields (broadcastable arrays, bins/bins/frames) into uint32 hashes of the same shape.

    ValueError if a value is outside its field: f1 in [0, F1_MAX], df in [DF_MIN, DF_MAX], dt in [0, DT_MAX].
    """
    f1a = _int_field(f1, "f1", 0, F1_MAX)
    dfa = _int_field(df, "df", DF_MIN, DF_MAX)
    dta = _int_field(dt, "dt", 0, DT_MAX)
    packed = (f1a << F1_SHIFT) | ((dfa + DF_OFFSET) << DF_SHIFT) | (dta << DT_SHIFT)
    return packed.astype(np.uint32)


def unpack_hash(hashes: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `pack_hash`: uint32 hashes (any shape) -> (f1, df, dt) int32 arrays of that shape.

    ValueError if a value is negative or uses bits above HASH_BITS (not a hash of this layout).
    """
    h = _int_field(hashes, "hash", 0, (1 << HASH_BITS) - 1)
    f1 = (h >> F1_SHIFT) & F1_MAX
    df = ((h >> DF_SHIFT) & ((1 << DF_BITS) - 1)) - DF_OFFSET
    dt = (h >> DT_SHIFT) & DT_MAX
    return f1.astype(np.int32), df.astype(np.int32), dt.astype(np.int32)


def check_layout(config: LandmarkConfig) -> None:
    """ValueError if hashes made with `config` could overflow a field of the bit layout."""
    _, band_hi = config.band_bins()
    if band_hi - 1 > F1_MAX:
        raise ValueError(f"fmax_hz={config.fmax_hz} reaches bin {band_hi - 1}; the f1 field holds 0..{F1_MAX}")
    if config.df_max_bins > DF_MAX:
        raise ValueError(f"df_max_bins={config.df_max_bins}: the df field holds at most {DF_MAX}")
    if config.dt_max_frames > DT_MAX:
        raise ValueError(f"dt_max_frames={config.dt_max_frames}: the dt field holds at most {DT_MAX}")


def pair_peaks(frames: np.ndarray, bins: np.ndarray, config: LandmarkConfig) -> tuple[np.ndarray, np.ndarray]:
    """Pair each anchor peak with up to fan_out later peaks in its target zone and hash each pair.

    frames, bins: int (n,) peak positions (STFT frames, absolute bins). The target zone is dt in
    [dt_min_frames, dt_max_frames] and |df| <= df_max_bins; the nearest targets in time are taken first.
    Returns (hashes uint32 (m,), anchor_frames int32 (m,)), ordered by anchor.
    """
    check_layout(config)
    frames, bins = np.asarray(frames), np.asarray(bins)
    if frames.ndim != 1 or frames.shape != bins.shape:
        raise ValueError(f"frames and bins must be 1-D of equal length, got {frames.shape} and {bins.shape}")
    order = np.lexsort((bins, frames))
    t, f = frames[order].astype(np.int64), bins[order].astype(np.int64)
    lo = np.searchsorted(t, t + config.dt_min_frames, side="left")
    hi = np.searchsorted(t, t + config.dt_max_frames, side="right")
    width = int((hi - lo).max()) if t.size else 0
    if width == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    parts = [_pairs_chunk(t, f, lo, hi, rows, width, config)
             for rows in _row_chunks(t.size, width)]
    f1, df, dt, t1 = (np.concatenate(p) for p in zip(*parts))
    return pack_hash(f1, df, dt), t1.astype(np.int32)


def _row_chunks(n: int, width: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // width)
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def _pairs_chunk(t: np.ndarray, f: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: slice, width: int,
                 config: LandmarkConfig) -> tuple[np.ndarray, ...]:
    """(f1, df, dt, t1) of the pairs whose anchors are `rows`: a (rows x width) candidate grid, masked."""
    idx = lo[rows, None] + np.arange(width)
    valid = idx < hi[rows, None]
    idx = np.minimum(idx, t.size - 1)
    df = f[idx] - f[rows, None]
    valid &= np.abs(df) <= config.df_max_bins
    valid &= np.cumsum(valid, axis=1) <= config.fan_out
    r, c = np.nonzero(valid)
    anchor = r + rows.start
    return f[anchor], df[r, c], t[idx[r, c]] - t[anchor], t[anchor]


def fingerprint(audio: np.ndarray, config: LandmarkConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mono audio (n_samples,) at config.sr -> (hashes uint32 (m,), anchor_frames int32 (m,))."""
    frames, bins, _ = find_peaks(spectrogram_db(audio, config), config)
    return pair_peaks(frames, bins, config)

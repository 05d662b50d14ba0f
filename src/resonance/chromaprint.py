"""Chromaprint baseline: `fpcalc -raw` fingerprints, matched by sliding bit-error rate (BER) over each reference.

A raw Chromaprint fingerprint is a uint32 array, one item per ITEM_S seconds (~8 items/s): fpcalc resamples any
input to CHROMAPRINT_SR and emits one item per ITEM_HOP samples (a 4096-sample frame, a third of it as hop), so
the item rate does not depend on the input's sample rate. Item i of an excerpt starting t seconds into a track
lines up with item round(t / ITEM_S) of the track's fingerprint.

An excerpt of L seconds yields about L / ITEM_S - 19 items (none at all below about 3 s).

Matching a query fingerprint (m,) against a reference (n,): for every alignment p (the query may hang over either
end of the reference by up to `max_overhang_items` items), BER(p) = popcount(query XOR reference[p:p+m]) / (32 *
overlap). All references are searched in one vectorized pass (laid end to end, zero-padded, m contiguous
XOR/popcount sweeps); the best (lowest-BER) alignment wins; score = 1 - BER (higher is better: ~0.5 is chance,
the best of many chance alignments ~0.6-0.7, a clean excerpt near 1).

Reference file layout (all integers little-endian):

    offset 0   8 bytes   MAGIC
    offset 8   uint32    FORMAT_VERSION
    offset 12  uint32    header_len: bytes of the JSON header that follows
    offset 16  header_len bytes of UTF-8 JSON: {"algorithm", "item_s", "track_ids", "lengths"}, space-padded
               to a multiple of 4 bytes
    then       uint32[sum(lengths)] every track's fingerprint items, track after track
    last       uint32    CRC-32 of every byte before it

Bump FORMAT_VERSION whenever this layout changes; `ChromaprintIndex.load` refuses any other version.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resonance.audio import to_pcm16
from resonance.io import write_checksummed
from resonance.landmark.peaks import check_audio

FPCALC_ALGORITHM = 2  # Chromaprint's default algorithm (TEST2): no silence trimming, so offsets stay exact
CHROMAPRINT_SR = 11025  # Hz: fpcalc resamples every input to this rate
ITEM_HOP = 1365  # samples at CHROMAPRINT_SR between fingerprint items (frame 4096, overlap 4096 - 4096 // 3)
ITEM_S = ITEM_HOP / CHROMAPRINT_SR  # seconds per fingerprint item (~0.1238 s), whatever the input sr
BITS_PER_ITEM = 32

MAGIC = b"RESCPIDX"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sII")  # magic, format version, JSON header length
TRAILER = struct.Struct("<I")  # CRC-32
ITEM_DTYPE = np.dtype("<u4")
REBUILD_HINT = "rebuild it with this version of resonance"
INSTALL_HINT = "install Chromaprint's command-line tool: `apt-get install libchromaprint-tools`"


class ChromaprintError(RuntimeError):
    """fpcalc is missing, hung, or printed something that is not a fingerprint."""


class FingerprintFormatError(ValueError):
    """A reference fingerprint file that is not ours, of another format version, truncated or corrupt."""


@dataclass(frozen=True)
class ChromaprintConfig:
    """Every knob of the Chromaprint baseline (no defaults: values come from params.yaml or the caller).

    timeout_s: longest one fpcalc run may take (seconds). max_overhang_items: how many items the query may hang
    over either end of a reference (the excerpt's first/last item can straddle the track's edge).
    """

    timeout_s: float
    max_overhang_items: int

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"ChromaprintConfig.timeout_s: must be > 0 seconds, got {self.timeout_s!r}")
        if isinstance(self.max_overhang_items, bool) or not isinstance(self.max_overhang_items, int) \
                or self.max_overhang_items < 0:
            raise ValueError(f"ChromaprintConfig.max_overhang_items: must be an integer >= 0, "
                             f"got {self.max_overhang_items!r}")


def require_fpcalc() -> str:
    """Path of `fpcalc`, or a ChromaprintError naming the package to install."""
    path = shutil.which("fpcalc")
    if path is None:
        raise ChromaprintError(f"`fpcalc` not found on PATH: {INSTALL_HINT}")
    return path


def parse_fpcalc_output(stdout: str) -> np.ndarray | None:
    """The uint32 items (n,) of the `FINGERPRINT=` line printed by `fpcalc -raw`; None when there is none."""
    for line in stdout.splitlines():
        if line.startswith("FINGERPRINT="):
            text = line.split("=", 1)[1].strip()
            try:
                values = [int(v) for v in text.split(",") if v.strip()]
            except ValueError:
                raise ChromaprintError(f"fpcalc printed a malformed fingerprint: {text[:80]!r}") from None
            if any(v < 0 or v >= 1 << BITS_PER_ITEM for v in values):
                raise ChromaprintError("fpcalc printed fingerprint items outside uint32 (was -signed used?)")
            return np.array(values, dtype=np.uint32) if values else None
    return None


def fingerprint(audio: np.ndarray, sr: int, timeout_s: float) -> np.ndarray | None:
    """Raw Chromaprint fingerprint of mono audio (n_samples,) at `sr` Hz: uint32 (n_items,), ~8 items/s.

    The clip goes to fpcalc as a temporary 16-bit WAV at its own rate. fpcalc may exit non-zero after printing a
    complete fingerprint (e.g. "Error decoding audio frame (End of file)"): the printed fingerprint is used.
    Returns None when fpcalc prints none (a clip too short to fingerprint, about 3 s or less).
    Raises ChromaprintError if fpcalc is missing or runs longer than `timeout_s`; ValueError for bad audio.
    """
    import soundfile as sf

    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr: expected a positive integer sample rate in Hz, got {sr!r}")
    x = check_audio(audio)
    pcm16 = to_pcm16(x)
    fpcalc = require_fpcalc()
    with tempfile.TemporaryDirectory(prefix="resonance-fpcalc-") as tmp:
        wav = Path(tmp) / "clip.wav"
        sf.write(str(wav), pcm16, int(sr), format="WAV", subtype="PCM_16")
        cmd = [fpcalc, "-raw", "-length", "0", "-algorithm", str(FPCALC_ALGORITHM), str(wav)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ChromaprintError(f"fpcalc took longer than {timeout_s} s on a {x.size / sr:.1f} s clip") from None
    return parse_fpcalc_output(proc.stdout)


@dataclass(frozen=True, eq=False)
class ChromaprintIndex:
    """Full-track reference fingerprints: track i's items are items[starts[i]:starts[i + 1]].

    track_ids: (n_tracks,); items: uint32 (n_items,); starts: int64 (n_tracks + 1,), starts[0] = 0. A track fpcalc
    could not fingerprint has zero items (it is kept, so it is counted, but never matches).
    """

    track_ids: tuple[str, ...]
    items: np.ndarray
    starts: np.ndarray

    @property
    def n_bytes(self) -> int:
        """Bytes of fingerprint data held (4 per item)."""
        return int(self.items.nbytes)

    @property
    def unfingerprinted(self) -> tuple[str, ...]:
        """Ids of the tracks without a fingerprint (fpcalc printed none): they can never match."""
        return tuple(t for t, n in zip(self.track_ids, np.diff(self.starts)) if n == 0)

    def fingerprint_of(self, i: int) -> np.ndarray:
        """Track i's fingerprint, uint32 (n_i,) (a view)."""
        return self.items[self.starts[i]:self.starts[i + 1]]

    def save(self, path: str | Path) -> None:
        """Write the references to `path` atomically in this module's versioned binary format."""
        lengths = np.diff(self.starts).tolist()
        header = json.dumps({"algorithm": FPCALC_ALGORITHM, "item_s": ITEM_S, "track_ids": list(self.track_ids),
                             "lengths": lengths}).encode()
        header += b" " * (-(PREAMBLE.size + len(header)) % ITEM_DTYPE.itemsize)
        write_checksummed(path, (PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)), header,
                                 np.ascontiguousarray(self.items, ITEM_DTYPE).tobytes()))

    @classmethod
    def load(cls, path: str | Path) -> ChromaprintIndex:
        """Read a file written by `save`; FingerprintFormatError (naming the file and the fix) if it is not valid."""
        path = Path(path)
        data = path.read_bytes()
        if len(data) < PREAMBLE.size + TRAILER.size:
            raise FingerprintFormatError(f"{path}: truncated ({len(data)} bytes); {REBUILD_HINT}")
        magic, version, header_len = PREAMBLE.unpack_from(data)
        if magic != MAGIC:
            raise FingerprintFormatError(f"{path}: not a resonance Chromaprint reference file (magic {magic!r}, "
                                         f"expected {MAGIC!r}); {REBUILD_HINT}")
        if version != FORMAT_VERSION:
            raise FingerprintFormatError(f"{path}: format version {version}, this code reads version "
                                         f"{FORMAT_VERSION}; {REBUILD_HINT}")
        (stored,) = TRAILER.unpack_from(data, len(data) - TRAILER.size)
        if zlib.crc32(data[:-TRAILER.size]) != stored:
            raise FingerprintFormatError(f"{path}: checksum mismatch (truncated or corrupt); {REBUILD_HINT}")
        body = PREAMBLE.size + header_len
        try:
            header = json.loads(data[PREAMBLE.size:body])
            track_ids, lengths = tuple(header["track_ids"]), [int(n) for n in header["lengths"]]
            algorithm = header["algorithm"]
        except (ValueError, KeyError, TypeError) as exc:
            raise FingerprintFormatError(f"{path}: unreadable JSON header ({exc}); {REBUILD_HINT}") from None
        if algorithm != FPCALC_ALGORITHM:
            raise FingerprintFormatError(f"{path}: Chromaprint algorithm {algorithm}, this code uses "
                                         f"{FPCALC_ALGORITHM}; {REBUILD_HINT}")
        n_items = (len(data) - TRAILER.size - body) // ITEM_DTYPE.itemsize
        if len(track_ids) != len(lengths) or min(lengths, default=0) < 0 or sum(lengths) != n_items:
            raise FingerprintFormatError(f"{path}: header declares {sum(lengths)} items for {len(track_ids)} "
                                         f"tracks, the file holds {n_items}; {REBUILD_HINT}")
        items = np.frombuffer(data, ITEM_DTYPE, count=n_items, offset=body).astype(np.uint32)
        return cls(track_ids, items, np.r_[0, np.cumsum(lengths, dtype=np.int64)].astype(np.int64))


def index_from_fingerprints(track_ids: Sequence[str], prints: Sequence[np.ndarray | None]) -> ChromaprintIndex:
    """Assemble references from per-track fingerprints (uint32 (n_i,), or None for "no fingerprint")."""
    if len(track_ids) != len(prints):
        raise ValueError(f"{len(track_ids)} track ids for {len(prints)} fingerprints")
    if len(set(track_ids)) != len(track_ids):
        raise ValueError("track ids must be unique")
    arrays = [np.zeros(0, np.uint32) if p is None else np.asarray(p) for p in prints]
    for tid, a in zip(track_ids, arrays):
        if a.ndim != 1 or (a.size and a.dtype != np.uint32):
            raise ValueError(f"{tid}: a fingerprint must be a 1-D uint32 array, got {a.dtype} {a.shape}")
    lengths = [a.size for a in arrays]
    items = np.concatenate(arrays).astype(np.uint32) if arrays else np.zeros(0, np.uint32)
    return ChromaprintIndex(tuple(track_ids), items, np.r_[0, np.cumsum(lengths, dtype=np.int64)].astype(np.int64))


def build_index(tracks: Iterable[tuple[str, np.ndarray]], sr: int, timeout_s: float) -> ChromaprintIndex:
    """Fingerprint each (track_id, mono audio (n_samples,) at `sr` Hz) in full and assemble the references."""
    ids: list[str] = []
    prints: list[np.ndarray | None] = []
    for track_id, audio in tracks:
        ids.append(track_id)
        prints.append(fingerprint(audio, sr, timeout_s))
    return index_from_fingerprints(ids, prints)


@dataclass(frozen=True)
class ChromaprintMatch:
    """The best reference for a query: track_id None when no reference could be aligned (or no fingerprint).

    offset_s: where the query starts in that track (seconds, a multiple of ITEM_S; negative if it hangs over
    the start). score: 1 - BER of the best alignment; second_score: the best score of any other track (0 if none).
    """

    track_id: str | None
    offset_s: float
    score: float
    second_score: float


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint32 element (any shape), as small unsigned integers of the same shape."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[np.ascontiguousarray(x).view(np.uint8)].reshape(*x.shape, 4).sum(axis=-1, dtype=np.uint8)


def _ber_all(query: np.ndarray, items: np.ndarray, item_starts: np.ndarray,
             h: int) -> tuple[np.ndarray, np.ndarray]:
    """BER of `query` (m,) at every window of the references laid end to end, each padded with h zero items.

    Reference j (items[item_starts[j]:item_starts[j + 1]]) becomes block j = [h zeros | its items | h zeros],
    starting at block_starts[j]; the window starting at block_starts[j] + k is alignment p = k - h on
    reference j. Returns (ber float64 (n_windows,), block_starts int64 (n_refs + 1,)); BER is inf where a
    window leaves its block or overlaps its reference by fewer than max(1, m - h) items.
    """
    m, lengths = query.size, np.diff(item_starts)
    sizes = lengths + 2 * h
    block_starts = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    n_win = int(block_starts[-1]) - m + 1
    if m == 0 or n_win <= 0:
        return np.zeros(0), block_starts
    pad = np.zeros(h, np.uint32)
    padded = items if h == 0 else np.concatenate(
        [part for a, b in zip(item_starts[:-1], item_starts[1:]) for part in (pad, items[a:b], pad)])
    # One contiguous XOR + popcount over every window per query item: O(n_windows) memory, no (n, m) array.
    acc = np.zeros(n_win, np.uint16 if m * BITS_PER_ITEM < 1 << 16 else np.int64)  # uint16: half the traffic
    xor = np.empty(n_win, np.uint32)
    for i in range(m):
        np.bitwise_xor(padded[i:i + n_win], query[i], out=xor)
        acc += _popcount(xor)
    ber = acc * (1.0 / (BITS_PER_ITEM * m))  # right wherever the whole query lies on one reference
    # The other windows (touching a pad, or straddling two blocks) sit at block edges: fix those few. Pad items
    # are zero, so a query item on a pad added its own popcount: take those bits back out.
    g, j = _edge_windows(lengths, h, m, block_starts)
    g, j = g[g < n_win], j[g < n_win]
    k = g - block_starts[j]
    left = np.clip(h - k, 0, m)  # query items before the reference's first item
    right = np.clip(k + m - h - lengths[j], 0, m)  # query items after its last
    q_bits = np.r_[0, np.cumsum(_popcount(query), dtype=np.int64)]
    bits = acc[g].astype(np.int64) - q_bits[left] - (q_bits[m] - q_bits[m - right])
    overlap = m - left - right
    ok = (k <= sizes[j] - m) & (overlap >= max(1, m - h))
    ber[g] = np.where(ok, bits / (BITS_PER_ITEM * np.maximum(overlap, 1)), np.inf)
    return ber, block_starts


def _edge_windows(lengths: np.ndarray, h: int, m: int, block_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global starts (e,) of the windows not lying wholly on their block's reference, and their block (e,).

    In block j those are local starts [0, h) and (n_j + h - m, size_j) (the whole block when n_j < m).
    """
    sizes = lengths + 2 * h
    fits = lengths >= m
    lo = np.where(fits, h, 0)
    hi = np.where(fits, lengths + h - m + 1, 0)
    starts = np.r_[block_starts[:-1], block_starts[:-1] + hi]
    counts = np.r_[lo, sizes - hi]
    blocks = np.r_[np.arange(lengths.size), np.arange(lengths.size)]
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(int(counts.sum())), np.repeat(blocks, counts)


def ber_by_alignment(query: np.ndarray, reference: np.ndarray, max_overhang_items: int) -> np.ndarray:
    """Bit error rate of `query` (m,) at every alignment against `reference` (n,), both uint32.

    Entry k is the alignment p = k - max_overhang_items (query item 0 on reference item p), for p in
    [-max_overhang_items, n - m + max_overhang_items]; BER over the overlapping items only. Alignments whose
    overlap is shorter than max(1, m - max_overhang_items) get BER inf. Returns float64 (n + 2h - m + 1,), or
    (0,) when the reference is too short for any alignment.
    """
    ref = np.asarray(reference, np.uint32)
    return _ber_all(np.asarray(query, np.uint32), ref, np.array([0, ref.size]), int(max_overhang_items))[0]


def match_fingerprint(query: np.ndarray, index: ChromaprintIndex, max_overhang_items: int) -> ChromaprintMatch:
    """Best (track, alignment) for a query fingerprint uint32 (m,) over every reference of `index`.

    One vectorized pass over all references laid end to end, then the best alignment per reference.
    """
    q, h = np.asarray(query), int(max_overhang_items)
    if q.ndim != 1 or q.dtype != np.uint32:
        raise ValueError(f"query fingerprint must be a 1-D uint32 array, got {q.dtype} {q.shape}")
    if h < 0:
        raise ValueError(f"max_overhang_items must be >= 0, got {max_overhang_items}")
    lengths = np.diff(index.starts)
    ber, block_starts = _ber_all(q, index.items, index.starts, h)
    if not np.isfinite(ber).any():
        return ChromaprintMatch(None, 0.0, 0.0, 0.0)
    n_windows = lengths + 2 * h - q.size + 1  # windows inside each block
    has = n_windows > 0
    per_ref = np.full(lengths.size, np.inf)
    per_ref[has] = np.minimum.reduceat(ber, block_starts[:-1][has])  # segments end at the next block with windows
    best = int(np.argmin(per_ref))
    k = int(np.argmin(ber[block_starts[best]:block_starts[best] + n_windows[best]]))
    others = np.delete(per_ref, best)
    second = float(1.0 - others.min()) if np.isfinite(others).any() else 0.0
    return ChromaprintMatch(index.track_ids[best], float((k - h) * ITEM_S), float(1.0 - per_ref[best]), second)


def match(audio: np.ndarray, sr: int, index: ChromaprintIndex, config: ChromaprintConfig) -> ChromaprintMatch:
    """Identify mono query audio (n_samples,) at `sr` Hz; track_id None when fpcalc gives no fingerprint."""
    query = fingerprint(audio, sr, config.timeout_s)
    if query is None:
        return ChromaprintMatch(None, 0.0, 0.0, 0.0)
    return match_fingerprint(query, index, config.max_overhang_items)

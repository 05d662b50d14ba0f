"""Inverted index hash -> (track number, anchor frame) on sorted numpy arrays, saved in a versioned binary file.

File layout (all integers little-endian):

    offset 0   8 bytes   MAGIC
    offset 8   uint32    FORMAT_VERSION
    offset 12  uint32    header_len: bytes of the JSON header that follows
    offset 16  header_len bytes of UTF-8 JSON: {"config": LandmarkConfig fields, "hash_layout": bit widths,
               "n_entries": n, "track_ids": [...]}, space-padded to a multiple of 8 bytes
    then       uint32[n] hashes (ascending), uint32[n] track numbers, uint32[n] anchor frames
    last       uint32    CRC-32 of every byte before it

Bump FORMAT_VERSION whenever this layout or the hash bit layout changes; `load` refuses any other version.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from resonance.io import write_checksummed
from resonance.landmark import hashes as hl
from resonance.landmark.peaks import LandmarkConfig

MAGIC = b"RESLMIDX"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sII")  # magic, format version, JSON header length
TRAILER = struct.Struct("<I")  # CRC-32
ENTRY_DTYPE = np.dtype("<u4")
REBUILD_HINT = "rebuild it with this version of resonance (`resonance index`)"


class IndexFormatError(ValueError):
    """An index file that is not ours, of another format version, truncated or corrupt."""


def _layout() -> dict[str, int]:
    return {"f1_bits": hl.F1_BITS, "df_bits": hl.DF_BITS, "dt_bits": hl.DT_BITS}


@dataclass(frozen=True, eq=False)
class LandmarkIndex:
    """Every hash of every indexed track: three parallel arrays (n_entries,) sorted by hash.

    hashes: uint32 landmark hashes, ascending; tracks: uint32 position in `track_ids`; frames: uint32 anchor
    frame (STFT frames of config.hop samples from the track start). Entries with equal hashes keep the order
    they were given in (by track, then by anchor).
    """

    config: LandmarkConfig
    track_ids: tuple[str, ...]
    hashes: np.ndarray
    tracks: np.ndarray
    frames: np.ndarray

    @property
    def n_entries(self) -> int:
        """Number of (hash, track, frame) entries."""
        return int(self.hashes.size)

    def lookup(self, query_hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All index entries whose hash equals one of `query_hashes` (m,).

        Returns (rows, tracks, frames), each (k,): rows are positions in `query_hashes`, then the matching
        entry's track number and anchor frame. Vectorized: two searchsorted calls and one gather.
        """
        q = np.asarray(query_hashes, dtype=np.uint32).ravel()
        lo = np.searchsorted(self.hashes, q, side="left")
        counts = np.searchsorted(self.hashes, q, side="right") - lo
        total = int(counts.sum())
        rows = np.repeat(np.arange(q.size), counts)
        starts = np.cumsum(counts) - counts  # where each query's hits begin in the output
        pos = np.arange(total) - np.repeat(starts - lo, counts)
        return rows, self.tracks[pos], self.frames[pos]

    def save(self, path: str | Path) -> None:
        """Write the index to `path` atomically in the versioned binary format of this module."""
        header = json.dumps({"config": dataclasses.asdict(self.config), "hash_layout": _layout(),
                             "n_entries": self.n_entries, "track_ids": list(self.track_ids)}).encode()
        header += b" " * (-(PREAMBLE.size + len(header)) % 8)
        write_checksummed(path, (PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)), header,
                                 *(np.ascontiguousarray(a, ENTRY_DTYPE).data
                                   for a in (self.hashes, self.tracks, self.frames))))

    @classmethod
    def load(cls, path: str | Path) -> LandmarkIndex:
        """Read an index written by `save`; IndexFormatError (naming the file and the fix) if it is not valid."""
        path = Path(path)
        with open(path, "rb") as fh:
            pre = _read_exact(fh, PREAMBLE.size, path, "preamble")
            header_len = _check_preamble(pre, path)
            raw = _read_exact(fh, header_len, path, "JSON header")
            config, track_ids, n = _parse_header(raw, path)
            size, expected = os.fstat(fh.fileno()).st_size, fh.tell() + 3 * n * ENTRY_DTYPE.itemsize + TRAILER.size
            if size != expected:
                raise IndexFormatError(f"{path}: {size} bytes, but its header declares {n} entries ({expected} "
                                       f"bytes): truncated or corrupt; {REBUILD_HINT}")
            arrays = [np.empty(n, ENTRY_DTYPE) for _ in range(3)]
            for a in arrays:
                fh.readinto(memoryview(a).cast("B"))
            (stored,) = TRAILER.unpack(_read_exact(fh, TRAILER.size, path, "checksum"))
        crc = zlib.crc32(raw, zlib.crc32(pre))
        for a in arrays:
            crc = zlib.crc32(a, crc)
        if crc != stored:
            raise IndexFormatError(f"{path}: checksum mismatch (file corrupt); {REBUILD_HINT}")
        index = cls(config, track_ids, *(a.astype(np.uint32, copy=False) for a in arrays))
        _check_consistent(index, path)
        return index


def _check_preamble(pre: bytes, path: Path) -> int:
    """The JSON header length, after checking the magic and the format version."""
    magic, version, header_len = PREAMBLE.unpack(pre)
    if magic != MAGIC:
        raise IndexFormatError(f"{path}: not a resonance landmark index (magic {magic!r}, expected {MAGIC!r}); "
                               f"{REBUILD_HINT}")
    if version != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: index format version {version}, this code reads version "
                               f"{FORMAT_VERSION}; {REBUILD_HINT}")
    return int(header_len)


def _read_exact(fh: BinaryIO, n: int, path: Path, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise IndexFormatError(f"{path}: truncated in the {what} ({len(data)} of {n} bytes); {REBUILD_HINT}")
    return data


def _parse_header(raw: bytes, path: Path) -> tuple[LandmarkConfig, tuple[str, ...], int]:
    try:
        header = json.loads(raw)
        if header["hash_layout"] != _layout():
            raise IndexFormatError(f"{path}: hash bit layout {header['hash_layout']} differs from this code's "
                                   f"{_layout()}; {REBUILD_HINT}")
        return LandmarkConfig(**header["config"]), tuple(header["track_ids"]), int(header["n_entries"])
    except IndexFormatError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFormatError(f"{path}: unreadable JSON header ({exc}); {REBUILD_HINT}") from None


def _check_consistent(index: LandmarkIndex, path: Path) -> None:
    if index.n_entries and np.any(index.hashes[1:] < index.hashes[:-1]):
        raise IndexFormatError(f"{path}: hashes are not sorted; {REBUILD_HINT}")
    if index.n_entries and int(index.tracks.max()) >= len(index.track_ids):
        raise IndexFormatError(f"{path}: a track number exceeds the {len(index.track_ids)} track ids; "
                               f"{REBUILD_HINT}")


def index_from_hashes(track_ids: Sequence[str], per_track: Sequence[tuple[np.ndarray, np.ndarray]],
                      config: LandmarkConfig) -> LandmarkIndex:
    """Assemble an index from precomputed (hashes uint32 (m_i,), anchor_frames int (m_i,)) per track.

    `per_track[i]` belongs to `track_ids[i]`; ids must be unique. One stable argsort over all entries.
    """
    if len(track_ids) != len(per_track):
        raise ValueError(f"{len(track_ids)} track ids for {len(per_track)} hash sets")
    if len(set(track_ids)) != len(track_ids):
        raise ValueError("track ids must be unique")
    if len(track_ids) >= 2**32:
        raise ValueError("too many tracks for uint32 track numbers")
    hashes = np.concatenate([np.asarray(h, np.uint32) for h, _ in per_track] or [np.zeros(0, np.uint32)])
    frames = np.concatenate([np.asarray(f, np.int64) for _, f in per_track] or [np.zeros(0, np.int64)])
    if frames.size and frames.min() < 0:
        raise ValueError("anchor frames must be >= 0")
    sizes = [len(h) for h, _ in per_track]
    tracks = np.repeat(np.arange(len(per_track), dtype=np.uint32), sizes)
    order = np.argsort(hashes, kind="stable")
    return LandmarkIndex(config, tuple(track_ids), hashes[order], tracks[order], frames[order].astype(np.uint32))


def build_index(tracks: Iterable[tuple[str, np.ndarray]], config: LandmarkConfig) -> LandmarkIndex:
    """Fingerprint each (track_id, mono audio (n_samples,) at config.sr) and index every hash."""
    ids: list[str] = []
    per_track: list[tuple[np.ndarray, np.ndarray]] = []
    for track_id, audio in tracks:
        ids.append(track_id)
        per_track.append(hl.fingerprint(audio, config))
    return index_from_hashes(ids, per_track, config)

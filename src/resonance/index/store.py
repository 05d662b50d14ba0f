"""The reference index: unit embeddings of reference windows in a FAISS flat inner-product index, plus metadata.

Layout of an index folder (written whole, atomically: see `EmbeddingIndex.save`):
    index.json     header: format, build_id, dim, window_s, hop_s, n_tracks, n_windows, model_sha256
    index.faiss    faiss.IndexIDMap2(faiss.IndexFlatIP(dim)): one float32 (dim,) unit row per window
    windows.npz    per window, in id order: ids (int64, the FAISS ids), track (int32, position in tracks.jsonl),
                   start_s (float64, the window's start in its track, seconds); and build_id
    tracks.jsonl   per track: track_id, title, duration_s (seconds), source (a file path or "catalog"), n_windows

Inner product of unit vectors = cosine similarity, so search scores are in [-1, 1].
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resonance.errors import ResonanceError

INDEX_FORMAT = 1
FILES = ("index.json", "index.faiss", "windows.npz", "tracks.jsonl")


class EmbeddingIndexError(ResonanceError):
    """An index folder that is missing, corrupt, of another format, or built with another model."""


@dataclass(frozen=True)
class TrackInfo:
    """One indexed track: `duration_s` in seconds; `source` a file path or "catalog"; `n_windows` rows."""

    track_id: str
    title: str
    duration_s: float
    source: str
    n_windows: int


class EmbeddingIndex:
    """Reference windows' unit embeddings (dim,) with, per window, its track and start time (s).

    `tracks[i]` is the track at position i; `search` returns those positions. Adding a track_id that is already
    indexed replaces it. window_s and hop_s (seconds) are the model's reference window length and hop.
    """

    def __init__(self, dim: int, window_s: float, hop_s: float, model_sha256: str) -> None:
        import faiss

        self.dim, self.window_s, self.hop_s, self.model_sha256 = int(dim), float(window_s), float(hop_s), model_sha256
        self.faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.tracks: list[TrackInfo] = []
        self._ids = np.zeros(0, dtype=np.int64)  # sorted ascending (ids only ever grow)
        self._track = np.zeros(0, dtype=np.int32)
        self._start = np.zeros(0, dtype=np.float64)
        self._next_id = 0

    @property
    def n_windows(self) -> int:
        return int(self._ids.size)

    def nbytes(self) -> int:
        """Bytes of search data held: the vectors plus the per-window metadata."""
        return self.n_windows * self.dim * 4 + self._ids.nbytes + self._track.nbytes + self._start.nbytes

    def position(self, track_id: str) -> int | None:
        """Position of `track_id` in `tracks`, None when it is not indexed."""
        return next((i for i, t in enumerate(self.tracks) if t.track_id == track_id), None)

    def add_track(self, track_id: str, title: str, embeddings: np.ndarray, hop_s: float, duration_s: float,
                  source: str) -> None:
        """Index a track's windows: embeddings (n, dim) unit rows, window j starting at j * hop_s seconds.

        A track_id already in the index is replaced (its old windows removed), keeping its position.
        """
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim or emb.shape[0] == 0:
            raise ValueError(f"add_track {track_id}: expected (n >= 1, {self.dim}) embeddings, got {emb.shape}")
        if abs(hop_s - self.hop_s) > 1e-9:
            raise ValueError(f"add_track {track_id}: hop_s {hop_s} s differs from the index's {self.hop_s} s")
        info = TrackInfo(track_id, title, float(duration_s), str(source), int(emb.shape[0]))
        pos = self.position(track_id)
        if pos is None:
            pos = len(self.tracks)
            self.tracks.append(info)
        else:
            self._remove_windows(pos)
            self.tracks[pos] = info
        ids = np.arange(self._next_id, self._next_id + emb.shape[0], dtype=np.int64)
        self.faiss.add_with_ids(emb, ids)
        self._next_id += emb.shape[0]
        self._ids = np.concatenate([self._ids, ids])
        self._track = np.concatenate([self._track, np.full(ids.size, pos, dtype=np.int32)])
        self._start = np.concatenate([self._start, np.arange(ids.size, dtype=np.float64) * hop_s])

    def remove_track(self, track_id: str) -> None:
        """Drop a track and its windows (KeyError if absent); later tracks move up one position."""
        pos = self.position(track_id)
        if pos is None:
            raise KeyError(track_id)
        self._remove_windows(pos)
        del self.tracks[pos]
        self._track[self._track > pos] -= 1

    def _remove_windows(self, pos: int) -> None:
        gone = self._track == pos
        if gone.any():
            self.faiss.remove_ids(np.ascontiguousarray(self._ids[gone]))
        keep = ~gone
        self._ids, self._track, self._start = self._ids[keep], self._track[keep], self._start[keep]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k reference windows of each query row: queries (m, dim) unit rows ->
        (scores (m, k) float32 cosine, best first; track_idx (m, k) int64 positions in `tracks`;
        start_s (m, k) float64 seconds). Missing neighbours (k > n_windows) get score -inf, track -1, start nan.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"search: expected (m, {self.dim}) queries, got {q.shape}")
        if k < 1:
            raise ValueError(f"search: k must be >= 1, got {k}")
        scores, labels = self.faiss.search(q, k)
        found = labels >= 0
        pos = np.where(found, np.searchsorted(self._ids, labels), self._ids.size)  # size: the "none" slot below
        track = np.append(self._track, -1).astype(np.int64)[pos]
        start = np.append(self._start, np.nan)[pos]
        return np.where(found, scores, -np.inf).astype(np.float32), track, start

    def header(self, build_id: str) -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "build_id": build_id, "dim": self.dim, "window_s": self.window_s,
                "hop_s": self.hop_s, "n_tracks": len(self.tracks), "n_windows": self.n_windows,
                "model_sha256": self.model_sha256, "next_id": self._next_id}

    def save(self, folder: str | Path) -> None:
        """Write the index folder whole: built in a temp folder beside it, then swapped in (see `swap_in`).

        A crash leaves the previous index (or none) intact; readers see the old or the new index.
        """
        import faiss

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}.", dir=folder.parent))
        try:
            build_id = uuid.uuid4().hex
            faiss.write_index(self.faiss, str(tmp / "index.faiss"))
            np.savez(tmp / "windows.npz", ids=self._ids, track=self._track, start_s=self._start,
                     build_id=np.array(build_id))
            with open(tmp / "tracks.jsonl", "w") as fh:
                fh.writelines(json.dumps(asdict(t)) + "\n" for t in self.tracks)
            (tmp / "index.json").write_text(json.dumps(self.header(build_id), indent=2) + "\n")
            for name in FILES:
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o755)
            swap_in(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def load(cls, folder: str | Path, model_sha256: str | None = None, attempts: int = 3) -> EmbeddingIndex:
        """Read an index folder; with `model_sha256`, EmbeddingIndexError unless it was built with that model.

        The parts of one save share a build id; a read that straddles a concurrent swap is retried.
        """
        folder = Path(folder)
        if not (folder / "index.json").is_file():
            raise EmbeddingIndexError(f"{folder}: no index here (build one with `resonance index build`, or "
                                      f"`resonance index add FILE`, or pass --index)")
        for attempt in range(attempts):
            try:
                index = cls._read(folder)
                break
            except _TornRead:
                if attempt == attempts - 1:
                    raise EmbeddingIndexError(f"{folder}: its files belong to different saves (being rewritten "
                                              f"concurrently?); try again") from None
        if model_sha256 is not None and index.model_sha256 != model_sha256:
            raise EmbeddingIndexError(
                f"{folder}: built with another model (sha256 {index.model_sha256[:12]}..., this model is "
                f"{model_sha256[:12]}...): rebuild it with `resonance index build`, or pass the matching --model")
        return index

    @classmethod
    def _read(cls, folder: Path) -> EmbeddingIndex:
        import faiss

        try:
            head = json.loads((folder / "index.json").read_text())
            if head.get("format") != INDEX_FORMAT:
                raise EmbeddingIndexError(f"{folder}: index format {head.get('format')!r}, this code reads "
                                          f"{INDEX_FORMAT}: rebuild it with `resonance index build`")
            index = cls(head["dim"], head["window_s"], head["hop_s"], head["model_sha256"])
            with np.load(folder / "windows.npz") as npz:
                if str(npz["build_id"]) != head["build_id"]:
                    raise _TornRead
                index._ids, index._track, index._start = npz["ids"], npz["track"], npz["start_s"]
            index.faiss = faiss.read_index(str(folder / "index.faiss"))
            with open(folder / "tracks.jsonl") as fh:
                index.tracks = [TrackInfo(**json.loads(line)) for line in fh if line.strip()]
            index._next_id = int(head["next_id"])
            if json.loads((folder / "index.json").read_text()).get("build_id") != head["build_id"]:
                raise _TornRead  # swapped while we read: some parts may come from the new save
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            if not (folder / "index.json").is_file():
                raise _TornRead from None  # swapped out under us
            raise EmbeddingIndexError(f"{folder}: corrupt index ({type(exc).__name__}: {exc}); rebuild it") from None
        consistent = (index.faiss.ntotal == index.n_windows == head["n_windows"] and index.faiss.d == index.dim
                      and len(index.tracks) == head["n_tracks"] and index._track.size == index._start.size)
        if not consistent:
            raise _TornRead
        return index


class _TornRead(Exception):
    """The files read come from two different saves."""


def swap_in(new_dir: Path, target: Path) -> None:
    """Put the fully written folder `new_dir` at `target`, replacing any folder there, atomically on Linux.

    An existing target is exchanged with `new_dir` in one renameat2(RENAME_EXCHANGE) call (no moment without an
    index), then the old copy (now at `new_dir`) is removed by the caller. Where that call is unavailable it falls
    back to `resonance.io.replace_dir` (a brief moment without `target`).
    """
    if not target.exists():
        os.replace(new_dir, target)
        return
    if _exchange(new_dir, target):
        return
    from resonance.io import replace_dir

    replace_dir(new_dir, target)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when not supported here."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a.resolve()), at_fdcwd, os.fsencode(b.resolve()), rename_exchange)
    return rc == 0

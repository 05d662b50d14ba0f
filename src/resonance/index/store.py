"""The reference index: unit embeddings of reference windows in a FAISS flat inner-product index, plus metadata.

Layout of an index folder (written whole, atomically: see `EmbeddingIndex.save`):
    index.json     header: format, build_id, dim, window_s, hop_s, n_tracks, n_windows, model_sha256, and the
                   sha256 of each file below (checked on load: a truncated or altered file is a clear error)
    index.faiss    faiss.IndexIDMap2(faiss.IndexFlatIP(dim)): one float32 (dim,) unit row per window; only in a
                   `flat` index (older saves of other types may have it too)
    ann.faiss      the proposal structure of an `hnsw` index (a graph holding the exact rows) or an `ivfpq` index
                   (codes: the rows are their reconstructions); resonance.index.ann
    windows.npz    per window, in id order: ids (int64, the FAISS ids), track (int32, position in tracks.jsonl),
                   slot (int32: the window's number j in its track, starting at j * hop_s seconds); and build_id
    tracks.jsonl   per track: track_id, title, duration_s (seconds), source (a file path or "catalog"),
                   n_windows (windows indexed), n_slots (windows the track has, indexed or masked)

Windows the model cannot judge (silence, near-silence: see `resonance.index.usable`) are masked: they keep their
slot number but are never added, so they cannot collect votes. Inner product of unit vectors = cosine similarity,
so search scores are in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resonance.errors import ResonanceError
from resonance.index.ann import FLAT, AnnSpec

INDEX_FORMAT = 2


class EmbeddingIndexError(ResonanceError):
    """An index folder that is missing, corrupt, of another format, or built with another model."""


@dataclass(frozen=True)
class TrackInfo:
    """One indexed track: `duration_s` in seconds; `source` a file path or "catalog"; `n_windows` rows indexed of
    its `n_slots` windows (the others were masked as silent)."""

    track_id: str
    title: str
    duration_s: float
    source: str
    n_windows: int
    n_slots: int


class EmbeddingIndex:
    """Reference windows' unit embeddings (dim,) with, per window, its track and start time (s).

    `tracks[i]` is the track at position i; `search` returns those positions. Adding a track_id that is already
    indexed replaces it. window_s and hop_s (seconds) are the model's reference window length and hop.
    """

    def __init__(self, dim: int, window_s: float, hop_s: float, model_sha256: str,
                 ann: AnnSpec | None = None) -> None:
        import faiss

        self.dim, self.window_s, self.hop_s, self.model_sha256 = int(dim), float(window_s), float(hop_s), model_sha256
        self.faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.ann_spec = ann or FLAT  # how candidates are proposed (resonance.index.ann); vectors stay exact
        self._ann: Any = None  # the built structure (None: not built yet, or flat)
        self.build_id: str | None = None  # of the save it was loaded from
        self.tracks: list[TrackInfo] = []
        self._ids = np.zeros(0, dtype=np.int64)  # sorted ascending (ids only ever grow)
        self._track = np.zeros(0, dtype=np.int32)
        self._slot = np.zeros(0, dtype=np.int32)
        self._next_id = 0
        self._vectors: np.ndarray | None = None  # cache of the rows, in id order (see `vectors`)
        self._slots: tuple[np.ndarray, np.ndarray] | None = None  # cache of `slot_rows`

    @property
    def n_windows(self) -> int:
        return int(self._ids.size)

    @property
    def _start(self) -> np.ndarray:
        return self._slot.astype(np.float64) * self.hop_s

    def nbytes(self) -> int:
        """Bytes of search data saved: the vectors (float32, or the codes and ids of a compressed index) plus the
        per-window metadata."""
        per_row = (self.ann_spec.pq_m * self.ann_spec.pq_nbits / 8 + 8) if self.ann_spec.compressed else self.dim * 4
        return int(self.n_windows * per_row) + self._ids.nbytes + self._track.nbytes + self._slot.nbytes

    def vectors(self) -> np.ndarray:
        """Every indexed row as float32 (n_windows, dim), in the order of the metadata arrays (read-only)."""
        if self._vectors is None:
            import faiss

            flat = faiss.downcast_index(self.faiss.index)
            rows = faiss.rev_swig_ptr(flat.get_xb(), self.n_windows * self.dim)
            self._vectors = np.array(rows, dtype=np.float32).reshape(self.n_windows, self.dim)
            self._vectors.setflags(write=False)
        return self._vectors

    def slot_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each track's windows are: (first (n_tracks + 1,) int64, rows (sum of n_slots,) int64) such that
        rows[first[t] + j] is the row of window j of track t in `vectors()`, or -1 when that window is masked."""
        if self._slots is None:
            n_slots = np.array([t.n_slots for t in self.tracks], dtype=np.int64)
            first = np.concatenate([[0], np.cumsum(n_slots)])
            rows = np.full(int(first[-1]), -1, dtype=np.int64)
            rows[first[self._track] + self._slot] = np.arange(self.n_windows)
            self._slots = (first, rows)
        return self._slots

    def _changed(self, removed: np.ndarray, appended: np.ndarray, appended_ids: np.ndarray) -> None:
        """Drop the caches and bring the ANN structure along: rows removed (FAISS ids) and rows appended at the end
        (vectors (n, dim) and their ids) are applied in place where the structure can, else it is rebuilt."""
        from resonance.index import ann

        self._vectors, self._slots = None, None
        if self._ann is None:
            return
        if removed.size and not ann.remove(self._ann, self.ann_spec, removed):
            self._ann = None
            return
        ann.extend(self._ann, self.ann_spec, appended, appended_ids)

    def ann_structure(self) -> Any:
        """The ANN structure over `vectors()` (built on first use; None for a flat index)."""
        if self.ann_spec.kind != "flat" and self._ann is None and self.n_windows:
            from resonance.index import ann

            self._ann = ann.build(self.ann_spec, self.vectors(), self._ids)
        return self._ann

    def compact(self) -> None:
        """For a compressed index (`ivfpq`): replace the float rows by the reconstructions of their codes, which
        are what a saved copy holds, so an index in memory answers exactly as it will once saved and loaded."""
        if self.ann_spec.compressed:
            self._rows_from_structure()

    def _rows_from_structure(self) -> None:
        """The float store := the rows the ANN structure gives back (`resonance.index.ann.rows`)."""
        from resonance.index import ann

        structure = self.ann_structure()
        self._set_rows(ann.rows(structure, self.ann_spec, self._ids) if structure is not None
                       else np.zeros((0, self.dim), dtype=np.float32))

    def _set_rows(self, rows: np.ndarray) -> None:
        """The float store := rows (n_windows, dim) under the current ids."""
        import faiss

        self.faiss = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if rows.shape[0]:
            self.faiss.add_with_ids(np.ascontiguousarray(rows, dtype=np.float32), self._ids)
        self._vectors = None

    def position(self, track_id: str) -> int | None:
        """Position of `track_id` in `tracks`, None when it is not indexed."""
        return next((i for i, t in enumerate(self.tracks) if t.track_id == track_id), None)

    def add_track(self, track_id: str, title: str, embeddings: np.ndarray, hop_s: float, duration_s: float,
                  source: str, usable: np.ndarray | None = None) -> None:
        """Index a track's windows: embeddings (n, dim) unit rows, window j starting at j * hop_s seconds; only
        the rows where `usable` (n,) bool is True are added (None: all of them).

        A track_id already in the index is replaced (its old windows removed), keeping its position.
        """
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.dim or emb.shape[0] == 0:
            raise ValueError(f"add_track {track_id}: expected (n >= 1, {self.dim}) embeddings, got {emb.shape}")
        if abs(hop_s - self.hop_s) > 1e-9:
            raise ValueError(f"add_track {track_id}: hop_s {hop_s} s differs from the index's {self.hop_s} s")
        keep = np.ones(emb.shape[0], dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
        if keep.shape != (emb.shape[0],):
            raise ValueError(f"add_track {track_id}: usable must be ({emb.shape[0]},), got {keep.shape}")
        if not keep.any():
            raise ValueError(f"add_track {track_id}: no usable window (all silent): nothing to index")
        info = TrackInfo(track_id, title, float(duration_s), str(source), int(keep.sum()), int(emb.shape[0]))
        pos = self.position(track_id)
        removed = np.zeros(0, dtype=np.int64)
        if pos is None:
            pos = len(self.tracks)
            self.tracks.append(info)
        else:
            removed = self._remove_windows(pos)
            self.tracks[pos] = info
        ids = np.arange(self._next_id, self._next_id + info.n_windows, dtype=np.int64)
        self.faiss.add_with_ids(emb[keep], ids)
        self._next_id += info.n_windows
        self._ids = np.concatenate([self._ids, ids])
        self._track = np.concatenate([self._track, np.full(ids.size, pos, dtype=np.int32)])
        self._slot = np.concatenate([self._slot, np.flatnonzero(keep).astype(np.int32)])
        self._changed(removed, emb[keep], ids)

    def remove_track(self, track_id: str) -> None:
        """Drop a track and its windows (KeyError if absent); later tracks move up one position."""
        pos = self.position(track_id)
        if pos is None:
            raise KeyError(track_id)
        removed = self._remove_windows(pos)
        del self.tracks[pos]
        self._track[self._track > pos] -= 1
        self._changed(removed, np.zeros((0, self.dim), dtype=np.float32), removed[:0])

    def subset(self, track_ids: list[str]) -> EmbeddingIndex:
        """A new in-memory index holding only `track_ids` (in that order; KeyError for one not indexed)."""
        out = EmbeddingIndex(self.dim, self.window_s, self.hop_s, self.model_sha256, self.ann_spec)
        first, rows = self.slot_rows()
        vectors = self.vectors()
        for track_id in track_ids:
            pos = self.position(track_id)
            if pos is None:
                raise KeyError(track_id)
            info = self.tracks[pos]
            slots = rows[first[pos]:first[pos + 1]]
            emb = np.zeros((info.n_slots, self.dim), dtype=np.float32)
            emb[slots >= 0] = vectors[slots[slots >= 0]]
            out.add_track(info.track_id, info.title, emb, self.hop_s, info.duration_s, info.source, slots >= 0)
        return out

    def _remove_windows(self, pos: int) -> np.ndarray:
        """Drop the rows of the track at `pos` from the float store and the metadata; returns their FAISS ids."""
        gone = self._track == pos
        removed = np.ascontiguousarray(self._ids[gone])
        if removed.size:
            self.faiss.remove_ids(removed)
        keep = ~gone
        self._ids, self._track, self._slot = self._ids[keep], self._track[keep], self._slot[keep]
        return removed

    def search_rows(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k reference windows of each query row: queries (m, dim) unit rows -> (scores (m, k) float32 cosine,
        best first; rows (m, k) int64 rows of `vectors()`, -1 where there is no k-th neighbour, score -inf)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"search: expected (m, {self.dim}) queries, got {q.shape}")
        if k < 1:
            raise ValueError(f"search: k must be >= 1, got {k}")
        if q.shape[0] == 0:
            return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
        structure = self.ann_structure()
        if structure is not None:
            from resonance.index import ann

            scores, labels = ann.search(structure, self.ann_spec, q, k)
            found = labels >= 0
            rows = np.where(found, np.searchsorted(self._ids, labels), -1) if self.ann_spec.labels_are_ids \
                else labels
        else:
            scores, labels = self.faiss.search(q, k)
            found = labels >= 0
            rows = np.where(found, np.searchsorted(self._ids, labels), -1)
        return np.where(found, scores, -np.inf).astype(np.float32), rows.astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k reference windows of each query row: queries (m, dim) unit rows ->
        (scores (m, k) float32 cosine, best first; track_idx (m, k) int64 positions in `tracks`;
        start_s (m, k) float64 seconds). Missing neighbours (k > n_windows) get score -inf, track -1, start nan.
        """
        scores, rows = self.search_rows(queries, k)
        track = np.append(self._track, -1).astype(np.int64)[rows]
        start = np.append(self._start, np.nan)[rows]
        return scores, track, start

    def row_track(self) -> np.ndarray:
        """(n_windows,) int32: the track position of every row of `vectors()`."""
        return self._track

    def row_slot(self) -> np.ndarray:
        """(n_windows,) int32: the window number of every row in its track (it starts at slot * hop_s s)."""
        return self._slot

    def header(self, build_id: str) -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "build_id": build_id, "dim": self.dim, "window_s": self.window_s,
                "hop_s": self.hop_s, "n_tracks": len(self.tracks), "n_windows": self.n_windows,
                "model_sha256": self.model_sha256, "next_id": self._next_id, "ann": self.ann_spec.to_dict()}

    def save(self, folder: str | Path) -> None:
        """Write the index folder whole, atomically (`resonance.index.persist.save_index`)."""
        from resonance.index.persist import save_index

        save_index(self, Path(folder))

    @classmethod
    def load(cls, folder: str | Path, model_sha256: str | None = None, attempts: int = 3) -> EmbeddingIndex:
        """Read an index folder (`resonance.index.persist.load_index`); with `model_sha256`, EmbeddingIndexError
        unless it was built with that model."""
        from resonance.index.persist import load_index

        return load_index(Path(folder), model_sha256, attempts)

    @classmethod
    def from_arrays(cls, head: dict[str, Any], faiss_index: Any, ann_structure: Any, ids: np.ndarray,
                    track: np.ndarray, slot: np.ndarray, tracks: list[TrackInfo]) -> EmbeddingIndex:
        """An index from its saved parts (header fields dim, window_s, hop_s, model_sha256, next_id, ann): the
        float store faiss_index (None: the rows come from ann_structure, an HNSW graph's floats or IVF-PQ codes)."""
        index = cls(head["dim"], head["window_s"], head["hop_s"], head["model_sha256"], AnnSpec(**head["ann"]))
        index.tracks, index._next_id = tracks, int(head["next_id"])
        index.build_id = head.get("build_id")
        index._ids, index._track, index._slot = ids.astype(np.int64), track.astype(np.int32), slot.astype(np.int32)
        index._ann = ann_structure
        if faiss_index is None:  # saved without a float store: the structure holds the rows
            index._rows_from_structure()
        else:
            index.faiss = faiss_index
        return index

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-window metadata arrays as saved in windows.npz (ids, track, slot)."""
        return {"ids": self._ids, "track": self._track, "slot": self._slot}

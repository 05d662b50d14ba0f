"""The approximate-neighbour structure an index may carry for proposing candidates.

An approximate search only decides which (track, offset) candidates are proposed; every candidate is then
re-scored on the index's vectors (`EmbeddingIndex.vectors()`) by the sequence search. `kind`:
- `flat`: no extra structure; proposals come from the exact inner-product scan (best for small catalogs);
- `hnsw`: a FAISS HNSW graph over the same rows (inner product): ~1 ms per query window instead of a scan of
  every row, at a small loss of recall that the re-scoring mostly absorbs. The graph holds the exact floats,
  so a saved HNSW index keeps no other copy of them (labels: row positions of `vectors()`);
- `ivfpq`: a FAISS IVF-PQ index (inverted lists of `ivf_nlist` k-means cells over the rows, each row's residual
  in `pq_m` codes of `pq_nbits` bits; `ivf_nprobe` cells scanned per query window). It is the compressed
  index: only the codes are saved (pq_m bytes + an 8-byte id per window at 8 bits), and the vectors the
  sequence search re-scores on are the codes' reconstructions (`benchmarks/index_types.md` measures what that
  costs). Labels: the FAISS ids of the rows; tracks are removed from it in place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KINDS = ("flat", "hnsw", "ivfpq")


@dataclass(frozen=True)
class AnnSpec:
    """kind (flat | hnsw | ivfpq); hnsw_m: graph degree; ef_construction / ef_search: HNSW's build and search
    beams; ivf_nlist: IVF cells (fewer when the index holds under 39 rows per cell); ivf_nprobe: cells scanned per
    query window; pq_m: PQ sub-quantisers (bytes per window at 8 bits; divides the embedding dim); pq_nbits: bits
    per code (fewer when the index holds under 2^bits rows to train on)."""

    kind: str
    hnsw_m: int
    ef_construction: int
    ef_search: int
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32
    pq_m: int = 64
    pq_nbits: int = 8

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index type {self.kind!r}: known {KINDS}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search, self.ivf_nlist, self.ivf_nprobe, self.pq_m) < 1:
            raise ValueError("hnsw m, ef_construction, ef_search, ivf nlist, nprobe and pq m must be >= 1")
        if not 1 <= self.pq_nbits <= 16:
            raise ValueError(f"pq nbits must be in 1..16, got {self.pq_nbits}")

    @property
    def compressed(self) -> bool:
        """True when the index keeps codes, not float vectors (its vectors are reconstructions)."""
        return self.kind == "ivfpq"

    @property
    def holds_rows(self) -> bool:
        """True when the structure can give every row back (`rows`), so a saved index keeps no separate float
        store: an HNSW graph holds the exact floats, IVF-PQ the codes."""
        return self.kind in ("hnsw", "ivfpq")

    @property
    def labels_are_ids(self) -> bool:
        """True when the structure's search returns FAISS ids (else row positions of `vectors()`)."""
        return self.kind == "ivfpq"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FLAT = AnnSpec("flat", 32, 80, 128)


def build(spec: AnnSpec, vectors: np.ndarray, ids: np.ndarray) -> Any:
    """The structure over vectors (n, dim) float32 unit rows whose FAISS ids are ids (n,) int64; None for `flat`."""
    if spec.kind == "flat":
        return None
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if spec.kind == "hnsw":
        ann = faiss.IndexHNSWFlat(x.shape[1], spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        ann.hnsw.efConstruction = spec.ef_construction
        ann.hnsw.efSearch = spec.ef_search
        extend(ann, spec, x, ids)
        return ann
    if x.shape[1] % spec.pq_m:
        raise ValueError(f"ivfpq: pq m {spec.pq_m} must divide the embedding dim {x.shape[1]}")
    n = x.shape[0]
    nlist = max(1, min(spec.ivf_nlist, n // 39))  # FAISS wants >= 39 training rows per k-means cell
    nbits = max(1, min(spec.pq_nbits, int(np.log2(max(n, 2)))))  # and >= 2^nbits rows per PQ codebook
    ann = faiss.IndexIVFPQ(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, spec.pq_m, nbits,
                           faiss.METRIC_INNER_PRODUCT)
    ann.cp.seed = ann.pq.cp.seed = 1234  # k-means seeds: the same rows give the same codes
    ann.train(x)
    ann.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
    extend(ann, spec, x, ids)
    return ann


def extend(ann: Any, spec: AnnSpec, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Append rows (HNSW: labels continue where the structure ends; IVF-PQ: encoded under their ids)."""
    if ann is None or not vectors.shape[0]:
        return
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if spec.labels_are_ids:
        ann.add_with_ids(x, np.ascontiguousarray(ids, dtype=np.int64))
    else:
        ann.add(x)


def remove(ann: Any, spec: AnnSpec, ids: np.ndarray) -> bool:
    """Take rows out by FAISS id, in place; False when the structure cannot (row-labelled: rebuild it)."""
    if ann is None or not spec.labels_are_ids:
        return False
    ann.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
    return True


def rows(ann: Any, spec: AnnSpec, ids: np.ndarray) -> np.ndarray:
    """(n, dim) float32 unit rows the structure holds for the rows whose FAISS ids are ids (n,) int64, in that
    order: HNSW's exact floats (its rows are the index's rows, in order), IVF-PQ's decoded codes."""
    if not len(ids):
        return np.zeros((0, ann.d), dtype=np.float32)
    if not spec.labels_are_ids:
        return ann.reconstruct_n(0, ann.ntotal).astype(np.float32)
    rec = ann.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64)).astype(np.float32)
    return rec / np.maximum(np.linalg.norm(rec, axis=1, keepdims=True), 1e-12)


def search(ann: Any, spec: AnnSpec, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores (m, k), labels (m, k)) from the structure (labels -1 where it found fewer than k); labels are
    FAISS ids when `spec.labels_are_ids`, else row positions."""
    if spec.kind == "hnsw":
        ann.hnsw.efSearch = max(spec.ef_search, k)
    else:
        ann.nprobe = min(spec.ivf_nprobe, ann.nlist)
    return ann.search(np.ascontiguousarray(queries, dtype=np.float32), k)

"""The approximate-neighbour structure an index may carry for proposing candidates.

The exact float vectors always stay in the index (the sequence search re-scores candidates on them), so an
approximate search only decides which (track, offset) candidates are proposed; the score of each candidate is
exact. `kind`:
- `flat`: no extra structure; proposals come from the exact inner-product scan (best for small catalogs);
- `hnsw`: a FAISS HNSW graph over the same rows (inner product): ~1 ms per query window instead of a scan of
  every row, at a small loss of recall that the exact re-scoring mostly absorbs.
Labels returned by the structure are row positions of `EmbeddingIndex.vectors()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KINDS = ("flat", "hnsw")


@dataclass(frozen=True)
class AnnSpec:
    """kind (flat | hnsw); hnsw_m: graph degree; ef_construction / ef_search: HNSW's build and search beams."""

    kind: str
    hnsw_m: int
    ef_construction: int
    ef_search: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"index type {self.kind!r}: known {KINDS}")
        if min(self.hnsw_m, self.ef_construction, self.ef_search) < 1:
            raise ValueError("hnsw_m, ef_construction and ef_search must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FLAT = AnnSpec("flat", 32, 80, 128)


def build(spec: AnnSpec, vectors: np.ndarray) -> Any:
    """The structure over vectors (n, dim) float32 unit rows (label i = row i); None for `flat`."""
    if spec.kind == "flat":
        return None
    import faiss

    ann = faiss.IndexHNSWFlat(vectors.shape[1], spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    ann.hnsw.efConstruction = spec.ef_construction
    ann.hnsw.efSearch = spec.ef_search
    if vectors.shape[0]:
        ann.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return ann


def extend(ann: Any, vectors: np.ndarray) -> None:
    """Append rows (the labels continue where the structure ends)."""
    if ann is not None and vectors.shape[0]:
        ann.add(np.ascontiguousarray(vectors, dtype=np.float32))


def search(ann: Any, spec: AnnSpec, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores (m, k), labels (m, k)) from the structure (labels -1 where it found fewer than k)."""
    ann.hnsw.efSearch = max(spec.ef_search, k)
    return ann.search(np.ascontiguousarray(queries, dtype=np.float32), k)

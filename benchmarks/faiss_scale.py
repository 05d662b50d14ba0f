"""FAISS at catalog scale: exact, HNSW and IVF-PQ search at 1 M and 10 M vectors, and 100 k songs projected.
Prints markdown tables and writes them to --out.

Run: .venv/bin/python benchmarks/faiss_scale.py [--sizes 1000000 10000000] [--types hnsw ...] [--out FILE]

The table file is rewritten after every row (a stopped run keeps what it measured). With --types only the index
types whose names contain one of those words are built; the rows of the other types already in --out are kept
(e.g. `--sizes 10000000 --types hnsw --hnsw-max 10000000` adds the 10 M HNSW row: about 25 min, 13 GB of RAM).
The index types on real test queries (top-1 and bytes on disk): benchmarks/index_types.py.

1. Synthetic catalogs shaped like ours: the real index's window vectors (data/index), each copy turned by its
   own random rotation (a rotation keeps every similarity inside a copy, so each copy is a catalog as clustered
   as ours, unrelated to the others), cut to N. Queries: 200 batches of 17 windows (a 5 s query at the 0.25 s
   hop) = indexed windows plus noise at cosine ~0.8 to their original. Per type: build time, bytes per vector
   (serialized index / N), search time per batch (p50/p95 ms, one thread, top-10), recall@10 against the exact
   scan, and the mean cosine between a vector and what the index can give back for re-scoring.
2. 100 k songs (43 M windows at the 0.5 s hop): RAM and latency from the measured bytes per vector and the
   measured growth of search time from 1 M to 10 M.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from resonance.io import atomic_open

BATCH, K, NOISE = 17, 10, 0.75  # windows per 5 s query, neighbours, noise (cosine ~ 1 / sqrt(1 + 0.75^2) = 0.8)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, dim) float32 unit rows: rotated copies of `base`."""
    rng = np.random.default_rng(seed)
    out, d = np.empty((n, base.shape[1]), dtype=np.float32), base.shape[1]
    for start in range(0, n, base.shape[0]):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        take = min(base.shape[0], n - start)
        out[start:start + take] = base[:take] @ q.astype(np.float32) if start else base[:take]
    return out


def family(name: str) -> str:
    """An index type's name without its list count (IVF4096 at 1 M and IVF8192 at 10 M are one family)."""
    import re

    return re.sub(r"IVF\d+", "IVF", name)


def make_types(d: int, n: int, hnsw_max: int) -> dict:
    import faiss

    nlist = 4096 if n <= 2_000_000 else 8192
    types = {"flat (exact, float32)": lambda: faiss.IndexFlatIP(d)}
    if n <= hnsw_max:
        def hnsw():
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction, index.hnsw.efSearch = 80, 128
            return index
        types["HNSW32 (floats in the graph)"] = hnsw
    for m in (32, 64):
        types[f"IVF{nlist}-PQ{m}x8, nprobe 32"] = (
            lambda m=m: faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT))
    return types


def index_bytes(index) -> int:
    """The size of the index as FAISS writes it, streamed to a temporary file (serializing to memory would hold a
    second copy: 8 GB more for HNSW at 10 M vectors)."""
    import os
    import tempfile

    import faiss

    fd, tmp = tempfile.mkstemp(suffix=".faiss")
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        return os.path.getsize(tmp)
    finally:
        os.unlink(tmp)


def measure(xb: np.ndarray, queries: np.ndarray, truth: np.ndarray, make, name: str, seed: int) -> dict:
    """Build one index over xb, time its search of the query batches, compare with the exact truth."""
    import faiss

    t0 = time.perf_counter()
    index = make()
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        index.train(xb[rng.choice(xb.shape[0], min(xb.shape[0], 30 * index.nlist), replace=False)])
        index.nprobe = 32
    for start in range(0, xb.shape[0], 500_000):
        index.add(xb[start:start + 500_000])
    build_s = time.perf_counter() - t0
    size = index_bytes(index)
    faiss.omp_set_num_threads(1)
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, rows = index.search(q, K)
        times.append((time.perf_counter() - t) * 1000)
        found.append(rows)
    faiss.omp_set_num_threads(2)
    found = np.concatenate(found)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)])
    sample = np.arange(0, xb.shape[0], max(1, xb.shape[0] // 2000))[:2000]
    if isinstance(index, faiss.IndexIVFPQ):
        index.make_direct_map()
        back = np.stack([index.reconstruct(int(i)) for i in sample])
    else:
        back = xb[sample]
    cos = float(np.mean(np.sum(unit(back) * xb[sample], axis=1)))
    return {"name": name, "n": xb.shape[0], "build_s": build_s, "bytes": size / xb.shape[0],
            "p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)), "recall": recall,
            "cos": cos, "index": index}


def projection(results: list[dict]) -> list[str]:
    """Markdown lines: RAM and search p50 of each measured index family at 100 k songs (43 M windows), search
    time extrapolated along its measured growth between the smallest and the largest size (a power law); a family
    measured at one size only gets its RAM."""
    sizes = sorted({r["n"] for r in results})
    if not sizes:
        return []
    lines = ["## 100 k songs (about 43 M windows), projected from the measurements", "",
             "| index | RAM | search p50 (projected) |", "|---|---|---|"]
    for fam in dict.fromkeys(family(r["name"]) for r in results):
        rows = sorted((r for r in results if family(r["name"]) == fam), key=lambda r: r["n"])
        big, small = rows[-1], rows[0]
        if big["n"] > small["n"]:
            growth = (big["p50"] / small["p50"]) ** (np.log(43e6 / big["n"]) / np.log(big["n"] / small["n"]))
            p50 = f"{big['p50'] * growth:.0f} ms"
        else:
            p50 = f"not projected (measured at {big['n']:,} only)"
        lines.append(f"| {fam} | {big['bytes'] * 43e6 / 1e9:.1f} GB | {p50} |")
    return lines + ["", f"Search time is extrapolated along the measured growth from {sizes[0]:,} to {sizes[-1]:,} "
                    "windows (a power law, one thread); RAM is the largest measured size's bytes per vector x 43 M.", ""]


def table_rows(path: Path) -> list[tuple[list[str], str]]:
    """(cells, line) of every measured row of a table this script wrote."""
    out = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].replace(",", "").isdigit() and cells[3]:
            out.append((cells, line))
    return out


def read_table(path: Path) -> list[dict]:
    """The measured rows of a table this script wrote: (n, name, bytes, p50) per index type and size."""
    import re

    return [{"n": int(c[0].replace(",", "")), "name": re.sub(r", \d+ queries timed$", "", c[1]),
             "bytes": float(c[3]), "p50": float(c[5].removesuffix(" ms"))} for c, _ in table_rows(path)]


def wanted(name: str, types: list[str] | None) -> bool:
    """Whether --types asks for this index type (every type without --types)."""
    return not types or any(w.lower() in name.lower() for w in types)


def kept_rows(path: Path, types: list[str] | None, sizes: list[int]) -> list[str]:
    """The measured rows of --out that a --types run keeps: the other index types, and these types at other
    sizes."""
    if not types or not path.is_file():
        return []
    return [line for c, line in table_rows(path)
            if int(c[0].replace(",", "")) not in sizes or not wanted(c[1], types)]


def type_rank(name: str) -> int:
    """flat, HNSW, IVF-PQ32, IVF-PQ64: the order of the tables."""
    return next((i for i, w in enumerate(("flat", "HNSW", "PQ32", "PQ64")) if w in name), 9)


def row_order(line: str) -> tuple[int, int]:
    """Table rows by size, then type."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return int(cells[0].replace(",", "")), type_rank(cells[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--hnsw-max", type=int, default=2_000_000, help="build HNSW only up to this size (slow)")
    ap.add_argument("--index", default="data/index", help="real index whose vectors shape the synthetic ones")
    ap.add_argument("--flat-batches", type=int, default=20, help="queries timed on an exact scan over --hnsw-max")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--out", default="benchmarks/faiss_scale.md")
    ap.add_argument("--types", nargs="+", default=None,
                    help="build only the index types whose names contain one of these (case-insensitive); "
                         "keep the other rows already in --out")
    ap.add_argument("--project-only", action="store_true",
                    help="measure nothing: add the 100 k-song projection to the table already in --out")
    args = ap.parse_args()
    if args.project_only:
        out = Path(args.out)
        text = out.read_text().split("## 100 k songs")[0].rstrip("\n") + "\n\n"
        with atomic_open(out, "w") as fh:
            fh.write(text + "\n".join(projection(read_table(out))) + "\n")
        print(out.read_text())
        return

    import faiss

    from resonance.index.store import EmbeddingIndex

    base = np.ascontiguousarray(EmbeddingIndex.load(args.index).vectors())
    head = ["# FAISS at scale (`python benchmarks/faiss_scale.py`)", ""]
    lines = ["| vectors | index | build | bytes per vector | MB per hour of audio | search p50 | p95 | recall@10 "
             "| cosine of what re-scoring gets back |", "|---|---|---|---|---|---|---|---|---|"]

    def write(extra: list[str]) -> None:  # after every row: a long run that is stopped keeps what it measured
        with atomic_open(Path(args.out), "w") as fh:
            fh.write("\n".join(head + ["## Synthetic catalogs", ""] + lines + extra) + "\n")

    kept = kept_rows(Path(args.out), args.types, args.sizes)
    lines += kept
    write([])
    results = read_table(Path(args.out)) if kept else []
    rng = np.random.default_rng(args.seed)
    for n in args.sizes:
        xb = synthetic(base, n, args.seed)
        picks = rng.choice(n, 200 * BATCH, replace=False)
        q = unit(xb[picks] + NOISE * rng.standard_normal((picks.size, xb.shape[1])).astype(np.float32)
                 / np.sqrt(xb.shape[1]))
        batches = q.reshape(200, BATCH, -1)
        exact = faiss.IndexFlatIP(xb.shape[1])
        exact.add(xb)
        _, truth = exact.search(q, K)
        del exact
        for name, make in make_types(xb.shape[1], n, args.hnsw_max).items():
            if not wanted(name, args.types):
                continue
            few = name.startswith("flat") and n > args.hnsw_max  # an exact scan of 10 M: a few batches suffice
            use = batches[: args.flat_batches] if few else batches
            r = measure(xb, use, truth[: use.shape[0] * BATCH], make, name, args.seed)
            r.pop("index")
            results = [x for x in results if (x["n"], family(x["name"])) != (n, family(name))] + [r]
            label = f"{name}, {use.shape[0]} queries timed" if few else name
            lines = [x for x in lines if not x.startswith(f"| {n:,} | {name}")]
            lines.append(f"| {n:,} | {label} | {r['build_s']:.0f} s | {r['bytes']:.0f} | "
                         f"{r['bytes'] * 7200 / 1e6:.2f} | {r['p50']:.1f} ms | {r['p95']:.1f} ms | {r['recall']:.3f} | "
                         f"{r['cos']:.3f} |")
            print(lines[-1], flush=True)
            write([])
        if n > args.hnsw_max and not any(x.startswith(f"| {n:,} | HNSW32") for x in lines):
            lines.append(f"| {n:,} | HNSW32 | not built (over --hnsw-max: hours on 2 cores) | | | | | | |")
        del xb
    lines = lines[:2] + sorted(lines[2:], key=row_order)
    lines += ["", "Search: one thread, one 5 s query = 17 windows, top-10 each, 200 queries (fewer where noted). MB "
              "per hour: 7,200 windows per hour of reference audio (0.5 s hop).", ""]
    lines += projection(sorted(results, key=lambda r: (type_rank(r["name"]), r["n"])))
    write([])
    print("\n".join(head + lines))

if __name__ == "__main__":
    main()

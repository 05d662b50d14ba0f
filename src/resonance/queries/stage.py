"""`resonance queries`: the evaluation query sets (one folder per set under the output folder).

Each set draws excerpts of the longest query length from one catalog split (the songs are in the index) and from
the outside catalog (never indexed: false accepts), and renders each excerpt once under every grid cell; the
shorter queries are prefixes of those clips.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from resonance.catalog.manifest import Track, load_manifest
from resonance.config import QueriesParams, QuerySet, SimulateParams
from resonance.evaluate.queries import QUERIES_FORMAT, Query, write_query_table
from resonance.io import replace_dir
from resonance.queries.build import Excerpt, plan_excerpts, render_excerpt, set_seed
from resonance.simulate.chain import Banks, grid_cells


def outside_share(outside: list[Track], params: QueriesParams) -> dict[str, list[Track]]:
    """Split the outside tracks between the sets (seeded, disjoint, in proportion to outside_excerpts)."""
    rng = np.random.default_rng([params.seed, 0])
    order = [outside[i] for i in rng.permutation(len(outside))]
    weights = np.array([s.outside_excerpts for s in params.sets.values()], dtype=float)
    edges = np.round(np.cumsum(weights) / weights.sum() * len(order)).astype(int)
    starts = np.concatenate([[0], edges[:-1]])
    return {name: order[a:b] or order for name, a, b in zip(params.sets, starts, edges)}


def plan_set(name: str, qset: QuerySet, catalog: tuple[list[Track], Path], outside: tuple[list[Track], Path],
             params: QueriesParams) -> list[Excerpt]:
    """Excerpts of one set: in-catalog ones from `qset.split`, then the outside ones."""
    tracks, catalog_dir = catalog
    pool = [t for t in tracks if t.split == qset.split]
    if not pool:
        raise ValueError(f"queries.sets.{name}: the catalog has no `{qset.split}` tracks")
    rng = np.random.default_rng([params.seed, set_seed(name), 1])
    clip_s = max(params.lengths_s)
    inside = plan_excerpts(rng, pool, catalog_dir, clip_s, qset.excerpts, True, 0)
    if not qset.outside_excerpts:
        return inside
    rng = np.random.default_rng([params.seed, set_seed(name), 2])
    out = plan_excerpts(rng, outside[0], outside[1], clip_s, qset.outside_excerpts, False, len(inside))
    return inside + out


def render_set(name: str, excerpts: list[Excerpt], params: QueriesParams, sim: SimulateParams, banks: Banks,
               out_dir: Path, progress: bool = True) -> dict:
    """Render every excerpt x grid cell into `out_dir` (atomically swapped in); returns the header."""
    from resonance.progress import progress as progress_bar

    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    n_cells = len(grid_cells(sim.grid))
    try:
        queries: list[Query] = []
        with ThreadPoolExecutor(max_workers=max(1, params.workers)) as pool, \
                progress_bar(total=len(excerpts) * n_cells, desc=f"queries: {name}", unit="clip",
                             disable=not progress) as bar:
            for qs in pool.map(lambda ex: render_excerpt(ex, name, params.seed, sim, banks, tmp, params.lengths_s),
                                   excerpts):
                queries += qs
                bar.update(n_cells)
        header = {"set": name, "split": excerpts[0].track.split, "sample_rate": banks.sr, "queries": len(queries),
                  "excerpts": sum(e.in_catalog for e in excerpts),
                  "outside_excerpts": sum(not e.in_catalog for e in excerpts),
                  "in_catalog": sum(q.in_catalog for q in queries),
                  "out_of_catalog": sum(not q.in_catalog for q in queries),
                  "lengths_s": params.lengths_s, "cells": [c[0] for c in grid_cells(sim.grid)],
                  "clips": len(excerpts) * n_cells,
                  "hours": round(len(excerpts) * n_cells * max(params.lengths_s) / 3600, 3)}
        write_query_table(tmp, queries, header)
        replace_dir(tmp, out_dir)
        header["format"] = QUERIES_FORMAT
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return header


def run(params: QueriesParams, sim: SimulateParams, banks: Banks, catalog_dir: Path, outside_dir: Path,
        out_dir: Path, progress: bool = True) -> list[dict]:
    """Build every query set under `out_dir`; returns their headers."""
    tracks = load_manifest(catalog_dir)
    outside = outside_share(load_manifest(outside_dir), params)
    headers = []
    for name, qset in params.sets.items():
        excerpts = plan_set(name, qset, (tracks, catalog_dir), (outside[name], outside_dir), params)
        headers.append(render_set(name, excerpts, params, sim, banks, out_dir / name, progress))
    return headers


def describe(headers: list[dict], out_dir: Path) -> str:
    """One line per set."""
    return "\n".join(f"queries: {h['set']}: {h['queries']} queries ({h['in_catalog']} in catalog, "
                     f"{h['out_of_catalog']} out of catalog) from {h['excerpts']} + {h['outside_excerpts']} "
                     f"excerpts, {h['clips']} clips ({h['hours']:.1f} h) -> {out_dir / h['set']}"
                     for h in headers)

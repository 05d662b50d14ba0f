"""`resonance catalog`: fetch the profile's packages (cached), then build the catalog folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from resonance.catalog.build import build_catalog
from resonance.catalog.debs import ExtractedPackage, fetch_package
from resonance.catalog.dedupe import load_reference
from resonance.config import CatalogParams, check_regex

log = logging.getLogger(__name__)


def fetch_all(params: CatalogParams, cache_dir: Path, profile: str | None = None,
              progress: bool = True) -> list[ExtractedPackage]:
    """Extracted audio of every package in the profile; downloads only what the cache lacks."""
    from tqdm import tqdm

    _, sources = params.selected(profile)
    for name, src in sources.items():
        check_regex(src.pattern, f"catalog.sources.{name}.pattern")
    out = []
    bar = tqdm(sources.items(), desc="catalog: fetch", unit="pkg", disable=not progress, dynamic_ncols=True)
    for name, src in bar:
        bar.set_postfix_str(name)
        pkg = fetch_package(name, src.container, src.pattern, cache_dir, params.keep_debs)
        if not pkg.members:
            log.warning("catalog: %s %s has no member matching %r", name, pkg.version, src.pattern)
        out.append(pkg)
    return out


def run(params: CatalogParams, out_dir: Path, cache_dir: Path, profile: str | None = None,
        limit: int | None = None, progress: bool = True, exclude: Path | None = None, landmark: Any = None) -> dict:
    """Fetch, build and return the catalog header (counts); `limit` overrides the profile's max_tracks.

    `exclude`: a built catalog whose songs must not reappear here (an out-of-catalog set for open-set tests):
    no exact or near copy, and with `landmark` (a LandmarkConfig) no track sharing audio with one of its songs.
    """
    prof, _ = params.selected(profile)
    reference = load_reference(exclude) if exclude is not None else None
    packages = fetch_all(params, cache_dir, profile, progress)
    max_tracks = limit if limit is not None else prof.max_tracks
    return build_catalog(packages, params, out_dir, max_tracks=max_tracks, progress=progress, reference=reference,
                         landmark=landmark)


def describe(header: dict, out_dir: Path) -> str:
    """One short paragraph saying what was written."""
    s = header["splits"]
    return (f"catalog: {header['tracks']} tracks, {header['hours']:.1f} h from {header['packages']} packages "
            f"(train {s['train']}, val {s['val']}, unseen {s['unseen']}); "
            f"{header['skipped']} file(s) skipped, {header['duplicates']} duplicate(s) dropped "
            f"(reasons in {out_dir}/skipped.jsonl) -> {out_dir}")

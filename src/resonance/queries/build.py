"""Evaluation queries: random excerpts of indexed (and never-indexed) songs, each rendered under every grid cell;
the queries of each length are prefixes of that one rendered clip.

Every random draw comes from a generator seeded by (seed, set, excerpt, cell), so a query does not depend on
how many others there are or in which order threads render them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resonance.catalog.manifest import Track
from resonance.config import GridParams, SimulateParams
from resonance.evaluate.queries import Query
from resonance.simulate.chain import (
    Banks,
    apply_condition,
    grid_cells,
    sample_grid_cell,
)


@dataclass(frozen=True)
class Excerpt:
    """Where one excerpt comes from: a track of the catalog (in_catalog) or of the outside set."""

    index: int
    track: Track
    track_dir: Path  # the catalog folder the track's audio_path is relative to
    offset_s: float
    length_s: float
    in_catalog: bool


def set_seed(name: str) -> int:
    """A stable integer for a set name (part of every generator seed)."""
    return zlib.crc32(name.encode())


def plan_excerpts(rng: np.random.Generator, tracks: list[Track], track_dir: Path, length_s: float, n: int,
                  in_catalog: bool, start: int) -> list[Excerpt]:
    """`n` excerpts of `length_s` seconds, spread evenly over the tracks long enough (each track once before any
    track twice, in a seeded order), at offsets uniform in each track."""
    fits = [t for t in tracks if t.duration_s >= length_s + 1.0]
    if not fits:
        raise ValueError(f"no track is longer than {length_s + 1:g} s to cut a {length_s:g} s excerpt from")
    order = np.concatenate([rng.permutation(len(fits)) for _ in range(-(-n // len(fits)))])[:n]
    out: list[Excerpt] = []
    for i in order:
        t = fits[int(i)]
        offset = float(np.round(rng.uniform(0.0, t.duration_s - length_s), 3))
        out.append(Excerpt(start + len(out), t, track_dir, offset, float(length_s), in_catalog))
    return out


def read_segment(ex: Excerpt, preroll_s: float) -> tuple[np.ndarray, int]:
    """The excerpt's audio with up to `preroll_s` seconds before it; returns (audio (n,), preroll samples)."""
    import soundfile as sf

    sr = ex.track.sample_rate
    pre = int(min(preroll_s, ex.offset_s) * sr)
    start = int(round(ex.offset_s * sr)) - pre
    stop = start + pre + int(round(ex.length_s * sr))
    audio, file_sr = sf.read(str(ex.track_dir / ex.track.audio_path), start=start, stop=stop, dtype="float32")
    if file_sr != sr or audio.ndim != 1 or audio.size != stop - start:
        raise ValueError(f"{ex.track.track_id}: cannot read {ex.length_s:g} s at {ex.offset_s:g} s")
    return audio, pre


def render_excerpt(ex: Excerpt, set_name: str, seed: int, sim: SimulateParams, banks: Banks, out_dir: Path,
                   lengths_s: list[float]) -> list[Query]:
    """Render one excerpt under every grid cell, write one FLAC per cell, and return a query per cell and length
    in `lengths_s` (each the first length_s seconds of that clip; ground truth included)."""
    from resonance.audio import to_pcm16, write_flac

    audio, pre = read_segment(ex, sim.preroll_s)
    queries = []
    excerpt = f"{set_name}-{ex.index:05d}"
    for c, (cell, snr_db, reverb, clipping) in enumerate(grid_cells(sim.grid)):
        rng = np.random.default_rng([seed, set_seed(set_name), ex.index, c])
        cond = sample_grid_cell(rng, snr_db, reverb, clipping, sim, banks)
        degraded = apply_condition(audio, cond, banks)[pre:]
        rel = f"audio/{excerpt}-{cell}.flac"
        write_flac(out_dir / rel, to_pcm16(degraded), banks.sr)
        for length_s in lengths_s:
            queries.append(Query(
                query_id=f"{excerpt}-{cell}-len{length_s:g}", audio_path=rel, excerpt=excerpt,
                track_id=ex.track.track_id if ex.in_catalog else None,
                offset_s=ex.offset_s if ex.in_catalog else None, length_s=float(length_s), snr_db=snr_db,
                reverb=reverb, rt60_s=cond.rt60_s, clipping=is_clipping(sim.grid, clipping),
                condition={**cond.to_dict(), "source_track": ex.track.track_id, "source_offset_s": ex.offset_s},
                in_catalog=ex.in_catalog))
    return queries


def is_clipping(grid: GridParams, clipping: str) -> bool:
    """Whether a grid clipping level turns the phone's clipping on."""
    return grid.clipping[clipping] != "none"

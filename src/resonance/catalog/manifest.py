"""The catalog manifest: one JSON line per track, and a `catalog.json` header carrying the format version.

Layout of a catalog folder:
    catalog.json      format version, sample rate, counts, what was skipped or dropped as duplicate
    manifest.jsonl    one `Track` per line
    skipped.jsonl     one line per source file that did not make it, with the reason
    audio/ID.flac     mono 16-bit FLAC at the catalog's sample rate
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from resonance.errors import ResonanceError
from resonance.io import read_jsonl

CATALOG_FORMAT = 1
SPLITS = ("train", "val", "unseen")


class ManifestError(ResonanceError, RuntimeError):
    """A catalog folder that is missing, of another format version, or inconsistent."""


@dataclass(frozen=True)
class Track:
    """One reference track. `duration_s` in seconds, `sample_rate` in Hz, `sha256` of the 16-bit PCM."""

    track_id: str
    title: str
    artist: str
    package: str
    package_version: str
    source_path: str
    license: str
    duration_s: float
    sample_rate: int
    sha256: str
    gain_db: float  # applied to keep the peak under full scale (0 for most tracks)
    trim_start_s: float  # leading silence cut from the decoded source
    split: str
    audio_path: str  # relative to the catalog folder

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Track":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_manifest(catalog_dir: str | Path) -> list[Track]:
    """Tracks of a built catalog, after checking its format version."""
    catalog_dir = Path(catalog_dir)
    header = read_header(catalog_dir)
    if header.get("format") != CATALOG_FORMAT:
        raise ManifestError(f"{catalog_dir}: catalog format {header.get('format')!r}, this code reads "
                            f"{CATALOG_FORMAT}: rebuild it with `resonance catalog`")
    return [Track.from_dict(r) for r in read_jsonl(catalog_dir / "manifest.jsonl")]


def read_header(catalog_dir: str | Path) -> dict[str, Any]:
    """The catalog.json header (raises ManifestError if the folder is not a built catalog)."""
    path = Path(catalog_dir) / "catalog.json"
    if not path.is_file():
        raise ManifestError(f"{catalog_dir}: not a built catalog (no catalog.json): run `resonance catalog`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: corrupt header: {exc}") from None

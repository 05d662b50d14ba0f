"""The query-set contract between the simulator (`resonance queries`) and the evaluation harness.

Layout of a query-set folder:
    queries.json          header: {"format": QUERIES_FORMAT, ...anything else the writer records}
    queries.jsonl         one `Query` per line (fields below)
    audio/<clip>.flac     mono 16-bit FLAC at the set's sample rate (16 kHz)

A query is the first `length_s` seconds of its audio file: the queries of one excerpt and grid cell share one
rendered clip of the longest length (a 3 s query is the first 3 s of the 10 s recording), so lengths compare on
the same music and conditions (paired) and one embedding pass of the clip serves every prefix.

Row fields: query_id (str), audio_path (str, relative to the folder), excerpt (str: the excerpt the clip was cut
from; queries of one excerpt are not independent, intervals resample excerpts), track_id (str, null = out of catalog),
offset_s (float: where the excerpt starts in the track, s; null when out of catalog), length_s (float, s),
snr_db (float, null = no crowd), reverb ("dry" | "hall" | "arena"), rt60_s (float, s), clipping (bool),
condition (dict: the full sampled simulation parameters, opaque here), in_catalog (bool).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from resonance.errors import ResonanceError
from resonance.io import read_jsonl, write_json, write_jsonl

QUERIES_FORMAT = 2
REVERBS = ("dry", "hall", "arena")
HEADER_NAME = "queries.json"
ROWS_NAME = "queries.jsonl"


class QuerySetError(ResonanceError, ValueError):
    """A query-set folder that is missing, of another format version, or has an invalid row."""


@dataclass(frozen=True)
class Query:
    """One query clip and its ground truth (see the module docstring for each field's meaning and units)."""

    query_id: str
    audio_path: str
    excerpt: str
    track_id: str | None
    offset_s: float | None
    length_s: float
    snr_db: float | None
    reverb: str
    rt60_s: float
    clipping: bool
    condition: Mapping[str, Any] = field(hash=False)
    in_catalog: bool

    def __post_init__(self) -> None:
        _check_query(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Query:
        """A Query from one JSON row; QuerySetError naming the missing field (extra fields are ignored)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise QuerySetError(f"missing field(s) {missing}")
        return cls(**{n: row[n] for n in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON row of this query."""
        row = asdict(self)
        row["condition"] = dict(self.condition)
        return row


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_query(q: Query) -> None:
    """QuerySetError naming the first field that breaks the contract."""
    def bad(name: str, want: str) -> QuerySetError:
        return QuerySetError(f"query {q.query_id!r}: field {name!r} must be {want}, got {getattr(q, name)!r}")

    if not isinstance(q.query_id, str) or not q.query_id:
        raise bad("query_id", "a non-empty string")
    path = PurePosixPath(q.audio_path) if isinstance(q.audio_path, str) else None
    if path is None or not q.audio_path or path.is_absolute() or ".." in path.parts:
        raise bad("audio_path", "a path relative to the query-set folder")
    if not isinstance(q.excerpt, str) or not q.excerpt:
        raise bad("excerpt", "a non-empty string")
    if q.track_id is not None and (not isinstance(q.track_id, str) or not q.track_id):
        raise bad("track_id", "a non-empty string or null")
    if q.offset_s is not None and (not _is_number(q.offset_s) or q.offset_s < 0):
        raise bad("offset_s", "a number >= 0 or null")
    if not _is_number(q.length_s) or q.length_s <= 0:
        raise bad("length_s", "a number > 0")
    if q.snr_db is not None and not _is_number(q.snr_db):
        raise bad("snr_db", "a finite number or null")
    if q.reverb not in REVERBS:
        raise bad("reverb", f"one of {REVERBS}")
    if not _is_number(q.rt60_s) or q.rt60_s < 0:
        raise bad("rt60_s", "a number >= 0")
    for name in ("clipping", "in_catalog"):
        if not isinstance(getattr(q, name), bool):
            raise bad(name, "true or false")
    if not isinstance(q.condition, Mapping):
        raise bad("condition", "an object")
    if q.in_catalog != (q.track_id is not None):
        raise QuerySetError(f"query {q.query_id!r}: in_catalog={q.in_catalog} but track_id={q.track_id!r} "
                            f"(an in-catalog query names its track; an out-of-catalog one has track_id null)")
    if q.in_catalog != (q.offset_s is not None):
        raise QuerySetError(f"query {q.query_id!r}: in_catalog={q.in_catalog} but offset_s={q.offset_s!r} "
                            f"(in-catalog queries carry their offset; out-of-catalog ones have offset_s null)")


def load_queries(folder: str | Path) -> list[Query]:
    """Every query of a query-set folder, after checking its header's format and every row.

    Raises QuerySetError (naming the folder, line and field) for a missing header, another format version,
    an invalid row, a duplicate query_id or a missing audio file.
    """
    folder = Path(folder)
    header_path, rows_path = folder / HEADER_NAME, folder / ROWS_NAME
    if not header_path.is_file():
        raise QuerySetError(f"{folder}: not a query set (no {HEADER_NAME}): build it with `resonance queries`")
    try:
        header = json.loads(header_path.read_text())
    except json.JSONDecodeError as exc:
        raise QuerySetError(f"{header_path}: corrupt header: {exc}") from None
    version = header.get("format") if isinstance(header, dict) else None
    if version != QUERIES_FORMAT:
        raise QuerySetError(f"{folder}: query-set format {version!r}, this code reads {QUERIES_FORMAT}: "
                            f"rebuild it with `resonance queries`")
    if not rows_path.is_file():
        raise QuerySetError(f"{folder}: {ROWS_NAME} is missing: rebuild it with `resonance queries`")
    try:
        rows = read_jsonl(rows_path)
    except json.JSONDecodeError as exc:
        raise QuerySetError(f"{rows_path}: not valid JSON lines: {exc}") from None
    queries: list[Query] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise QuerySetError(f"{rows_path}: row {line}: expected a JSON object")
        try:
            query = Query.from_dict(row)
        except QuerySetError as exc:
            raise QuerySetError(f"{rows_path}: row {line}: {exc}") from None
        if query.query_id in seen:
            raise QuerySetError(f"{rows_path}: row {line}: duplicate query_id {query.query_id!r}")
        if not (folder / query.audio_path).is_file():
            raise QuerySetError(f"{rows_path}: row {line}: audio file {query.audio_path!r} is missing")
        seen.add(query.query_id)
        queries.append(query)
    return queries


def write_query_table(folder: str | Path, queries: Iterable[Query], header: Mapping[str, Any]) -> int:
    """Write queries.jsonl, then the queries.json header (`header` plus the format), each atomically.

    The audio files are the writer's business. Returns the number of rows written.
    """
    if "format" in header:
        raise ValueError("header: 'format' is set by write_query_table, do not pass it")
    folder = Path(folder)
    n = write_jsonl(folder / ROWS_NAME, (q.to_dict() for q in queries))
    write_json(folder / HEADER_NAME, {"format": QUERIES_FORMAT, **header, "n_queries": n})
    return n


def flac_loader(folder: str | Path, sr: int) -> Callable[[Query], np.ndarray]:
    """An `audio_loader` for the harness: a query's audio as mono float32 (n_samples,) at `sr` Hz: the first
    `length_s` seconds of its FLAC (the last clip read is kept, so the prefixes of one clip read it once).

    The loader raises resonance.audio.AudioError if a file is unreadable, not at `sr` Hz, or shorter than the query.
    """
    from resonance.audio import AudioError, read_audio

    root = Path(folder)
    last: dict[str, np.ndarray] = {}

    def load(query: Query) -> np.ndarray:
        if query.audio_path not in last:
            last.clear()
            last[query.audio_path] = read_audio(root / query.audio_path, sr)[0]
        audio = last[query.audio_path]
        n = int(round(query.length_s * sr))
        if audio.size < n:
            raise AudioError(f"{root / query.audio_path}: {audio.size / sr:.2f} s of audio, query "
                             f"{query.query_id} needs {query.length_s:g} s")
        return audio[:n]

    return load

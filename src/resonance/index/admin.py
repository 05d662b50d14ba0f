"""`resonance index remove|info`: take tracks out of an index, and say what an index holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resonance.index.stage import IndexInputError, _write_lock
from resonance.index.store import EmbeddingIndex


def remove_tracks(track_ids: Sequence[str], index_dir: Path) -> dict[str, Any]:
    """Remove `track_ids` and their windows from the index at `index_dir` (one atomic save under the writers'
    lock). An id that is not indexed raises IndexInputError naming it, and nothing is written. Returns removed,
    tracks, windows, index."""
    if not track_ids:
        raise IndexInputError("index remove: give at least one TRACK_ID")
    with _write_lock(index_dir):
        index = EmbeddingIndex.load(index_dir)
        missing = sorted({t for t in track_ids if index.position(t) is None})
        if missing:
            raise IndexInputError(f"index remove: {', '.join(missing)} not in {index_dir} (see `resonance index "
                                  f"info --tracks`); nothing was removed")
        for track_id in dict.fromkeys(track_ids):
            index.remove_track(track_id)
        index.save(index_dir)
    return {"removed": list(dict.fromkeys(track_ids)), "tracks": len(index.tracks), "windows": index.n_windows,
            "index": str(index_dir)}


def index_info(index_dir: Path) -> dict[str, Any]:
    """What the index at `index_dir` holds, read and checksum-verified by a full load: tracks, windows, bytes on
    disk, bytes per window, hours of reference audio, type (flat | hnsw | ivfpq and its settings), model sha256, build id,
    format, window and hop (s), dim, and the tracks (id, title, duration_s, windows)."""
    index = EmbeddingIndex.load(index_dir)
    head = json.loads((index_dir / "index.json").read_text())
    disk = sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())
    first, rows = index.slot_rows()
    per_track = [int((rows[first[i]:first[i + 1]] >= 0).sum()) for i in range(len(index.tracks))]
    hours = sum(t.duration_s for t in index.tracks) / 3600
    return {"index": str(index_dir), "format": head["format"], "build_id": head.get("build_id"),
            "type": index.ann_spec.to_dict(), "model_sha256": index.model_sha256, "tracks": len(index.tracks),
            "windows": index.n_windows, "dim": index.dim, "window_s": index.window_s, "hop_s": index.hop_s,
            "bytes": disk, "bytes_per_window": round(disk / max(1, index.n_windows), 1), "hours": round(hours, 3),
            "mb_per_hour": round(disk / 1e6 / hours, 3) if hours else None, "checksums": "verified",
            "track_list": [{"track_id": t.track_id, "title": t.title, "duration_s": t.duration_s, "windows": n}
                           for t, n in zip(index.tracks, per_track)]}


def describe_info(info: dict[str, Any], tracks: bool) -> str:
    """Readable lines for `index info` (with every track when `tracks`)."""
    kind = info["type"]
    extra = ", ".join(f"{k}={v}" for k, v in kind.items() if k != "kind")
    lines = [f"index {info['index']} (format {info['format']}, build {info['build_id']}, checksums verified)",
             f"  type: {kind['kind']}{f' ({extra})' if extra else ''}; "
             + ("PQ codes only: re-scored on their reconstructions" if kind["kind"] == "ivfpq"
                else "float vectors kept for exact re-scoring"),
             f"  model: {info['model_sha256'][:16]}...; windows of {info['window_s']:g} s every {info['hop_s']:g} s, "
             f"dim {info['dim']}",
             f"  {info['tracks']:,} tracks, {info['windows']:,} windows, {info['hours']:.1f} h of audio",
             f"  {info['bytes'] / 1e6:.1f} MB on disk ({info['bytes_per_window']:.0f} bytes per window, "
             f"{info['mb_per_hour'] or 0:.2f} MB per hour of audio)"]
    if tracks:
        lines += [f"  {t['track_id']}\t{t['windows']} windows\t{t['duration_s']:.1f} s\t{t['title']}"
                  for t in info["track_list"]]
    return "\n".join(lines)

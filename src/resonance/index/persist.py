"""Saving and loading an index folder: whole, atomic, checksummed.

An `hnsw` or `ivfpq` index is saved without a float store: its ANN structure (ann.faiss) gives the rows back.
A save writes every file into a temp folder beside the target, fsyncs them and swaps the folder in with one
rename (readers see the old index or the new one, never a mix). index.json, written last, carries the format
version, a build id shared by every part, and the sha256 of each other file: a load re-hashes what it read, so a
truncated or altered file is a clear `EmbeddingIndexError`, never a crash or a wrong answer. A read that overlaps a
concurrent swap (the build id changed under it) is retried.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from resonance.index.store import INDEX_FORMAT, EmbeddingIndex, EmbeddingIndexError, TrackInfo


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_index(index: EmbeddingIndex, folder: Path) -> None:
    """Write `index` to `folder` (replacing what is there) as described in the module docstring."""
    import faiss

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}.", dir=folder.parent))
    try:
        build_id = uuid.uuid4().hex
        buf = io.BytesIO()
        np.savez(buf, **index.arrays(), build_id=np.array(build_id))
        parts = {"windows.npz": buf.getvalue(),
                 "tracks.jsonl": "".join(json.dumps(asdict(t)) + "\n" for t in index.tracks).encode()}
        structure = index.ann_structure()
        if structure is not None:  # saved, so a load never rebuilds it
            parts["ann.faiss"] = faiss.serialize_index(structure).tobytes()
        index.compact()  # a compressed index: from now on in memory as it will be loaded (the reconstructions)
        if structure is None or not index.ann_spec.holds_rows:
            parts["index.faiss"] = faiss.serialize_index(index.faiss).tobytes()
        for name, data in parts.items():
            (tmp / name).write_bytes(data)
        head = {**index.header(build_id), "sha256": {name: _sha256(data) for name, data in parts.items()}}
        (tmp / "index.json").write_text(json.dumps(head, indent=2) + "\n")
        for name in ("index.json", *parts):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_index(folder: Path, model_sha256: str | None = None, attempts: int = 3) -> EmbeddingIndex:
    """Read the index folder `folder`; EmbeddingIndexError when missing, corrupt, of another format, or (with
    `model_sha256`) built with another model."""
    if not (folder / "index.json").is_file():
        raise EmbeddingIndexError(f"{folder}: no index here (build one with `resonance index build`, or "
                                  f"`resonance index add FILE`, or pass --index)")
    for attempt in range(attempts):
        try:
            index = _read(folder)
            break
        except _TornRead:
            if attempt == attempts - 1:
                raise EmbeddingIndexError(f"{folder}: its files belong to different saves (being rewritten "
                                          f"concurrently?); try again") from None
    if model_sha256 is not None and index.model_sha256 != model_sha256:
        raise EmbeddingIndexError(
            f"{folder}: built with another model (sha256 {index.model_sha256[:12]}..., this model is "
            f"{model_sha256[:12]}...): rebuild it with `resonance index build`, or pass the matching --model")
    return index


def read_header(folder: Path) -> dict[str, Any]:
    """index.json of an index folder (EmbeddingIndexError when missing, unreadable or of another format)."""
    try:
        head = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise EmbeddingIndexError(f"{folder}: unreadable index header ({type(exc).__name__}: {exc})") from None
    if not isinstance(head, dict) or head.get("format") != INDEX_FORMAT:
        found = head.get("format") if isinstance(head, dict) else None
        raise EmbeddingIndexError(f"{folder}: index format {found!r}, this code reads {INDEX_FORMAT}: "
                                  f"rebuild it with `resonance index build`")
    return head


def _read(folder: Path) -> EmbeddingIndex:
    import faiss

    head = read_header(folder)
    names = _parts(head)
    try:
        data = {name: (folder / name).read_bytes() for name in names}
    except OSError:
        raise _TornRead from None  # a part vanished: swapped out under us (or deleted: the retry says so)
    if read_header(folder).get("build_id") != head.get("build_id"):
        raise _TornRead  # swapped while we read: some parts may come from the new save
    sums = head.get("sha256") or {}
    bad = [name for name in names if sums.get(name) != _sha256(data[name])]
    if bad:
        raise EmbeddingIndexError(f"{folder}: corrupt index: {', '.join(bad)} fail(s) the checksum in index.json "
                                  f"(truncated or altered); rebuild it with `resonance index build`")
    try:
        with np.load(io.BytesIO(data["windows.npz"])) as npz:
            arrays = {k: npz[k] for k in ("ids", "track", "slot")}
        tracks = [TrackInfo(**json.loads(line)) for line in data["tracks.jsonl"].decode().splitlines() if line]
        parts = {name: faiss.deserialize_index(np.frombuffer(data[name], dtype=np.uint8))
                 for name in ("index.faiss", "ann.faiss") if name in data}
        index = EmbeddingIndex.from_arrays(head, parts.get("index.faiss"), parts.get("ann.faiss"), arrays["ids"],
                                           arrays["track"], arrays["slot"], tracks)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise EmbeddingIndexError(f"{folder}: corrupt index ({type(exc).__name__}: {exc}); rebuild it") from None
    consistent = (index.faiss.ntotal == index.n_windows == head["n_windows"] and index.faiss.d == index.dim
                  and (index._ann is None or index._ann.ntotal == index.n_windows)
                  and len(index.tracks) == head["n_tracks"] and arrays["track"].size == arrays["slot"].size
                  and sum(t.n_windows for t in tracks) == index.n_windows)
    if not consistent:
        raise EmbeddingIndexError(f"{folder}: corrupt index (its parts disagree on the number of windows); "
                                  f"rebuild it")
    return index


def _parts(head: dict[str, Any]) -> list[str]:
    """The files an index with this header must have besides index.json: the float store (index.faiss) unless the
    header's checksums say it was saved without one, then the structure that holds the rows (ann.faiss)."""
    saved = head.get("sha256") or {}
    floats = "index.faiss" in saved or not saved
    return ["windows.npz", "tracks.jsonl", *(["index.faiss"] if floats else []),
            *(["ann.faiss"] if not floats or "ann.faiss" in saved else [])]


class _TornRead(Exception):
    """The files read come from two different saves."""


def swap_in(new_dir: Path, target: Path) -> None:
    """Put the fully written folder `new_dir` at `target`, replacing any folder there, atomically on Linux.

    An existing target is exchanged with `new_dir` in one renameat2(RENAME_EXCHANGE) call (no moment without an
    index), then the old copy (now at `new_dir`) is removed by the caller. Where that call is unavailable it falls
    back to `resonance.io.replace_dir` (a brief moment without `target`).
    """
    if not target.exists():
        os.replace(new_dir, target)
        return
    if _exchange(new_dir, target):
        return
    from resonance.io import replace_dir

    replace_dir(new_dir, target)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when not supported here."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a.resolve()), at_fdcwd, os.fsencode(b.resolve()), rename_exchange)
    return rc == 0

"""Crash-safe file output: every artifact is written to a temp path beside its target, then renamed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's folder; on success rename it over `target`, on error remove it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}.", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)  # mkstemp makes 0600 files; outputs are meant to be shared
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(target: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file for writing; it replaces `target` only if the block finishes without error."""
    with atomic_path(target) as tmp:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_checksummed(target: str | Path, chunks: Iterable[bytes | memoryview]) -> int:
    """Write `chunks` then their CRC-32 (uint32 little-endian) atomically; returns the CRC.

    The trailer lets a reader tell a complete file from a truncated or corrupted one.
    """
    crc = 0
    with atomic_open(target, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            crc = zlib.crc32(chunk, crc)
        fh.write(struct.pack("<I", crc))
    return crc


def write_report(target: str | Path, lines: list[str]) -> str:
    """Join a benchmark's markdown lines, print them and write them to `target` atomically; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_open(target) as fh:
        fh.write(text)
    return text


def write_json(target: str | Path, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_open(target) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


def write_jsonl(target: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows."""
    n = 0
    with atomic_open(target) as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file (blank lines ignored)."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def replace_dir(new_dir: str | Path, target: str | Path) -> None:
    """Swap a fully built folder into place: the old `target` is removed only after the new one is in."""
    new_dir, target = Path(new_dir), Path(target)
    old = target.with_name(f".old-{target.name}")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new_dir, target)
    if old.exists():
        shutil.rmtree(old)

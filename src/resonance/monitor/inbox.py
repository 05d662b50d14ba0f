"""The monitoring folders and the moves between them, each one rename (atomic), so a clip is always in exactly one
place and nothing is lost when a monitor run is killed at any point.

    inbox/NAME                     dropped here (any audio format); taken once unmodified for min_age_s
    processing/RUN/NAME            claimed by run RUN
    archive/RUN/NAME               processed: its features are in reports/RUN/
    rejected/RUN/NAME              unusable, with rejected/RUN/NAME.reason.json (why)
    reports/RUN/verdict.json       written last: the run is complete once it exists

Recovery (`recover`, at the start of every run): a processing/RUN/ whose verdict exists was complete, its clips
are archived; otherwise its clips go back to the inbox, to be processed again.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resonance.io import write_json

FOLDERS = ("inbox", "processing", "archive", "rejected", "reports", "reference")
VERDICT = "verdict.json"


@dataclass(frozen=True)
class Layout:
    """The monitoring root and its folders."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        if name in FOLDERS:
            return self.root / name
        raise AttributeError(name)

    def make(self) -> Layout:
        for name in FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        return self


def new_run_id() -> str:
    """A sortable, unique run id: UTC time and a random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/STEM.N.SUFFIX when that is taken (never overwrite a clip)."""
    target = folder / name
    n = 1
    while target.exists():
        stem, dot, suffix = name.partition(".")
        target = folder / f"{stem}.{n}{dot}{suffix}"
        n += 1
    return target


def move(path: Path, folder: Path) -> Path:
    """Rename `path` into `folder` (created), under a free name; returns the new path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, path.name)
    os.rename(path, target)
    return target


def recover(layout: Layout) -> dict[str, int]:
    """Finish or undo the runs a killed monitor left in processing/ (module docstring)."""
    done = {"archived": 0, "returned": 0}
    for run_dir in sorted(p for p in layout.processing.iterdir() if p.is_dir()):
        complete = (layout.reports / run_dir.name / VERDICT).is_file()
        for clip in sorted(p for p in run_dir.iterdir() if p.is_file()):
            move(clip, layout.archive / run_dir.name if complete else layout.inbox)
            done["archived" if complete else "returned"] += 1
        run_dir.rmdir()
    return done


def waiting(layout: Layout, min_age_s: float, now: float | None = None) -> list[Path]:
    """Inbox files ready to take: regular, not hidden, unmodified for min_age_s (still being copied otherwise)."""
    now = time.time() if now is None else now
    return sorted(p for p in layout.inbox.iterdir()
                  if p.is_file() and not p.name.startswith(".") and now - p.stat().st_mtime >= min_age_s)


def claim(layout: Layout, run_id: str, files: list[Path]) -> list[Path]:
    """Move `files` from the inbox into processing/RUN/; returns their new paths."""
    return [move(p, layout.processing / run_id) for p in files]


def reject(layout: Layout, run_id: str, clip: Path, reason: str, details: dict[str, Any] | None = None) -> Path:
    """Write rejected/RUN/NAME.reason.json, then move the clip beside it; returns its new path."""
    folder = layout.rejected / run_id
    target = _free_name(folder, clip.name)
    write_json(folder / f"{target.name}.reason.json", {"clip": clip.name, "run": run_id, "reason": reason,
                                                       **(details or {})})
    os.rename(clip, target)
    return target


def archive(layout: Layout, run_id: str, clips: list[Path]) -> list[Path]:
    """Move processed clips to archive/RUN/ (after the run's verdict is written); returns their new paths."""
    out = [move(p, layout.archive / run_id) for p in clips if p.exists()]
    run_dir = layout.processing / run_id
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
    return out


def release(layout: Layout, run_id: str, clips: list[Path]) -> None:
    """Put claimed clips back in the inbox (too few to judge yet: they wait for the next run)."""
    for p in clips:
        if p.exists():
            move(p, layout.inbox)
    run_dir = layout.processing / run_id
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()

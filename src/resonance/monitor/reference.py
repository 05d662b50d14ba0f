"""The reference distribution field clips are compared with: the features of simulated concert queries (by
default the val query clips, every grid condition), measured once with the same recognizer and cached in
monitoring/reference/ (features.csv + reference.json, keyed by the query set, the model and the feature
settings: a new champion or query set recomputes it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resonance.config.mlops import MonitorParams
from resonance.io import atomic_path, write_json

REFERENCE_FORMAT = 1


def reference_key(queries_dir: Path, model_sha256: str, p: MonitorParams) -> str:
    """What the cached reference depends on, as one hash."""
    rows = (queries_dir / "queries.jsonl").read_bytes()
    text = json.dumps({"format": REFERENCE_FORMAT, "queries": hashlib.md5(rows).hexdigest(), "model": model_sha256,
                       "n": p.reference_clips, "seed": p.reference_seed, "frame_s": p.frame_s,
                       "clip_level": p.clip_level}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reference_clips(queries_dir: Path, n: int, seed: int) -> list[Path]:
    """At most n distinct clip files of a query set (each clip holds every length of one excerpt and cell),
    a seeded draw in file order."""
    from resonance.evaluate.queries import load_queries

    paths = sorted({q.audio_path for q in load_queries(queries_dir)})
    if len(paths) > n:
        picked = np.random.default_rng(seed).choice(len(paths), size=n, replace=False)
        paths = [paths[i] for i in sorted(picked)]
    return [queries_dir / p for p in paths]


def load_reference(folder: Path, queries_dir: Path, model_sha256: str, p: MonitorParams,
                   describe_clip: Callable[[Path], dict[str, Any]], progress: bool = False) -> pd.DataFrame:
    """The reference feature table (one row per clip), from the cache when its key matches, else computed with
    `describe_clip(path) -> features` and cached."""
    from resonance.progress import progress as progress_bar

    key = reference_key(queries_dir, model_sha256, p)
    meta_path, table_path = folder / "reference.json", folder / "features.csv"
    if meta_path.is_file() and table_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return pd.read_csv(table_path)
    clips = reference_clips(queries_dir, p.reference_clips, p.reference_seed)
    rows = [{"clip": c.name, **describe_clip(c)}
            for c in progress_bar(clips, desc="monitor: reference", unit="clip", disable=not progress)]
    table = pd.DataFrame(rows)
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, index=False)
    write_json(meta_path, {"format": REFERENCE_FORMAT, "key": key, "queries": str(queries_dir),
                           "model_sha256": model_sha256, "clips": len(rows)})
    return table

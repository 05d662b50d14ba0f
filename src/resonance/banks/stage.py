"""`resonance banks`: make the RIR and crowd banks once, so applying a concert condition is fast.

Layout of the banks folder:
    banks.json        format version, sample rate, counts
    rirs.npz          CLASS_NNN -> (2, n_taps) float32 RIR pair (left and right PA stack to the phone)
    rooms.jsonl       per room: class, index, target and measured RT60, the drawn RoomSpec
    crowd/bed_NNN.flac  crowd beds (mono 16-bit), crowd.jsonl their BedSpecs, clips.jsonl the clips used
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from resonance.audio import read_audio, to_pcm16, write_flac
from resonance.banks.crowd import (
    add_synthetic_voices,
    build_beds,
    fetch_noise,
    load_clips,
)
from resonance.banks.rooms import build_rooms
from resonance.config import BanksParams
from resonance.errors import ResonanceError
from resonance.io import atomic_path, read_jsonl, replace_dir, write_json, write_jsonl
from resonance.simulate.chain import Banks

BANKS_FORMAT = 1
log = logging.getLogger(__name__)


class BanksError(ResonanceError, RuntimeError):
    """A banks folder that is missing, of another format, or incomplete."""


def run(params: BanksParams, sr: int, out_dir: Path, cache_dir: Path, progress: bool = True) -> dict:
    """Build rooms and crowd beds into a temp folder, then swap it in. Returns the banks.json header."""
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "crowd").mkdir(parents=True)
    try:
        rirs, rooms = build_rooms(params, sr, progress)
        with atomic_path(tmp / "rirs.npz") as path, open(path, "wb") as fh:
            np.savez(fh, **{f"{c}_{i:03d}": pair for c, pairs in rirs.items() for i, pair in enumerate(pairs)})
        write_jsonl(tmp / "rooms.jsonl", rooms)
        clips, clip_rows = load_clips(fetch_noise(params, cache_dir, progress), params, sr, progress)
        n_synth = add_synthetic_voices(clips, params, sr)
        beds, specs = build_beds(clips, params, sr, progress)
        for i, bed in enumerate(beds):
            peak = float(np.max(np.abs(bed)))
            write_flac(tmp / "crowd" / f"bed_{i:03d}.flac", to_pcm16(bed * min(1.0, 0.99 / peak)), sr)
        write_jsonl(tmp / "crowd.jsonl", specs)
        write_jsonl(tmp / "clips.jsonl", clip_rows)
        off = [r for r in rooms if not r["spec"]["open_air"]
               and abs(r["rt60_measured_s"] - r["rt60_target_s"]) > 0.25 * r["rt60_target_s"]]
        if off:
            log.warning("banks: %d enclosed room(s) measure an RT60 more than 25%% off target: %s", len(off),
                        ", ".join(f"{r['class']}#{r['index']}" for r in off))
        header = {"format": BANKS_FORMAT, "sample_rate": sr, "rooms": {c: len(p) for c, p in rirs.items()},
                  "rooms_rt60_off_by_25pct": len(off),
                  "beds": len(beds), "bed_s": params.crowd_bed_s,
                  "clips": {k: len(v) for k, v in clips.items()}, "synthetic_voices": n_synth,
                  "real_clip_minutes": {k: round(sum(r["duration_s"] for r in clip_rows if r["kind"] == k) / 60, 1)
                                        for k in clips}}
        write_json(tmp / "banks.json", header)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return header


def load_banks(banks_dir: str | Path) -> Banks:
    """Read a banks folder (format checked) into memory as a `Banks`."""
    banks_dir = Path(banks_dir)
    header_path = banks_dir / "banks.json"
    if not header_path.is_file():
        raise BanksError(f"{banks_dir}: no banks here (no banks.json): run `resonance banks`")
    import json

    header = json.loads(header_path.read_text())
    if header.get("format") != BANKS_FORMAT:
        raise BanksError(f"{banks_dir}: banks format {header.get('format')!r}, this code reads {BANKS_FORMAT}: "
                         "rebuild with `resonance banks`")
    sr = int(header["sample_rate"])
    with np.load(banks_dir / "rirs.npz") as npz:
        pairs = {k: npz[k] for k in npz.files}
    rirs: dict[str, list[np.ndarray]] = {c: [pairs[f"{c}_{i:03d}"] for i in range(n)]
                                         for c, n in header["rooms"].items()}
    rt60: dict[str, list[float]] = {c: [0.0] * n for c, n in header["rooms"].items()}
    for row in read_jsonl(banks_dir / "rooms.jsonl"):
        rt60[row["class"]][row["index"]] = row["rt60_measured_s"]
    beds = [read_audio(banks_dir / "crowd" / f"bed_{i:03d}.flac", sr)[0] for i in range(header["beds"])]
    return Banks(sr=sr, rirs=rirs, rt60_s=rt60, beds=beds)


def describe(header: dict, out_dir: Path) -> str:
    """One line for the terminal."""
    rooms = ", ".join(f"{c} {n}" for c, n in header["rooms"].items())
    clips = ", ".join(f"{k} {n}" for k, n in header["clips"].items())
    return (f"banks: rooms ({rooms}); {header['beds']} crowd beds of {header['bed_s']:g} s from clips ({clips}, "
            f"incl. {header['synthetic_voices']} espeak-ng voices) -> {out_dir}")

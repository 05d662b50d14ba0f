"""`resonance field build`: the default field-test set, from real measured responses (see resonance.field).

    music excerpt -> PA cabinet response -> venue room response (L/R averaged) -> + crowd bed at snr_db
      -> device: its measured response (or flat), drive_db of gain, hard clipping at clip_level -> audio file

Outputs in OUT (default data/field): audio/VENUE-DEVICE-NNN.EXT, field.csv (file, track_id, venue, device,
offset_s, snr_db, source; track_id empty = a song outside the catalog), field.json (format, counts, the
responses used: package, version, member path). Built in a temp folder and swapped in whole.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from resonance.config.mlops import FieldDevice, FieldParams
from resonance.errors import ResonanceError
from resonance.io import replace_dir, write_json

FIELD_FORMAT = 1
COLUMNS = ["file", "track_id", "venue", "device", "offset_s", "snr_db", "source"]


class FieldError(ResonanceError, ValueError):
    """A field set that cannot be built or read (a response not found, a bad CSV row: named)."""


def fetch_responses(params: FieldParams, cache_dir: Path, sr: int) -> tuple[dict[str, np.ndarray], list[dict]]:
    """{source_path: mono impulse response (n,) at sr, unit energy} of every fetched member, and their
    provenance rows. Packages come from apt-get download (cached like the catalog's, resonance.catalog.debs)."""
    from math import gcd

    import soundfile as sf
    from scipy.signal import resample_poly

    from resonance.catalog.debs import fetch_package

    responses: dict[str, np.ndarray] = {}
    provenance: list[dict] = []
    for package, spec in params.packages.items():
        extracted = fetch_package(package, spec["container"], spec["pattern"], cache_dir)
        for member in extracted.members:
            data, file_sr = sf.read(str(extracted.path(member)), dtype="float64", always_2d=True)
            ir = data.mean(axis=1)
            if file_sr != sr:
                g = gcd(int(file_sr), sr)
                ir = resample_poly(ir, sr // g, int(file_sr) // g)
            energy = float(np.sqrt(np.sum(ir ** 2)))
            if energy <= 0:
                raise FieldError(f"{package}: {member.source_path} is an all-zero response")
            responses[member.source_path] = (ir / energy).astype(np.float32)
            provenance.append({"package": package, "version": extracted.version, "member": member.source_path,
                               "taps": int(ir.size)})
    return responses, provenance


def pick(responses: dict[str, np.ndarray], pattern: str, what: str) -> np.ndarray:
    """The response whose member path matches `pattern`; several (e.g. street2-L and -R) are averaged."""
    regex = re.compile(pattern)
    hits = [ir for path, ir in sorted(responses.items()) if regex.search(path)]
    if not hits:
        raise FieldError(f"field: no fetched response matches {what} {pattern!r} (have {sorted(responses)[:6]}...)")
    n = max(h.size for h in hits)
    mean = np.mean([np.pad(h, (0, n - h.size)) for h in hits], axis=0)
    return (mean / max(np.sqrt(np.sum(mean ** 2)), 1e-12)).astype(np.float32)


def render(music: np.ndarray, pa: np.ndarray, room: np.ndarray, crowd: np.ndarray, snr_db: float,
           device: FieldDevice, device_ir: np.ndarray | None) -> np.ndarray:
    """One field recording (n,) from `music` (n,) and a crowd stretch (n,), all at one rate (module docstring)."""
    from scipy.signal import fftconvolve

    n = music.size
    wet = fftconvolve(fftconvolve(music, pa)[:n], room)[:n]
    p_music = float(np.mean(wet ** 2))
    p_crowd = float(np.mean(crowd ** 2))
    mix = wet + crowd * np.sqrt(p_music / max(p_crowd, 1e-20) / 10 ** (snr_db / 10)) if p_crowd > 0 else wet
    if device_ir is not None:
        mix = fftconvolve(mix, device_ir)[:n]
    mix = mix / max(float(np.max(np.abs(mix))), 1e-9) * 10 ** ((device.drive_db - 1.0) / 20)
    return (np.clip(mix, -device.clip_level, device.clip_level) / device.clip_level * 0.98).astype(np.float32)


def _excerpt(track: Any, catalog_dir: Path, rng: np.random.Generator, clip_s: float, preroll_s: float,
             sr: int) -> tuple[np.ndarray, float]:
    """(preroll + clip) of a track at a random offset, and the clip's offset in the track (s)."""
    import soundfile as sf

    total = clip_s + preroll_s
    latest = max(preroll_s, track.duration_s - clip_s)
    offset = float(rng.uniform(preroll_s, latest)) if latest > preroll_s else preroll_s
    start = int((offset - preroll_s) * sr)
    audio, _ = sf.read(str(catalog_dir / track.audio_path), start=start, stop=start + int(total * sr),
                       dtype="float32")
    audio = audio if audio.ndim == 1 else audio.mean(axis=1)
    return np.pad(audio, (0, max(0, int(total * sr) - audio.size))), round(offset, 3)


def run(params: FieldParams, catalog_dir: Path, outside_dir: Path, banks_dir: Path, cache_dir: Path,
        out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Build the field set (module docstring); returns field.json's content."""
    import soundfile as sf

    from resonance.banks.stage import load_banks
    from resonance.catalog.manifest import load_manifest
    from resonance.progress import progress as progress_bar

    banks = load_banks(banks_dir)
    sr = banks.sr
    songs = [t for t in load_manifest(catalog_dir) if t.split == params.split]
    outside = load_manifest(outside_dir) if params.outside_excerpts else []
    if not songs:
        raise FieldError(f"{catalog_dir}: no `{params.split}` tracks for the field set")
    if params.outside_excerpts and not outside:
        raise FieldError(f"{outside_dir}: no out-of-catalog tracks for the field set's false accepts")
    responses, provenance = fetch_responses(params, cache_dir, sr)
    pa = pick(responses, params.pa, "field.pa")
    rooms = {v: pick(responses, pattern, f"field.venues.{v}") for v, pattern in params.venues.items()}
    devices = {d: (spec, pick(responses, spec.response, f"field.devices.{d}.response") if spec.response else None)
               for d, spec in params.devices.items()}
    rng = np.random.default_rng(params.seed)
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    jobs = [(v, d, k, i) for v in rooms for d in devices
            for k, count in (("catalog", params.excerpts), ("outside", params.outside_excerpts)) for i in range(count)]
    rows = []
    n_pre = int(params.preroll_s * sr)
    subtype = {"ogg": "VORBIS", "flac": "PCM_16", "wav": "PCM_16"}[params.audio_format]
    try:
        for venue, device, kind, i in progress_bar(jobs, desc="field build", unit="clip", disable=not progress):
            track = (songs if kind == "catalog" else outside)[int(rng.integers(len(songs if kind == "catalog"
                                                                                   else outside)))]
            music, offset = _excerpt(track, (catalog_dir if kind == "catalog" else outside_dir), rng,
                                     params.clip_s, params.preroll_s, sr)
            bed = banks.beds[int(rng.integers(len(banks.beds)))]
            crowd = np.take(bed, np.arange(music.size) + int(rng.integers(bed.size)), mode="wrap")
            snr = float(rng.uniform(*params.snr_db))
            spec, dev_ir = devices[device]
            audio = render(music, pa, rooms[venue], crowd, snr, spec, dev_ir)[n_pre:]
            name = f"audio/{venue}-{device}-{len(rows):03d}.{params.audio_format}"
            sf.write(str(tmp / name), audio, sr, format=params.audio_format.upper(), subtype=subtype)
            rows.append({"file": name, "track_id": track.track_id if kind == "catalog" else "", "venue": venue,
                         "device": device, "offset_s": offset if kind == "catalog" else "",
                         "snr_db": round(snr, 2), "source": kind})
        with open(tmp / "field.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        header = {"format": FIELD_FORMAT, "sample_rate": sr, "clips": len(rows),
                  "in_catalog": sum(r["source"] == "catalog" for r in rows),
                  "outside": sum(r["source"] == "outside" for r in rows), "venues": list(rooms),
                  "devices": list(devices), "responses": provenance,
                  "note": "built from real measured responses outside the simulator; stands in for real field "
                          "recordings of the catalog"}
        write_json(tmp / "field.json", header)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return header


def describe(header: dict[str, Any], out_dir: Path) -> str:
    """One line for the terminal."""
    return (f"field build: {header['clips']} clips ({header['in_catalog']} of catalog songs, {header['outside']} "
            f"outside) over venues {', '.join(header['venues'])} x devices {', '.join(header['devices'])}, from "
            f"{len(header['responses'])} measured responses -> {out_dir}")

"""Build the reference catalog from extracted package audio: decode, filter, dedupe, split, write.

Pure-ish core: takes the extracted packages and the catalog params; all output goes to a temp folder that
replaces `out_dir` only when complete, so a crash never leaves half a catalog.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from resonance.audio import (
    AudioError,
    decode,
    pcm_sha256,
    probe_tags,
    to_pcm16,
    trim_silence,
    write_flac,
)
from resonance.catalog.debs import ExtractedPackage
from resonance.catalog.dedupe import (
    Reference,
    exact_duplicates,
    fingerprint,
    near_duplicates,
    save_fingerprints,
)
from resonance.catalog.licenses import license_for
from resonance.catalog.manifest import CATALOG_FORMAT, SPLITS, Track
from resonance.config import CatalogParams
from resonance.io import replace_dir, write_json, write_jsonl

log = logging.getLogger(__name__)
REF = "ref:"  # marks entries of an excluded reference catalog during deduplication
PEAK_CEILING = 0.999  # decoded audio above full scale is scaled down to this peak (gain_db records it)


@dataclass(frozen=True)
class Candidate:
    """One audio member of a package, ready to decode."""

    track_id: str
    package: str
    package_version: str
    source_path: str
    license: str
    file: Path


@dataclass(frozen=True)
class Outcome:
    """What became of a candidate: a track (with its fingerprint) or a skip reason."""

    candidate: Candidate
    track: Track | None = None
    fingerprint: np.ndarray | None = None
    reason: str | None = None


def track_id_for(package: str, source_path: str) -> str:
    """Stable id from package and member path (never from list order): `package--slug-hash8`."""
    stem = source_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "track"
    digest = hashlib.sha1(f"{package}\n{source_path}".encode()).hexdigest()[:8]
    return f"{package}--{slug}-{digest}"


def assign_split(track_id: str, seed: int, fractions: dict[str, float]) -> str:
    """Deterministic split from (seed, track_id): adding or removing other tracks never moves this one."""
    u = int(hashlib.sha256(f"{seed}:{track_id}".encode()).hexdigest()[:15], 16) / 16**15
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if u < edge:
            return split
    return SPLITS[-1]


def title_for(tags: dict[str, str], source_path: str) -> str:
    """The track's title tag, else a readable form of its file name."""
    if tags.get("title"):
        return tags["title"]
    stem = source_path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"[_\-]+", " ", stem).strip().title() or stem


def list_candidates(packages: Sequence[ExtractedPackage]) -> list[Candidate]:
    """All members of all packages, interleaved round-robin across packages (so a limit stays varied)."""
    per_pkg = []
    for pkg in packages:
        per_pkg.append([Candidate(track_id_for(pkg.package, m.source_path), pkg.package, pkg.version,
                                  m.source_path, license_for(pkg.copyright, m.source_path), pkg.path(m))
                        for m in sorted(pkg.members, key=lambda m: m.source_path)])
    out: list[Candidate] = []
    for i in range(max((len(p) for p in per_pkg), default=0)):
        out += [p[i] for p in per_pkg if i < len(p)]
    return out


def process(cand: Candidate, params: CatalogParams, audio_dir: Path) -> Outcome:
    """Decode one candidate, check it, write its FLAC and fingerprint it; never raises for bad audio."""
    sr = params.sample_rate
    try:
        audio = decode(cand.file, sr, params.decode_timeout_s)
    except AudioError as exc:
        return Outcome(cand, reason=str(exc))
    if cand.file.suffix.lower() in params.decode_twice and not _renders_the_same(cand.file, audio, params):
        return Outcome(cand, reason="nondeterministic render (two decodes differ: random effects of a tracker "
                                    "module): left out so that the same params give the same catalog")
    full_s = audio.size / sr
    audio, trim_start_s = trim_silence(audio, sr, params.silence_db)
    if audio.size == 0:
        return Outcome(cand, reason=f"silent (no {params.silence_db:g} dBFS frame in {full_s:.1f} s)")
    duration_s = audio.size / sr
    trimmed = f" after trimming {full_s - duration_s:.1f} s of silence" if duration_s < full_s - 0.5 else ""
    if duration_s < params.min_duration_s:
        return Outcome(cand, reason=f"too short ({duration_s:.1f} s < {params.min_duration_s:g} s{trimmed})")
    if duration_s > params.max_duration_s:
        return Outcome(cand, reason=f"too long ({duration_s:.1f} s > {params.max_duration_s:g} s)")
    peak = float(np.max(np.abs(audio)))
    gain = min(1.0, PEAK_CEILING / peak)
    pcm = to_pcm16(audio * gain)
    rel = f"audio/{cand.track_id}.flac"
    write_flac(audio_dir.parent / rel, pcm, sr)
    tags = probe_tags(cand.file)
    track = Track(track_id=cand.track_id, title=title_for(tags, cand.source_path), artist=tags.get("artist", ""),
                  package=cand.package, package_version=cand.package_version, source_path=cand.source_path,
                  license=cand.license, duration_s=round(duration_s, 3), sample_rate=sr, sha256=pcm_sha256(pcm),
                  gain_db=round(20 * float(np.log10(gain)), 3), trim_start_s=round(trim_start_s, 3), split="",
                  audio_path=rel)
    fp = fingerprint(audio_dir.parent / rel, params.fingerprint_length_s)
    return Outcome(cand, track=track, fingerprint=fp)


def _renders_the_same(path: Path, audio: np.ndarray, params: CatalogParams) -> bool:
    """Whether a second decode of `path` gives exactly `audio` (mono float32 (n_samples,) at sample_rate)."""
    try:
        again = decode(path, params.sample_rate, params.decode_timeout_s)
    except AudioError:
        return False
    return again.shape == audio.shape and bool(np.array_equal(again, audio))


def run_all(cands: Sequence[Candidate], params: CatalogParams, audio_dir: Path, max_tracks: int | None,
            progress: bool = True) -> list[Outcome]:
    """Process candidates in order on `params.workers` threads; stop after `max_tracks` accepted tracks."""
    from tqdm import tqdm

    outcomes: list[Outcome] = []
    accepted = 0
    bar = tqdm(total=len(cands), desc="catalog: decode", unit="file", disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, params.workers)) as pool:
        for out in _ordered(pool, cands, params, audio_dir):
            outcomes.append(out)
            bar.update(1)
            accepted += out.track is not None
            bar.set_postfix(tracks=accepted, skipped=len(outcomes) - accepted, refresh=False)
            if max_tracks is not None and accepted >= max_tracks:
                break
    bar.close()
    return outcomes


def _ordered(pool: ThreadPoolExecutor, cands: Sequence[Candidate], params: CatalogParams,
             audio_dir: Path) -> Iterator[Outcome]:
    window = 4 * max(1, params.workers)  # bounded look-ahead so a limit does not decode everything
    futures = [pool.submit(process, c, params, audio_dir) for c in cands[:window]]
    for i in range(len(cands)):
        if i + window < len(cands):
            futures.append(pool.submit(process, cands[i + window], params, audio_dir))
        yield futures[i].result()
    return


def finish(outcomes: Sequence[Outcome], params: CatalogParams,
           reference: Reference | None = None) -> tuple[list[Track], list[dict], dict[str, np.ndarray | None]]:
    """Drop exact and near duplicates (of each other and of `reference`), assign splits.

    Returns (tracks sorted by id, skipped rows, {track_id: fingerprint} of the kept tracks).
    """
    ref = reference or Reference()
    good = sorted((o for o in outcomes if o.track is not None), key=lambda o: o.candidate.track_id)
    skipped = [{"source": f"{o.candidate.package}:{o.candidate.source_path}", "track_id": o.candidate.track_id,
                "reason": o.reason} for o in outcomes if o.track is None]
    tracks = [o.track for o in good if o.track is not None]
    ids = [f"{REF}{i}" for i in ref.ids] + [t.track_id for t in tracks]  # reference first: always the kept one
    durations = ref.durations_s + [t.duration_s for t in tracks]
    prints = ref.prints + [o.fingerprint for o in good]
    dropped = exact_duplicates(ids, ref.sha256s + [t.sha256 for t in tracks])
    rest = [i for i, tid in enumerate(ids) if tid not in dropped]
    near = near_duplicates([ids[i] for i in rest], [durations[i] for i in rest], [prints[i] for i in rest],
                           params.near_duplicate_ber)
    for tid, kept in {**dropped, **near}.items():
        kind = "exact" if tid in dropped else "near"
        if not tid.startswith(REF):
            kept = kept.replace(REF, "") + (" (in the excluded catalog)" if kept.startswith(REF) else "")
            skipped.append({"source": tid, "track_id": tid, "reason": f"{kind} duplicate of {kept}"})
    kept_tracks = [replace(t, split=assign_split(t.track_id, params.seed, params.splits))
                   for t in tracks if t.track_id not in dropped and t.track_id not in near]
    fingerprints = {o.candidate.track_id: o.fingerprint for o in good}
    no_fp = sum(fingerprints[t.track_id] is None for t in kept_tracks)
    if no_fp:
        log.warning("catalog: %d track(s) have no Chromaprint fingerprint (fpcalc failed or is missing): "
                    "they were checked for exact duplicates only", no_fp)
    return kept_tracks, skipped, {t.track_id: fingerprints[t.track_id] for t in kept_tracks}


def build_catalog(packages: Sequence[ExtractedPackage], params: CatalogParams, out_dir: str | Path,
                  max_tracks: int | None = None, progress: bool = True, reference: Reference | None = None,
                  landmark: Any = None) -> dict:
    """Decode, check, dedupe and split every candidate; atomically (re)place `out_dir`. Returns the header.

    `reference`: another catalog whose songs (exact or near copies) must not appear in this one; with `landmark`
    (a LandmarkConfig) and the reference's folder, tracks sharing any audio with it are dropped too
    (`resonance.catalog.shared`).
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    try:
        header = _build_into(tmp, packages, params, max_tracks, progress, reference, landmark)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous catalog, if any, stays untouched
        raise
    return header


def _build_into(tmp: Path, packages: Sequence[ExtractedPackage], params: CatalogParams,
                max_tracks: int | None, progress: bool, reference: Reference | None, landmark: Any = None) -> dict:
    cands = list_candidates(packages)
    outcomes = run_all(cands, params, tmp / "audio", max_tracks, progress)
    tracks, skipped, prints = finish(outcomes, params, reference)
    if reference is not None and reference.folder is not None and landmark is not None and tracks:
        from resonance.catalog.shared import shared_audio

        s = params.shared_audio
        found = shared_audio(tracks, tmp, reference.folder, landmark, s.window_s, s.hop_s, s.min_votes, progress)
        gone = {f.track_id: f for f in found}
        skipped += [{"source": tid, "track_id": tid, "reason": f.reason()} for tid, f in gone.items()]
        tracks = [t for t in tracks if t.track_id not in gone]
        prints = {k: v for k, v in prints.items() if k not in gone}
    keep = {t.audio_path for t in tracks}
    for f in (tmp / "audio").iterdir():  # duplicates and beyond-limit leftovers
        if f"audio/{f.name}" not in keep:
            f.unlink()
    for row in skipped:
        log.info("catalog: skipped %s: %s", row["source"], row["reason"])
    header = summarize(tracks, skipped, params, len(cands))
    write_jsonl(tmp / "manifest.jsonl", (t.to_dict() for t in tracks))
    write_jsonl(tmp / "skipped.jsonl", skipped)
    save_fingerprints(tmp / "fingerprints.npz", prints)
    write_json(tmp / "catalog.json", header)
    return header


def summarize(tracks: Sequence[Track], skipped: Sequence[dict], params: CatalogParams, n_candidates: int) -> dict:
    """The catalog.json header: format version and the counts a person wants to see."""
    hours = sum(t.duration_s for t in tracks) / 3600
    return {
        "format": CATALOG_FORMAT,
        "sample_rate": params.sample_rate,
        "tracks": len(tracks),
        "hours": round(hours, 3),
        "packages": len({t.package for t in tracks}),
        "splits": {s: sum(t.split == s for t in tracks) for s in SPLITS},
        "candidates": n_candidates,
        "skipped": len([s for s in skipped if "duplicate" not in s["reason"]]),
        "duplicates": len([s for s in skipped if "duplicate" in s["reason"]]),
    }

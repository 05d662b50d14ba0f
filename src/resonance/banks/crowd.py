"""The crowd bank: real crowd, applause and speech clips from Debian packages (plus espeak-ng voices),
layered into long, non-stationary crowd beds."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from resonance.audio import AudioError, decode
from resonance.catalog.debs import ExtractedPackage, fetch_package
from resonance.config import BanksParams, check_regex
from resonance.simulate.crowd import render_bed, sample_bed
from resonance.simulate.voices import synth_voices

log = logging.getLogger(__name__)
KINDS = ("speech", "cheer", "applause")


def fetch_noise(params: BanksParams, cache_dir: Path, progress: bool = True) -> list[ExtractedPackage]:
    """Extracted crowd/speech members of every noise package (downloads only what the cache lacks)."""
    from tqdm import tqdm

    out = []
    for name in tqdm(params.noise_packages, desc="banks: fetch", unit="pkg", disable=not progress):
        if name not in params.noise_sources:
            raise ValueError(f"banks.noise_packages: {name!r} has no banks.noise_sources entry")
        src = params.noise_sources[name]
        check_regex(src.pattern, f"banks.noise_sources.{name}.pattern")
        out.append(fetch_package(name, src.container, src.pattern, cache_dir))
    return out


def kind_of(source_path: str, kinds: dict[str, str]) -> str | None:
    """The clip kind (speech, cheer, applause) whose regex matches the member path first; None if none."""
    for kind, pattern in kinds.items():
        if re.search(pattern, source_path):
            return kind
    return None


def load_clips(packages: list[ExtractedPackage], params: BanksParams, sr: int,
               progress: bool = True) -> tuple[dict[str, list[np.ndarray]], list[dict]]:
    """Decode every member to mono at `sr`, at most `clip_max_s` each; speech subsampled (seeded).

    Returns ({kind: [clip (n,)]}, one provenance row per clip used). Undecodable or silent clips are skipped.
    """
    from tqdm import tqdm

    members = [(p, m, kind_of(m.source_path, params.noise_kinds)) for p in packages for m in p.members]
    members = [x for x in members if x[2] is not None]
    speech = [x for x in members if x[2] == "speech"]
    rng = np.random.default_rng([params.seed, 2])
    if len(speech) > params.max_speech_clips:
        keep = set(rng.choice(len(speech), params.max_speech_clips, replace=False).tolist())
        members = [x for x in members if x[2] != "speech"] + [x for i, x in enumerate(speech) if i in keep]
    clips: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    rows: list[dict] = []
    for pkg, m, kind in tqdm(members, desc="banks: clips", unit="clip", disable=not progress):
        try:
            audio = decode(pkg.path(m), sr)[: int(params.clip_max_s * sr)]
        except AudioError as exc:
            log.info("banks: skipped %s:%s: %s", pkg.package, m.source_path, exc)
            continue
        if np.max(np.abs(audio)) < 1e-3:
            continue
        clips[kind].append(audio)  # type: ignore[index]
        rows.append({"kind": kind, "package": pkg.package, "source_path": m.source_path,
                     "duration_s": round(audio.size / sr, 3)})
    return clips, rows


def add_synthetic_voices(clips: dict[str, list[np.ndarray]], params: BanksParams, sr: int) -> int:
    """Append `synthetic_voices` espeak-ng utterances to the speech clips (a minority voice); returns count."""
    if params.synthetic_voices <= 0:
        return 0
    rng = np.random.default_rng([params.seed, 3])
    texts = [params.espeak_texts[i % len(params.espeak_texts)] for i in range(params.synthetic_voices)]
    voices = [params.espeak_voices[int(rng.integers(len(params.espeak_voices)))] for _ in texts]
    made = synth_voices(texts, voices, sr, (params.espeak_speed_wpm[0], params.espeak_speed_wpm[1]),
                        (params.espeak_pitch[0], params.espeak_pitch[1]), rng)
    clips["speech"].extend(made)
    return len(made)


def build_beds(clips: dict[str, list[np.ndarray]], params: BanksParams, sr: int,
               progress: bool = True) -> tuple[list[np.ndarray], list[dict]]:
    """Draw and render `crowd_beds` beds of `crowd_bed_s` seconds. Returns ([bed (n,)], [BedSpec dict])."""
    from tqdm import tqdm

    for kind in KINDS:
        if not clips[kind]:
            raise ValueError(f"banks: no usable {kind} clips in the noise packages; check banks.noise_kinds")
    beds, specs = [], []
    for i in tqdm(range(params.crowd_beds), desc="banks: crowd beds", unit="bed", disable=not progress):
        rng = np.random.default_rng([params.seed, 4, i])
        spec = sample_bed(rng, len(clips["speech"]), len(clips["cheer"]), len(clips["applause"]),
                          params.crowd_bed_s, **params.crowd.kwargs())
        bed = render_bed(spec, clips["speech"], clips["cheer"], clips["applause"], sr)
        beds.append(bed)
        specs.append(asdict(spec))
    return beds, specs

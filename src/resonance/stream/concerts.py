"""Generated concert recordings with a known setlist: the measuring stick of `listen` and `identify --setlist`.

A concert is a program of songs (excerpts of catalog tracks of one split, plus `unknown` songs from the outside
set, which no index holds) with gaps between them, and before the first, that hold no music: the venue's crowd
(talk, cheering, applause from the banks) fills them, because the whole program is played through ONE venue
condition of the evaluation grid (PA, room, crowd at the SNR, phone), drawn from `setlist.concerts.seed`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from resonance.config import SimulateParams
from resonance.config.stream import ConcertParams
from resonance.simulate.chain import Banks

FADE_S = 0.5  # each excerpt fades in and out (a band does not start on a cut)


@dataclass(frozen=True)
class Song:
    """One song of a concert: `track_id` the catalog id (None: an unknown song, not in the catalog), `source`
    the track it was cut from, start_s/end_s where it plays in the recording, song_offset_s where in the song."""

    track_id: str | None
    source: str
    title: str
    start_s: float
    end_s: float
    song_offset_s: float


@dataclass(frozen=True)
class Concert:
    """A concert's name, its venue condition's grid cell (snr_db, reverb), its songs in order and length (s)."""

    name: str
    snr_db: float
    reverb: str
    songs: list[Song]
    duration_s: float

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "snr_db": self.snr_db, "reverb": self.reverb, "duration_s": self.duration_s,
                "songs": [asdict(s) for s in self.songs]}


def _tracks(folder: Path, split: str | None, min_s: float) -> list:
    from resonance.catalog.manifest import load_manifest

    tracks = [t for t in load_manifest(folder) if t.duration_s >= min_s]
    same = [t for t in tracks if split is None or t.split == split]
    return same or tracks


def plan_concerts(p: ConcertParams, catalog_dir: Path, outside_dir: Path) -> list[tuple[Concert, list]]:
    """The concerts' programs: [(Concert, [the Track of each song])], all drawn from p.seed."""
    rng = np.random.default_rng(p.seed)
    known = _tracks(catalog_dir, p.split, p.song_s[1] + 2.0)
    unknown = _tracks(outside_dir, p.split, p.song_s[1] + 2.0) if p.unknown else []
    if len(known) < p.songs[1] or (p.unknown and not unknown):
        raise ValueError(f"setlist.concerts: {len(known)} catalog tracks of split {p.split!r} (and "
                         f"{len(unknown)} outside) are longer than {p.song_s[1] + 2:g} s; need {p.songs[1]}")
    out = []
    for c in range(p.n):
        n = int(rng.integers(p.songs[0], p.songs[1] + 1))
        picks = [known[int(i)] for i in rng.choice(len(known), n - p.unknown, replace=False)]
        for _ in range(p.unknown):  # never first: a set opens with a song we know, the unknown comes later
            picks.insert(int(rng.integers(1, len(picks) + 1)), unknown[int(rng.integers(len(unknown)))])
        t, songs = 0.0, []
        for track in picks:
            t += float(rng.uniform(*p.gap_s))
            length = float(np.round(rng.uniform(*p.song_s), 2))
            offset = float(np.round(rng.uniform(0.0, track.duration_s - length - 1.0), 2))
            in_catalog = track in known
            songs.append(Song(track.track_id if in_catalog else None, track.track_id, track.title, round(t, 3),
                              round(t + length, 3), offset))
            t += length
        t += float(rng.uniform(*p.gap_s))
        snr = float(p.snr_db[c % len(p.snr_db)])
        reverb = p.reverb[(c // len(p.snr_db)) % len(p.reverb)]
        out.append((Concert(f"concert-{c:03d}", snr, reverb, songs, round(t, 3)), picks))
    return out


def render_concert(concert: Concert, tracks: list, catalog_dir: Path, outside_dir: Path, p: ConcertParams,
                   sim: SimulateParams, banks: Banks, index: int) -> np.ndarray:
    """The recording of one planned concert: float32 (n_samples,) at banks.sr."""
    import soundfile as sf

    from resonance.simulate.chain import apply_condition, sample_condition
    from resonance.simulate.mix import fade

    sr = banks.sr
    program = np.zeros(int(round(concert.duration_s * sr)), dtype=np.float32)
    for song, track in zip(concert.songs, tracks):
        folder = catalog_dir if song.track_id is not None else outside_dir
        start = int(round(song.song_offset_s * sr))
        n = int(round((song.end_s - song.start_s) * sr))
        audio, file_sr = sf.read(str(folder / track.audio_path), start=start, stop=start + n, dtype="float32")
        if file_sr != sr or audio.ndim != 1:
            raise ValueError(f"{track.track_id}: expected mono audio at {sr} Hz")
        at = int(round(song.start_s * sr))
        program[at:at + audio.size] += fade(audio, sr, FADE_S, FADE_S)
    rng = np.random.default_rng([p.seed, index])
    grid = sim.grid
    cond = sample_condition(rng, concert.name, grid.reverb[concert.reverb], concert.snr_db, grid.crowd_wet,
                            {p.clip_mode: 1.0}, sim.pa, sim.phone, sim.singalong, banks)
    return apply_condition(program, cond, banks)


def write_concerts(p: ConcertParams, sim: SimulateParams, banks: Banks, catalog_dir: Path, outside_dir: Path,
                   out_dir: Path, progress: bool = True) -> list[Concert]:
    """Render every planned concert to out_dir/NAME.flac and write out_dir/concerts.json (the truth), atomically.
    A folder already holding the same plan (same concerts.json) is reused as it is."""
    from resonance.audio import to_pcm16, write_flac
    from resonance.io import atomic_open
    from resonance.progress import progress as progress_bar

    plans = plan_concerts(p, catalog_dir, outside_dir)
    body = json.dumps({"params": asdict(p), "concerts": [c.to_dict() for c, _ in plans]}, indent=1)
    manifest = out_dir / "concerts.json"
    if manifest.is_file() and manifest.read_text() == body and all(
            (out_dir / f"{c.name}.flac").is_file() for c, _ in plans):
        return [c for c, _ in plans]
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (concert, tracks) in enumerate(progress_bar(plans, desc="concerts", unit="concert", disable=not progress)):
        audio = render_concert(concert, tracks, catalog_dir, outside_dir, p, sim, banks, i)
        write_flac(out_dir / f"{concert.name}.flac", to_pcm16(audio), banks.sr)
    with atomic_open(manifest, "w") as fh:
        fh.write(body)
    return [c for c, _ in plans]

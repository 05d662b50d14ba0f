"""Shared audio with an excluded catalog: a reference song that reappears inside another track.

The duplicate tests of `resonance.catalog.dedupe` compare whole tracks (same decoded PCM; or Chromaprint of the
first fingerprint_length_s within near_duplicate_ber and durations within 5%). A song that returns inside a
longer or differently cut track (the same theme in another game, a loop version, a medley) passes them, and in
the `outside` set such a track makes "out-of-catalog" queries that are really songs of the catalog: measured on
the full catalog, megaglest's "romans" holds wesnoth's "legends of the north" and starfighter's "through space"
is singularity's, and their queries were counted as false accepts when they were right.

Landmark hashes (`resonance.landmark`, Wang 2003) find shared audio at any offset: the reference catalog is
indexed once, and every window_s window of each new track, every hop_s seconds, is matched against it; a window
whose best (track, offset) bin gets min_votes consistent hash votes shares that audio with the track named (clean
copies reach thousands of votes, unrelated music about 30-70 in 10 s windows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from resonance.catalog.manifest import Track

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedFinding:
    """A new track sharing audio with reference `other`: `votes` consistent hash votes for the window starting at
    `at_s` seconds of the new track."""

    track_id: str
    other: str
    votes: int
    at_s: float

    def reason(self) -> str:
        return (f"shares audio with {self.other} (in the excluded catalog): {self.votes} landmark votes in the "
                f"window at {self.at_s:.0f} s")


def shared_audio(tracks: Sequence[Track], folder: Path, reference_dir: Path, config, window_s: float, hop_s: float,
                 min_votes: int, progress: bool = True) -> list[SharedFinding]:
    """The tracks of `folder` (their FLACs under it) that share audio with a track of the built catalog at
    `reference_dir`. config: a `resonance.landmark.peaks.LandmarkConfig` at the tracks' sample rate."""
    from resonance.audio import read_audio
    from resonance.catalog.manifest import load_manifest
    from resonance.landmark.index import build_index
    from resonance.landmark.match import match
    from resonance.progress import progress as bar

    reference = load_manifest(reference_dir)

    def refs():
        for t in bar(reference, desc="catalog: shared-audio index", unit="track", disable=not progress):
            yield t.track_id, read_audio(reference_dir / t.audio_path, t.sample_rate)[0]

    index = build_index(refs(), config)
    found = []
    for t in bar(list(tracks), desc="catalog: shared audio", unit="track", disable=not progress):
        audio, sr = read_audio(folder / t.audio_path, t.sample_rate)
        n, step = int(round(window_s * sr)), int(round(hop_s * sr))
        best: SharedFinding | None = None
        for start in range(0, max(1, audio.size - n + step), step):
            m = match(audio[start:start + n], index, config)
            if m.track_id is not None and m.score >= min_votes and (best is None or m.score > best.votes):
                best = SharedFinding(t.track_id, m.track_id, int(m.score), start / sr)
        if best is not None:
            log.info("catalog: %s %s", t.track_id, best.reason())
            found.append(best)
    return found

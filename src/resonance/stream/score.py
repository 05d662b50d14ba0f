"""Score a setlist against a concert's truth, and a stream's decisions against the clips played into it."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.stream.concerts import Concert, Song
from resonance.stream.setlist import Performance


@dataclass(frozen=True)
class SetlistScore:
    """One concert: known songs and how many were listed (`found`: a listed performance of that track overlaps
    it), `bounded` of those with start and end within `tolerance_s`; `unknown_named`: listed performances that
    lie mostly on an unknown song; `wrong`: other listed performances whose track was not playing; `exact`: the
    list is exactly the known songs in order, each bounded, nothing else."""

    known: int
    found: int
    bounded: int
    unknown: int
    unknown_named: int
    wrong: int
    listed: int
    exact: bool


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def score_setlist(concert: Concert, listed: list[Performance], tolerance_s: float = 5.0) -> SetlistScore:
    """Compare `listed` with the concert's songs (see SetlistScore)."""
    known = [s for s in concert.songs if s.track_id is not None]
    found = bounded = 0
    used: set[int] = set()
    for song in known:
        hits = [i for i, p in enumerate(listed) if p.track_id == song.track_id
                and _overlap(p.start_s, p.end_s, song.start_s, song.end_s) > 0]
        if hits:
            found += 1
            used.update(hits)
            first, last = listed[hits[0]], listed[hits[-1]]
            bounded += (abs(first.start_s - song.start_s) <= tolerance_s
                        and abs(last.end_s - song.end_s) <= tolerance_s)
    unknown_named = wrong = 0
    for i, p in enumerate(listed):
        if i in used:
            continue
        most: Song | None = max(concert.songs, key=lambda s: _overlap(p.start_s, p.end_s, s.start_s, s.end_s))
        if most is not None and most.track_id is None and _overlap(p.start_s, p.end_s, most.start_s,
                                                                   most.end_s) > 0.5 * (p.end_s - p.start_s):
            unknown_named += 1
        else:
            wrong += 1
    exact = (found == bounded == len(known) and len(listed) == len(known) and not unknown_named and not wrong
             and [p.track_id for p in listed] == [s.track_id for s in known])
    return SetlistScore(len(known), found, bounded, len(concert.songs) - len(known), unknown_named, wrong,
                        len(listed), exact)

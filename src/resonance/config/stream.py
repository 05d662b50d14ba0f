"""Dataclasses of the `setlist` section: a whole concert recording -> its songs (`resonance identify --setlist`,
`resonance.stream.setlist`) and the generated concerts that measure it (`benchmarks/setlist.py`)."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class ConcertParams:
    """Generated concert recordings (`resonance.stream.concerts`): seed; n concerts; songs (lo, hi) per concert,
    one of which (`unknown` of them) comes from outside the catalog; song_s (lo, hi) seconds played of each song,
    from a random offset; gap_s (lo, hi) seconds of crowd, talk and applause between songs (and before the first);
    split: the catalog split the known songs come from (val to tune, test to report); snr_db and reverb: the
    grid cells the concerts cycle through (one venue condition per concert: reverb names a room of
    simulate.grid.reverb); clip_mode: the phone's clip mode (none | soft | hard | both)."""

    seed: int
    n: int
    songs: list[int]
    unknown: int
    song_s: list[float]
    gap_s: list[float]
    split: str
    snr_db: list[float]
    reverb: list[str]
    clip_mode: str

    def __post_init__(self) -> None:
        checks = [(self.n >= 1, "n must be >= 1"),
                  (len(self.songs) == 2 and 1 <= self.songs[0] <= self.songs[1], "songs must be [lo, hi], lo >= 1"),
                  (0 <= self.unknown < self.songs[0], "unknown must be >= 0 and below songs' lower bound"),
                  (len(self.song_s) == 2 and 2 <= self.song_s[0] <= self.song_s[1], "song_s must be [lo, hi] >= 2"),
                  (len(self.gap_s) == 2 and 0 <= self.gap_s[0] <= self.gap_s[1], "gap_s must be [lo, hi] >= 0"),
                  (bool(self.snr_db) and bool(self.reverb), "snr_db and reverb must not be empty")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"setlist.concerts: {message}")


@dataclass(frozen=True)
class SetlistParams:
    """step_s: seconds between two decisions over the recording; buffer_s: each decides on the last buffer_s
    seconds; align_tol_s: two decisions name the same performance when their song positions agree within this;
    max_gap_s: a performance continues across at most this many seconds of decisions that do not name it;
    min_accepted: accepted decisions a performance needs to be listed (one accepted decision in a long unknown
    song is a 1%-false-accept event, two aligned ones are not); level: a window belongs to the song while its
    smoothed aligned similarity (background-normalised) stays above this share of the performance's median;
    smooth_s: that smoothing; concerts: the generated benchmark recordings."""

    step_s: float
    buffer_s: float
    align_tol_s: float
    max_gap_s: float
    min_accepted: int
    min_decisions: int
    level: float
    smooth_s: float
    concerts: ConcertParams

    def __post_init__(self) -> None:
        checks = [(0 < self.step_s <= self.buffer_s, "need 0 < step_s <= buffer_s"),
                  (self.align_tol_s > 0 and self.max_gap_s >= 0, "align_tol_s must be > 0, max_gap_s >= 0"),
                  (self.min_accepted >= 1, "min_accepted must be >= 1"),
                  (0 < self.level <= 1, "level must be in (0, 1]"),
                  (self.smooth_s > 0, "smooth_s must be > 0")]
        for ok, message in checks:
            if not ok:
                raise ParamsError(f"setlist: {message}")

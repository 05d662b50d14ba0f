"""Dataclasses of the `catalog` and `validate` sections."""

from __future__ import annotations

from dataclasses import dataclass

from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class Source:
    """Where one Debian package keeps its music.

    `container` is a zip/pk3 member of the .deb holding the audio (None: files sit in the .deb itself);
    `pattern` is a regex on the member path (relative, no leading './').
    """

    container: str | None
    pattern: str


@dataclass(frozen=True)
class Profile:
    """A named subset of the sources: which packages, and at most how many tracks (None: all)."""

    packages: list[str]
    max_tracks: int | None


@dataclass(frozen=True)
class SharedAudio:
    """`catalog.shared_audio`: how a build with --exclude finds audio shared with the excluded catalog
    (`resonance.catalog.shared`): windows of window_s every hop_s seconds; shared at min_votes landmark votes."""

    window_s: float
    hop_s: float
    min_votes: int

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.hop_s > 0 and self.min_votes >= 1):
            raise ParamsError("catalog.shared_audio: need window_s > 0, hop_s > 0 and min_votes >= 1")


@dataclass(frozen=True)
class CatalogParams:
    """The `catalog` section: how real music becomes the reference catalog."""

    seed: int
    sample_rate: int
    min_duration_s: float
    max_duration_s: float
    silence_db: float
    splits: dict[str, float]
    near_duplicate_ber: float
    fingerprint_length_s: int
    shared_audio: SharedAudio
    decode_timeout_s: float
    decode_twice: list[str]  # file suffixes decoded twice: a file whose two decodes differ is skipped
    workers: int
    keep_debs: bool
    profile: str
    profiles: dict[str, Profile]
    sources: dict[str, Source]

    def __post_init__(self) -> None:
        if set(self.splits) != {"train", "val", "unseen"}:
            raise ParamsError(f"catalog.splits: need exactly train, val, unseen; got {sorted(self.splits)}")
        if any(v < 0 for v in self.splits.values()) or abs(sum(self.splits.values()) - 1.0) > 1e-6:
            raise ParamsError(f"catalog.splits: fractions must be >= 0 and sum to 1, got {self.splits}")
        if self.sample_rate not in (8000, 16000):
            raise ParamsError(f"catalog.sample_rate: 8000 or 16000 Hz, got {self.sample_rate}")
        if not 0 < self.min_duration_s < self.max_duration_s:
            raise ParamsError("catalog: need 0 < min_duration_s < max_duration_s")
        if self.workers < 1:
            raise ParamsError(f"catalog.workers: at least 1, got {self.workers}")
        if any(not str(x).startswith(".") for x in self.decode_twice):
            raise ParamsError(f"catalog.decode_twice: file suffixes such as .it, got {self.decode_twice}")

    def selected(self, profile: str | None = None) -> tuple[Profile, dict[str, Source]]:
        """The active profile and its sources, in the profile's package order."""
        name = profile or self.profile
        if name not in self.profiles:
            raise ParamsError(f"catalog.profile: unknown profile {name!r}; known: {sorted(self.profiles)}")
        prof = self.profiles[name]
        unknown = [p for p in prof.packages if p not in self.sources]
        if unknown:
            raise ParamsError(f"catalog.profiles.{name}: packages without a catalog.sources entry: {unknown}")
        return prof, {p: self.sources[p] for p in prof.packages}


@dataclass(frozen=True)
class ValidateParams:
    """The `validate` section: what a healthy catalog looks like (Great Expectations thresholds)."""

    known_licenses: list[str]
    splits: list[str]
    duration_s: list[float]
    sample_rates: list[int]
    rms_dbfs: list[float]
    frame_ms: float
    silence_threshold_db: float
    max_silence_fraction: float
    max_clipping_fraction: float
    clip_level: float
    min_split_tracks: int

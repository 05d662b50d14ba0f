"""Dataclasses of the `banks`, `simulate` and `queries` sections (the concert simulator and query sets)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from resonance.config.catalog import Source
from resonance.config.loader import ParamsError


@dataclass(frozen=True)
class RoomRanges:
    """One room class of the RIR bank (club, theatre, arena...): (lo, hi) ranges for `sample_room`."""

    length_m: list[float]
    width_m: list[float]
    height_m: list[float]
    rt60_s: list[float]
    distance_m: list[float]
    open_air_prob: float


@dataclass(frozen=True)
class CrowdRanges:
    """Ranges for drawing crowd beds (see `resonance.simulate.crowd.sample_bed`); (lo, hi) pairs."""

    voices: list[int]
    clips_per_voice: int
    gap_s: list[float]
    voice_gain_db: list[float]
    resample: list[float]
    swells_per_min: list[float]
    swell_s: list[float]
    swell_attack_frac: list[float]
    event_layers: list[int]
    event_gain_db: list[float]
    rhythmic_prob: float
    clap_bpm: list[float]
    clappers: list[int]
    clap_jitter_s: list[float]
    clap_fraction: list[float]
    bursts_per_min: list[float]
    burst_s: list[float]
    burst_attack_frac: list[float]
    singalong_copies: list[int]
    singalong_delay_s: list[float]
    singalong_detune_cents: list[float]
    singalong_rate_hz: list[float]
    component_db: dict[str, list[float]]

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `sample_bed`: lists become (lo, hi) tuples."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = ({k: tuple(x) for k, x in v.items()} if isinstance(v, dict)
                           else tuple(v) if isinstance(v, list) else v)
        return out


@dataclass(frozen=True)
class BanksParams:
    """The `banks` section: room impulse responses and crowd beds, made once so conditions apply fast."""

    seed: int
    rooms_per_class: int
    max_order_cap: int
    rooms: dict[str, RoomRanges]
    crowd_beds: int
    crowd_bed_s: float
    clip_max_s: float
    crowd: CrowdRanges
    max_speech_clips: int
    synthetic_voices: int
    espeak_voices: list[str]
    espeak_speed_wpm: list[int]
    espeak_pitch: list[int]
    espeak_texts: list[str]
    noise_packages: list[str]
    noise_sources: dict[str, Source]
    noise_kinds: dict[str, str]


@dataclass(frozen=True)
class PaRanges:
    """PA coloration ranges: parametric EQ, bus compressor and brick-wall limiter."""

    bass_gain_db: list[float]
    bass_freq_hz: list[float]
    mid_gain_db: list[float]
    mid_freq_hz: list[float]
    mid_q: list[float]
    treble_gain_db: list[float]
    treble_freq_hz: list[float]
    threshold_db: list[float]
    ratio: list[float]
    attack_ms: list[float]
    release_ms: list[float]
    makeup_db: list[float]
    ceiling_db: list[float]
    lookahead_ms: float
    limiter_release_ms: float


@dataclass(frozen=True)
class PhoneRanges:
    """Phone capture ranges: AGC, band limit, saturation and clipping, optional lossy codec."""

    agc_target_dbfs: list[float]
    agc_time_s: list[float]
    agc_max_gain_db: list[float]
    low_hz: list[float]
    high_hz: list[float]
    drive_db: list[float]
    soft_level: list[float]
    hard_level: list[float]
    codec_prob: float
    codec: str
    codec_bitrate_k: int


@dataclass(frozen=True)
class SingalongRanges:
    """The crowd singing the song being played: how often, how loud (dB re the crowd bed), and the chorus."""

    prob: float
    level_db: list[float]
    copies: list[int]
    delay_s: list[float]
    detune_cents: list[float]
    rate_hz: list[float]


@dataclass(frozen=True)
class Preset:
    """A named concert: which room class (None: dry), crowd SNR and reverberant-crowd share, clip modes."""

    room: str | None
    snr_db: list[float]
    crowd_wet: list[float]
    clip_mode_probs: dict[str, float]


@dataclass(frozen=True)
class GridParams:
    """The evaluation grid: SNR x reverb (name -> room class or None) x clipping (name -> phone clip mode)."""

    snr_db: list[float]
    reverb: dict[str, str | None]
    clipping: dict[str, str]
    crowd_wet: list[float]


@dataclass(frozen=True)
class SimulateParams:
    """The `simulate` section: the chain's ranges, named presets and the evaluation grid."""

    preroll_s: float
    pa: PaRanges
    phone: PhoneRanges
    singalong: SingalongRanges
    presets: dict[str, Preset]
    grid: GridParams


@dataclass(frozen=True)
class QuerySet:
    """One evaluation query set: which catalog split its songs come from, how many excerpts of it (`excerpts`)
    and of never-indexed music (`outside_excerpts`); every excerpt gives a query of each length in each cell."""

    split: str
    excerpts: int
    outside_excerpts: int

    def __post_init__(self) -> None:
        if self.excerpts < 1 or self.outside_excerpts < 0:
            raise ParamsError(f"queries.sets: need excerpts >= 1 and outside_excerpts >= 0, got "
                              f"{self.excerpts}, {self.outside_excerpts}")


@dataclass(frozen=True)
class QueriesParams:
    """The `queries` section: query lengths (prefixes of one excerpt of the longest length) and the query sets
    (each excerpt rendered once under every grid cell)."""

    seed: int
    lengths_s: list[float]
    workers: int
    sets: dict[str, QuerySet]

    def __post_init__(self) -> None:
        if not self.lengths_s or min(self.lengths_s) <= 0 or sorted(set(self.lengths_s)) != list(self.lengths_s):
            raise ParamsError(f"queries.lengths_s: need distinct positive lengths in increasing order, got "
                              f"{self.lengths_s}")

"""The whole concert chain: draw a `Condition` (data you can log and compare), then apply it deterministically.

    music -> PA (EQ, bus compression, brick-wall limiting) -> room (left/right stacks to the phone)
          -> + crowd bed at the target SNR (partly reverberated in the same room) -> phone (AGC, clipping,
          band limit) -> optional lossy codec

A condition names its room and crowd bed by index into the banks (`Banks`), so applying it needs no
simulation, only filtering and convolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from resonance.config import GridParams, PaRanges, PhoneRanges, Preset, SimulateParams, SingalongRanges
from resonance.simulate.mix import mix_at_snr, rms_db
from resonance.simulate.pa import (
    CompressorSpec,
    EqSpec,
    apply_pa,
    sample_compressor,
    sample_eq,
)
from resonance.simulate.phone import (
    PhoneSpec,
    apply_phone,
    codec_roundtrip,
    sample_phone,
)
from resonance.simulate.room import apply_room
from resonance.simulate.voices import SingalongSpec, render_singalong, sample_singalong


@dataclass(frozen=True)
class Banks:
    """Pre-made material: RIR pairs per room class, their measured RT60s, and crowd beds (all at `sr`)."""

    sr: int
    rirs: dict[str, list[np.ndarray]]  # class -> [(2, n_taps) float32]
    rt60_s: dict[str, list[float]]
    beds: list[np.ndarray]  # [(n_samples,) float32]


@dataclass(frozen=True)
class Condition:
    """Everything drawn for one degraded clip. `room_class` None = dry; `snr_db` None = no crowd."""

    name: str  # preset or grid-cell name
    room_class: str | None
    room_index: int
    rt60_s: float
    eq: EqSpec
    compressor: CompressorSpec
    ceiling_db: float
    lookahead_ms: float
    limiter_release_ms: float
    bed_index: int
    bed_offset_s: float
    snr_db: float | None
    crowd_wet: float
    singalong: SingalongSpec | None  # None: the crowd does not sing
    singalong_db: float  # sing-along level re the crowd bed
    phone: PhoneSpec
    codec: str | None
    codec_bitrate_k: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _r(x: list[float]) -> tuple[float, float]:
    return float(x[0]), float(x[1])


def sample_condition(rng: np.random.Generator, name: str, room_class: str | None, snr_db: float | list[float] | None,
                     crowd_wet: list[float], clip_mode_probs: dict[str, float], pa: PaRanges, phone: PhoneRanges,
                     sing: SingalongRanges, banks: Banks) -> Condition:
    """Draw one condition. `snr_db`: a fixed value, a (lo, hi) range, or None (no crowd)."""
    eq = sample_eq(rng, _r(pa.bass_gain_db), _r(pa.bass_freq_hz), _r(pa.mid_gain_db), _r(pa.mid_freq_hz),
                   _r(pa.mid_q), _r(pa.treble_gain_db), _r(pa.treble_freq_hz))
    comp = sample_compressor(rng, _r(pa.threshold_db), _r(pa.ratio), _r(pa.attack_ms), _r(pa.release_ms),
                             _r(pa.makeup_db))
    ceiling_db = float(rng.uniform(*pa.ceiling_db))
    ph = sample_phone(rng, _r(phone.agc_target_dbfs), _r(phone.agc_time_s), _r(phone.agc_max_gain_db),
                      _r(phone.low_hz), _r(phone.high_hz), _r(phone.drive_db), _r(phone.soft_level),
                      _r(phone.hard_level), clip_mode_probs)
    room_index, rt60 = 0, 0.0
    if room_class is not None:
        if not banks.rirs.get(room_class):
            raise ValueError(f"room class {room_class!r} is not in the RIR bank (have {sorted(banks.rirs)})")
        room_index = int(rng.integers(len(banks.rirs[room_class])))
        rt60 = banks.rt60_s[room_class][room_index]
    bed_index = int(rng.integers(len(banks.beds)))
    bed_offset_s = float(rng.uniform(0, len(banks.beds[bed_index]) / banks.sr))
    snr = float(rng.uniform(*snr_db)) if isinstance(snr_db, list) else snr_db
    use_codec = bool(rng.random() < phone.codec_prob)
    wet = float(rng.uniform(*crowd_wet))
    chorus = sample_singalong(rng, (sing.copies[0], sing.copies[1]), _r(sing.delay_s), _r(sing.detune_cents),
                              _r(sing.rate_hz))
    sings, sing_db = bool(rng.random() < sing.prob), float(rng.uniform(*sing.level_db))
    return Condition(name, room_class, room_index, rt60, eq, comp, ceiling_db, pa.lookahead_ms,
                     pa.limiter_release_ms, bed_index, bed_offset_s, snr, wet, chorus if sings else None, sing_db,
                     ph, phone.codec if use_codec else None, phone.codec_bitrate_k)


def sample_preset(rng: np.random.Generator, name: str, preset: Preset, sim: SimulateParams,
                  banks: Banks) -> Condition:
    """Draw a condition of a named preset (club, theatre, arena, stadium, festival)."""
    return sample_condition(rng, name, preset.room, preset.snr_db, preset.crowd_wet, preset.clip_mode_probs,
                            sim.pa, sim.phone, sim.singalong, banks)


def sample_independent(rng: np.random.Generator, room_probs: dict[str, float], snr_db: list[float],
                       no_crowd_prob: float, crowd_wet: list[float], clip_mode_probs: dict[str, float],
                       sim: SimulateParams, banks: Banks) -> Condition:
    """Draw a condition whose room class (`dry` = none), crowd SNR (uniform in snr_db; no crowd with
    no_crowd_prob) and clip mode are drawn independently of each other, so every SNR x reverb x clipping cell of
    the evaluation grid has a chance (the presets tie a room class to an SNR range)."""
    names = sorted(room_probs)
    p = np.array([room_probs[n] for n in names], dtype=np.float64)
    room = names[int(rng.choice(len(names), p=p / p.sum()))]
    snr: list[float] | None = None if rng.random() < no_crowd_prob else list(snr_db)
    return sample_condition(rng, f"independent-{room}", None if room == "dry" else room, snr, crowd_wet,
                            clip_mode_probs, sim.pa, sim.phone, sim.singalong, banks)


def grid_cells(grid: GridParams) -> list[tuple[str, float, str, str]]:
    """Every (cell name, snr_db, reverb name, clipping name) of the evaluation grid, in a fixed order."""
    return [(f"snr{snr:+g}_{rev}_clip{clip}", float(snr), rev, clip)
            for snr in grid.snr_db for rev in grid.reverb for clip in grid.clipping]


def sample_grid_cell(rng: np.random.Generator, snr_db: float, reverb: str, clipping: str, sim: SimulateParams,
                     banks: Banks) -> Condition:
    """Draw a condition of one grid cell: SNR, room class and clip mode fixed, everything else drawn."""
    grid = sim.grid
    name = f"snr{snr_db:+g}_{reverb}_clip{clipping}"
    return sample_condition(rng, name, grid.reverb[reverb], snr_db, grid.crowd_wet,
                            {grid.clipping[clipping]: 1.0}, sim.pa, sim.phone, sim.singalong, banks)


def apply_condition(audio: np.ndarray, cond: Condition, banks: Banks) -> np.ndarray:
    """Degrade mono music (n_samples,) at banks.sr under `cond`; returns float32 (n_samples,) in [-1, 1]."""
    sr = banks.sr
    x = apply_pa(audio, sr, cond.eq, cond.compressor, cond.ceiling_db, cond.lookahead_ms, cond.limiter_release_ms)
    rirs = banks.rirs[cond.room_class][cond.room_index] if cond.room_class is not None else None
    if rirs is not None:
        x = apply_room(x, rirs)
    if cond.snr_db is not None:
        x, _ = mix_at_snr(x, crowd_at(cond, banks, audio, rirs), cond.snr_db)
    x = apply_phone(x, sr, cond.phone)
    if cond.codec is not None:
        x = codec_roundtrip(x, sr, cond.codec, cond.codec_bitrate_k)
    return x.astype(np.float32)


def crowd_at(cond: Condition, banks: Banks, music: np.ndarray, rirs: np.ndarray | None) -> np.ndarray:
    """The crowd for clean `music` (n,): the bed from its offset (looped), plus the crowd singing along with
    the music if the condition says so; a `crowd_wet` share reverberated in the room. float32 (n,)."""
    n = music.size
    bed = banks.beds[cond.bed_index]
    start = int(cond.bed_offset_s * banks.sr) % bed.size
    crowd = bed[(start + np.arange(n)) % bed.size].astype(np.float64)
    if cond.singalong is not None:
        level = 10 ** ((rms_db(crowd) + cond.singalong_db) / 20)
        crowd = crowd + level * render_singalong(cond.singalong, music, banks.sr, n)
    if rirs is not None and cond.crowd_wet > 0:
        crowd = (1 - cond.crowd_wet) * crowd + cond.crowd_wet * apply_room(crowd.astype(np.float32), rirs)
    return crowd.astype(np.float32)

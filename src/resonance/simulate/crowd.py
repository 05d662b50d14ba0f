"""Crowd beds: long, non-stationary concert crowd sound built from a few short real clips.

A bed has four components: babble (many talkers, see `voices`), cheer swells (cheer clips layered under
slow raised-cosine envelopes), clapping (a crowd clapping on a beat grid from applause grains, or applause
bursts) and, if the music is given, a sing-along (`voices.render_singalong`: a band-limited, detuned
chorus of the music that stays aligned with the song).

`sample_bed` draws every parameter into a `BedSpec` (JSON-ready via `dataclasses.asdict`, back with
`bed_from_dict`); `render_bed` is deterministic given the spec and the clips. Levels: babble is scaled to
unit RMS; a swell or burst peaks at unit RMS times its `gain_db`; clapping has unit RMS over its span;
the sing-along unit RMS; then each component gets its `*_db` and the sum is scaled to BED_RMS_DB.
Audio is 1-D float32 (n_samples,) at `sr` Hz. Peaks may exceed 1.0: nothing is clipped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from resonance.simulate.mix import check_audio, check_positive, check_range, check_sr
from resonance.simulate.voices import (
    Clips,
    EventSpec,
    SingalongSpec,
    VoiceSpec,
    check_count,
    check_int_range,
    render_babble,
    render_events,
    render_singalong,
    sample_events,
    sample_singalong,
    sample_voice,
)

BED_RMS_DB = -20.0  # every finished bed has this mean-power level (dBFS); SNR mixing sets it later
COMPONENTS = ("babble", "cheer", "clap", "singalong")
CLAP_MODES = ("rhythmic", "bursts")
CLAP_GRAINS = 24  # distinct clap sounds cut from the applause clips per bed
CLAP_GRAIN_S, CLAP_ONSET_S, CLAP_DECAY_S = 0.06, 0.002, 0.012  # grain length, rise, decay time constant
CLAP_SEARCH_S = 0.25  # a grain is centred on the loudest sample of a window this long
CLAP_CHUNK = 2048  # claps summed per np.bincount (bounds memory on long beds)
CLAP_FADE_S = 1.0  # clapping fades in and out over this long at the ends of its span
CLAPPER_LAG_S = 0.02  # std of a clapper's habitual lead/lag on the beat
CLAPPER_GAIN_SPREAD_DB = 12.0  # clappers near and far: levels uniform in [-spread, 0] dB
FLOOR_DB = 60.0  # `nonstationarity` floors frame levels this far below the overall level (pauses, silence)


@dataclass(frozen=True)
class ClapSpec:
    """Clapping. "rhythmic": `n_clappers` clap at `bpm` from `start_s` to `end_s` with per-clap timing jitter
    (std `jitter_s`); grains, clapper lags and gains come from `seed`. "bursts": the `bursts` events."""

    mode: str
    bpm: float
    start_s: float
    end_s: float
    n_clappers: int
    jitter_s: float
    seed: int
    bursts: tuple[EventSpec, ...]


@dataclass(frozen=True)
class BedSpec:
    """Everything drawn for one crowd bed of `length_s` seconds; component levels in dB (see module doc)."""

    length_s: float
    babble_db: float
    cheer_db: float
    clap_db: float
    singalong_db: float
    voices: tuple[VoiceSpec, ...]
    swells: tuple[EventSpec, ...]
    clap: ClapSpec
    singalong: SingalongSpec

    @property
    def n_voices(self) -> int:
        """Number of talkers in the babble."""
        return len(self.voices)


def sample_bed(rng: np.random.Generator, n_speech: int, n_cheer: int, n_applause: int, length_s: float, *,
               voices: tuple[int, int], clips_per_voice: int, gap_s: tuple[float, float],
               voice_gain_db: tuple[float, float], resample: tuple[float, float],
               swells_per_min: tuple[float, float], swell_s: tuple[float, float],
               swell_attack_frac: tuple[float, float], event_layers: tuple[int, int],
               event_gain_db: tuple[float, float], rhythmic_prob: float, clap_bpm: tuple[float, float],
               clappers: tuple[int, int], clap_jitter_s: tuple[float, float], clap_fraction: tuple[float, float],
               bursts_per_min: tuple[float, float], burst_s: tuple[float, float],
               burst_attack_frac: tuple[float, float], singalong_copies: tuple[int, int],
               singalong_delay_s: tuple[float, float], singalong_detune_cents: tuple[float, float],
               singalong_rate_hz: tuple[float, float], component_db: Mapping[str, tuple[float, float]]) -> BedSpec:
    """Draw a BedSpec; `n_*` say how many clips of each kind exist. Ranges are (lo, hi), uniform.

    Babble: talkers from `voices`, each a cycle of `clips_per_voice` speech clips after `gap_s` silences,
    at `voice_gain_db`, every clip at a playback rate from `resample`. Swells (none if `n_cheer` is 0):
    Poisson, `swells_per_min`, `swell_s` long, `event_layers` cheer clips each. Clapping (none if
    `n_applause` is 0): rhythmic with probability `rhythmic_prob` (`clap_bpm`, `clappers`, `clap_jitter_s`,
    over `clap_fraction` of the bed), else applause bursts (`bursts_per_min`, `burst_s`). Sing-along:
    `singalong_copies` chorus copies. `component_db` maps each of COMPONENTS to a level range (dB).
    Each part draws from its own child generator, so changing the clap knobs leaves the babble alone.
    """
    check_count(n_speech, "n_speech", 1)
    n_cheer, n_applause = check_count(n_cheer, "n_cheer", 0), check_count(n_applause, "n_applause", 0)
    length_s = check_positive(length_s, "length_s")
    if set(component_db) != set(COMPONENTS):
        raise ValueError(f"component_db: expected exactly the keys {COMPONENTS}, got {sorted(component_db)}")
    if not 0.0 <= rhythmic_prob <= 1.0:
        raise ValueError(f"rhythmic_prob: expected a probability in [0, 1], got {rhythmic_prob!r}")
    levels = {k: check_range(component_db[k], f"component_db[{k!r}]") for k in COMPONENTS}
    inf, r = math.inf, {}
    for name, value, low, high in (
            ("gap_s", gap_s, 0, inf), ("voice_gain_db", voice_gain_db, -inf, inf), ("resample", resample, 0.25, 4),
            ("swells_per_min", swells_per_min, 0, inf), ("swell_s", swell_s, 1e-3, inf),
            ("swell_attack_frac", swell_attack_frac, 1e-3, 0.999), ("event_gain_db", event_gain_db, -inf, inf),
            ("clap_bpm", clap_bpm, 1, inf), ("clap_jitter_s", clap_jitter_s, 0, inf),
            ("clap_fraction", clap_fraction, 1e-3, 1), ("bursts_per_min", bursts_per_min, 0, inf),
            ("burst_s", burst_s, 1e-3, inf), ("burst_attack_frac", burst_attack_frac, 1e-3, 0.999),
            ("singalong_delay_s", singalong_delay_s, 1e-3, inf),
            ("singalong_rate_hz", singalong_rate_hz, 1e-3, inf),
            ("singalong_detune_cents", singalong_detune_cents, 0, 600)):
        r[name] = check_range(value, name, low)
        if r[name][1] > high:
            raise ValueError(f"{name}: the upper end must be <= {high}, got {value!r}")
    n_vox, layers = check_int_range(voices, "voices", 1), check_int_range(event_layers, "event_layers", 1)
    n_clappers = check_int_range(clappers, "clappers", 1)
    copies = check_int_range(singalong_copies, "singalong_copies", 1)
    per_voice = check_count(clips_per_voice, "clips_per_voice", 1)
    g_voice, g_swell, g_clap, g_sing, g_level = rng.spawn(5)

    talkers = tuple(sample_voice(g_voice, n_speech, per_voice, r["gap_s"], r["voice_gain_db"], r["resample"])
                    for _ in range(int(g_voice.integers(n_vox[0], n_vox[1] + 1))))
    swells = sample_events(g_swell, n_cheer, r["swells_per_min"], length_s, r["swell_s"],
                           r["swell_attack_frac"], layers, r["event_gain_db"], r["resample"])
    rhythmic = bool(g_clap.uniform() < rhythmic_prob) and n_applause > 0
    span = float(g_clap.uniform(*r["clap_fraction"])) * length_s
    start = float(g_clap.uniform(0.0, length_s - span))
    bpm, jitter = float(g_clap.uniform(*r["clap_bpm"])), float(g_clap.uniform(*r["clap_jitter_s"]))
    k_clap, seed = int(g_clap.integers(n_clappers[0], n_clappers[1] + 1)), int(g_clap.integers(2**31))
    bursts = sample_events(g_clap, n_applause, r["bursts_per_min"], length_s, r["burst_s"],
                           r["burst_attack_frac"], layers, r["event_gain_db"], r["resample"])
    clap = ClapSpec(mode="rhythmic" if rhythmic else "bursts", bpm=bpm, start_s=start, end_s=start + span,
                    n_clappers=k_clap if rhythmic else 0, jitter_s=jitter, seed=seed,
                    bursts=() if rhythmic else bursts)
    sing = sample_singalong(g_sing, copies, r["singalong_delay_s"], r["singalong_detune_cents"],
                            r["singalong_rate_hz"])
    db = {name: float(g_level.uniform(*levels[name])) for name in COMPONENTS}
    return BedSpec(length_s=length_s, babble_db=db["babble"], cheer_db=db["cheer"], clap_db=db["clap"],
                   singalong_db=db["singalong"], voices=talkers, swells=swells, clap=clap, singalong=sing)


def _tuples(fields: Mapping) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def bed_from_dict(data: Mapping) -> BedSpec:
    """Rebuild a BedSpec from `dataclasses.asdict(spec)` (or its JSON round trip); equal to the original."""
    d = dict(data)
    events = lambda items: tuple(EventSpec(**_tuples(e)) for e in items)  # noqa: E731
    clap = {**d["clap"], "bursts": events(d["clap"]["bursts"])}
    return BedSpec(**{**d, "voices": tuple(VoiceSpec(**_tuples(v)) for v in d["voices"]),
                      "swells": events(d["swells"]), "clap": ClapSpec(**clap),
                      "singalong": SingalongSpec(**_tuples(d["singalong"]))})


def _grain_bank(rng: np.random.Generator, applause: Clips, sr: int) -> np.ndarray:
    """CLAP_GRAINS clap grains cut around loud peaks of the applause clips, unit energy: (CLAP_GRAINS, L)."""
    n_len, n_on, n_win = (max(1, int(round(s * sr))) for s in (CLAP_GRAIN_S, CLAP_ONSET_S, CLAP_SEARCH_S))
    t = np.arange(n_len - n_on) / sr
    env = np.concatenate([np.linspace(0.0, 1.0, n_on, endpoint=False), np.exp(-t / CLAP_DECAY_S)])
    bank = np.zeros((CLAP_GRAINS, n_len))
    for g in range(CLAP_GRAINS):
        x = np.pad(applause[int(rng.integers(len(applause)))], (n_on, n_len))
        s = int(rng.integers(max(1, x.size - n_len - n_win)))
        peak = s + int(np.argmax(np.abs(x[s:s + n_win])))
        grain = x[max(peak - n_on, 0):][:n_len]
        bank[g, :grain.size] = grain * env[:grain.size]
    energy = np.sqrt(np.sum(bank**2, axis=1, keepdims=True))
    return np.divide(bank, energy, out=np.zeros_like(bank), where=energy > 0)


def _render_rhythmic(clap: ClapSpec, applause: Clips, sr: int, n: int) -> np.ndarray:
    """Clappers on a beat grid, each clap a grain with jitter; unit RMS over the clap span: float64 (n,)."""
    rng = np.random.default_rng(clap.seed)
    bank = _grain_bank(rng, applause, sr)
    beats = np.arange(clap.start_s, clap.end_s, 60.0 / clap.bpm)  # (B,)
    fade = np.clip(np.minimum(beats - clap.start_s, clap.end_s - beats) / CLAP_FADE_S, 0.0, 1.0)
    lag = rng.normal(0.0, CLAPPER_LAG_S, size=(clap.n_clappers, 1))
    gain = 10.0 ** (rng.uniform(-CLAPPER_GAIN_SPREAD_DB, 0.0, size=(clap.n_clappers, 1)) / 20.0)
    jitter = rng.normal(0.0, clap.jitter_s, size=(clap.n_clappers, beats.size))
    onset = np.round((beats + lag + jitter) * sr).astype(np.int64)  # (K, B) sample of each clap
    amp = gain * fade * rng.uniform(0.6, 1.0, size=onset.shape)
    which = rng.integers(CLAP_GRAINS, size=onset.shape)
    onset, amp, which = onset.ravel(), amp.ravel(), which.ravel()
    out = np.zeros(n)
    for i in range(0, onset.size, CLAP_CHUNK):
        idx = onset[i:i + CLAP_CHUNK, None] + np.arange(bank.shape[1])  # (claps, L) output samples
        grains = amp[i:i + CLAP_CHUNK, None] * bank[which[i:i + CLAP_CHUNK]]
        keep = (idx >= 0) & (idx < n)
        out += np.bincount(idx[keep], weights=grains[keep], minlength=n)
    span = out[int(clap.start_s * sr):int(math.ceil(clap.end_s * sr))]
    power = float(np.mean(span**2)) if span.size else 0.0
    return out / math.sqrt(power) if power > 0 else out


def _check_clips(clips: Sequence[np.ndarray], name: str, used: Sequence[int]) -> dict[int, np.ndarray]:
    """The clips the spec uses, checked (1-D, non-empty, finite) as float64: index -> (n_samples,).

    Only those are checked (and converted), so a caller may pass a large bank of clips at little cost.
    """
    missing = [i for i in used if not 0 <= i < len(clips)]
    if missing:
        raise ValueError(f"{name}: the spec uses clip {max(missing)} but only {len(clips)} clips were given")
    return {i: check_audio(clips[i], f"{name}[{i}]") for i in sorted(set(used))}


def _render_parts(spec: BedSpec, speech: Sequence[np.ndarray], cheer: Sequence[np.ndarray],
                  applause: Sequence[np.ndarray], sr: int, music: np.ndarray | None) -> dict[str, np.ndarray]:
    """Check the inputs, render each of COMPONENTS at its level: float64 (n,); see `render_components`."""
    sr = check_sr(sr)
    if len(speech) == 0:
        raise ValueError("speech: no speech clips given (the babble needs at least one)")
    if spec.clap.mode not in CLAP_MODES:
        raise ValueError(f"clap.mode: expected one of {CLAP_MODES}, got {spec.clap.mode!r}")
    n = int(round(check_positive(spec.length_s, "length_s") * sr))
    rhythmic = spec.clap.mode == "rhythmic" and spec.clap.n_clappers > 0
    sp = _check_clips(speech, "speech", [c for v in spec.voices for c in v.clips])
    ch = _check_clips(cheer, "cheer", [c for e in spec.swells for c in e.clips])
    if rhythmic and len(applause) == 0:
        raise ValueError("applause: the spec claps rhythmically but no applause clips were given (for grains)")
    grains = list(range(len(applause))) if rhythmic else []  # the grain bank draws from every applause clip
    ap = _check_clips(applause, "applause", [c for e in spec.clap.bursts for c in e.clips] + grains)
    clap = _render_rhythmic(spec.clap, ap, sr, n) if rhythmic else render_events(spec.clap.bursts, ap, sr, n)
    sing = np.zeros(n) if music is None else render_singalong(spec.singalong, check_audio(music, "music"), sr, n)
    parts = {"babble": render_babble(spec.voices, sp, sr, n), "cheer": render_events(spec.swells, ch, sr, n),
             "clap": clap, "singalong": sing}
    return {k: 10.0 ** (getattr(spec, f"{k}_db") / 20.0) * part for k, part in parts.items()}


def render_components(spec: BedSpec, speech: Sequence[np.ndarray], cheer: Sequence[np.ndarray],
                      applause: Sequence[np.ndarray], sr: int,
                      music: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each of COMPONENTS at its level (`*_db`, before the final normalisation): name -> float32 (n,).

    n = round(length_s * sr). Clips are 1-D arrays at `sr`; `music` (n_music,) is aligned with the bed
    (looped or cut to n). Without music the "singalong" entry is zeros. Raises ValueError for no speech
    clips, empty or non-finite clips the spec uses, or a spec that indexes clips that were not given.
    """
    return {k: v.astype(np.float32) for k, v in _render_parts(spec, speech, cheer, applause, sr, music).items()}


def render_bed(spec: BedSpec, speech: Sequence[np.ndarray], cheer: Sequence[np.ndarray],
               applause: Sequence[np.ndarray], sr: int, music: np.ndarray | None = None) -> np.ndarray:
    """The crowd bed: the sum of `render_components`, scaled to BED_RMS_DB. float32 (round(length_s*sr),).

    Deterministic given the spec and clips. Raises ValueError (see `render_components`) and if the bed
    comes out silent (every clip it uses is silent).
    """
    total = sum(_render_parts(spec, speech, cheer, applause, sr, music).values())
    power = float(np.mean(total**2))
    if not power > 0:
        raise ValueError("crowd bed is silent: every speech, cheer and applause clip it uses is silent")
    return (total * (10.0 ** (BED_RMS_DB / 20.0) / math.sqrt(power))).astype(np.float32)


def nonstationarity(bed: np.ndarray, sr: int, frame_s: float = 0.5) -> float:
    """Std (dB) of the levels of consecutive `frame_s` frames of `bed` (n_samples,); ~0 for white noise.

    Frame levels are floored FLOOR_DB below the whole signal's level, so silent pauses count but do not
    dominate. Needs at least two whole frames; raises ValueError for a silent signal.
    """
    x = check_audio(bed, "bed")
    size = int(round(check_positive(frame_s, "frame_s") * check_sr(sr)))
    n_frames = x.size // max(size, 1)
    if size < 1 or n_frames < 2:
        raise ValueError(f"nonstationarity: need >= 2 frames of {frame_s} s, got {x.size} samples at {sr} Hz")
    power = np.mean(x[:n_frames * size].reshape(n_frames, size) ** 2, axis=1)
    overall = float(np.mean(power))
    if overall == 0.0:
        raise ValueError("bed: silent; nonstationarity is undefined")
    level_db = 10.0 * np.log10(np.maximum(power, overall * 10.0 ** (-FLOOR_DB / 10.0)))
    return float(np.std(level_db))

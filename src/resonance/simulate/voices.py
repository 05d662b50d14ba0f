"""Voices of a crowd: babble from chains of real speech clips, cheer (or applause) events made of layered
clips under slow envelopes, a sing-along chorus of the music, and synthetic speakers from espeak-ng.

Audio is 1-D float, shape (n_samples,), at `sr` Hz. A resample factor is a playback rate: `factor` > 1
plays faster and higher (the output is `1/factor` as long), < 1 slower and lower. `crowd` assembles beds.
"""

from __future__ import annotations

import functools
import io
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal

from resonance.simulate.mix import (
    check_audio,
    check_positive,
    check_range,
    check_sr,
    loop_to_length,
)
from resonance.simulate.phone import band_limit

MAX_DENOMINATOR = 48  # rational approximation of a resample factor: within ~0.05 % for factors near 1
SINGALONG_BAND_HZ = (200.0, 3000.0)  # roughly the band of a crowd's voices
Clips = Mapping[int, np.ndarray] | Sequence[np.ndarray]  # clips[i] is clip i, (n_samples,)


@dataclass(frozen=True)
class VoiceSpec:
    """One talker of a babble: speech clips played in a cycle, each after a gap of silence.

    `clips` index the speech clips, `gaps_s` (s) precede them and `resample` gives each clip's playback
    rate; `gain_db` is the talker's level; `start_frac` in [0, 1) is where in its cycle it is at t = 0.
    """

    clips: tuple[int, ...]
    gaps_s: tuple[float, ...]
    resample: tuple[float, ...]
    gain_db: float
    start_frac: float


@dataclass(frozen=True)
class EventSpec:
    """A cheer swell or applause burst: starts at `time_s`, lasts `duration_s`, peaks at `gain_db`.

    Raised-cosine rise over `attack_frac` of the duration, fall over the rest. Layers: `clips` (indices),
    each played at rate `resample` from `offset_frac` of its length, looped; layers add in power.
    """

    time_s: float
    duration_s: float
    attack_frac: float
    gain_db: float
    clips: tuple[int, ...]
    resample: tuple[float, ...]
    offset_frac: tuple[float, ...]


@dataclass(frozen=True)
class SingalongSpec:
    """Chorus copies of the music: base delay (s), peak detune (cents), delay wander rate (Hz), phase (rad)."""

    delays_s: tuple[float, ...]
    detune_cents: tuple[float, ...]
    rate_hz: tuple[float, ...]
    phase: tuple[float, ...]


def check_count(value: int, name: str, low: int) -> int:
    """Validate an integer count >= `low` and return it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def check_int_range(value: tuple[int, int], name: str, low: int) -> tuple[int, int]:
    """Validate a (lo, hi) range of integers with `low` <= lo <= hi; return it as ints."""
    lo, hi = check_range(value, name, low=low)
    if lo != int(lo) or hi != int(hi):
        raise ValueError(f"{name}: expected a (lo, hi) pair of integers, got {value!r}")
    return int(lo), int(hi)


@functools.lru_cache(maxsize=512)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR `resample_poly` designs by default for (up, down), cached (it copies it)."""
    max_rate = max(up, down)
    return signal.firwin(20 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def playback_rate(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `audio` (n_samples,) `factor` times faster (pitch and tempo together): float64 (~n/factor,).

    Polyphase resampling by the rational approximation of 1/factor with denominator <= MAX_DENOMINATOR.
    """
    x = check_audio(audio)
    ratio = Fraction(1.0 / check_positive(factor, "factor")).limit_denominator(MAX_DENOMINATOR)
    if ratio == 1:
        return x
    up, down = ratio.numerator, ratio.denominator
    return signal.resample_poly(x, up, down, window=_lowpass(up, down))


def cyclic(audio: np.ndarray, start: int, n: int) -> np.ndarray:
    """`audio` (m,) read circularly from sample `start` for exactly `n` samples: (n,)."""
    return np.resize(np.roll(audio, -start), n)


def unit_rms(audio: np.ndarray) -> np.ndarray:
    """`audio` (n_samples,) scaled to mean power 1 (float64); digital silence stays zeros."""
    power = float(np.mean(audio * audio))
    return audio / math.sqrt(power) if power > 0 else np.zeros_like(audio)


def sample_voice(rng: np.random.Generator, n_speech: int, clips_per_voice: int, gap_s: tuple[float, float],
                 gain_db: tuple[float, float], resample: tuple[float, float]) -> VoiceSpec:
    """Draw one talker: `clips_per_voice` clips (uniform, with repeats) of `n_speech`, gaps, rates, level."""
    idx = rng.integers(n_speech, size=clips_per_voice)
    gaps = rng.uniform(*gap_s, size=clips_per_voice)
    rates = rng.uniform(*resample, size=clips_per_voice)
    return VoiceSpec(clips=tuple(int(i) for i in idx), gaps_s=tuple(float(g) for g in gaps),
                     resample=tuple(float(r) for r in rates), gain_db=float(rng.uniform(*gain_db)),
                     start_frac=float(rng.uniform()))


def render_voice(voice: VoiceSpec, speech: Clips, sr: int, n: int) -> np.ndarray:
    """One talker over `n` samples: its clip cycle (unit-RMS clips, resampled, after their gaps), looped.

    Returns float64 (n,), not yet scaled by `gain_db`.
    """
    parts = []
    for clip, gap, rate in zip(voice.clips, voice.gaps_s, voice.resample, strict=True):
        parts.append(np.zeros(int(round(gap * sr))))
        parts.append(playback_rate(unit_rms(speech[clip]), rate))
    cycle = np.concatenate(parts)
    return cyclic(cycle, int(voice.start_frac * cycle.size), n)


def render_babble(voices: Sequence[VoiceSpec], speech: Clips, sr: int, n: int) -> np.ndarray:
    """Sum of all talkers, each at its `gain_db`, over `n` samples: float64 (n,), unit RMS (or zeros)."""
    out = np.zeros(n)
    for voice in voices:
        out += 10.0 ** (voice.gain_db / 20.0) * render_voice(voice, speech, sr, n)
    return unit_rms(out)


def sample_events(rng: np.random.Generator, n_clips: int, per_min: tuple[float, float], length_s: float,
                  duration_s: tuple[float, float], attack_frac: tuple[float, float], layers: tuple[int, int],
                  gain_db: tuple[float, float], resample: tuple[float, float]) -> tuple[EventSpec, ...]:
    """Draw events over a bed of `length_s` s: a Poisson number (rate per minute drawn from `per_min`; none
    if `n_clips` is 0), each starting so that at least half of it lies inside the bed."""
    count = int(rng.poisson(rng.uniform(*per_min) * length_s / 60.0))
    events = []
    for _ in range(count if n_clips else 0):
        dur, k = float(rng.uniform(*duration_s)), int(rng.integers(layers[0], layers[1] + 1))
        events.append(EventSpec(
            time_s=float(rng.uniform(-dur / 2, length_s - dur / 2)), duration_s=dur,
            attack_frac=float(rng.uniform(*attack_frac)), gain_db=float(rng.uniform(*gain_db)),
            clips=tuple(int(i) for i in rng.integers(n_clips, size=k)),
            resample=tuple(float(r) for r in rng.uniform(*resample, size=k)),
            offset_frac=tuple(float(o) for o in rng.uniform(size=k))))
    return tuple(events)


def sample_singalong(rng: np.random.Generator, copies: tuple[int, int], delay_s: tuple[float, float],
                     detune_cents: tuple[float, float], rate_hz: tuple[float, float]) -> SingalongSpec:
    """Draw a chorus: a number of copies from `copies`, then per copy a delay, detune, rate and phase."""
    k = int(rng.integers(copies[0], copies[1] + 1))
    return SingalongSpec(*(tuple(float(v) for v in rng.uniform(lo, hi, size=k))
                           for lo, hi in (delay_s, detune_cents, rate_hz, (0.0, 2.0 * math.pi))))


def _envelope(n: int, attack_frac: float) -> np.ndarray:
    """Raised-cosine rise over `attack_frac` of `n` samples, raised-cosine fall over the rest: (n,)."""
    t = np.arange(n) / n
    rise = 0.5 - 0.5 * np.cos(np.pi * np.minimum(t / attack_frac, 1.0))
    fall = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - attack_frac) / (1.0 - attack_frac), 0.0, 1.0))
    return np.where(t < attack_frac, rise, fall)


def render_events(events: Sequence[EventSpec], clips: Clips, sr: int, n: int) -> np.ndarray:
    """Events over `n` samples: each one's layered, unit-RMS, resampled clips, looped to its duration,
    times its envelope and gain, added at its time (cut at the bed's ends). float64 (n,)."""
    out = np.zeros(n)
    for ev in events:
        m, i0 = int(round(ev.duration_s * sr)), int(round(ev.time_s * sr))
        layers = np.zeros(m)
        for clip, rate, off in zip(ev.clips, ev.resample, ev.offset_frac, strict=True):
            y = playback_rate(unit_rms(clips[clip]), rate)
            layers += cyclic(y, int(off * y.size), m)
        seg = 10.0 ** (ev.gain_db / 20.0) * _envelope(m, ev.attack_frac) * layers / math.sqrt(len(ev.clips))
        a, b = max(i0, 0), min(i0 + m, n)
        if b > a:
            out[a:b] += seg[a - i0:b - i0]
    return out


def render_singalong(sing: SingalongSpec, music: np.ndarray, sr: int, n: int) -> np.ndarray:
    """A crowd singing along: `music` (looped or cut to n) band-limited to SINGALONG_BAND_HZ, summed over
    the chorus copies, each read through a wandering delay d(t) = d0 + D (1 + sin(2 pi f t + phase)) with
    D 2 pi f = 1 - 2**(-cents/1200) (peak detune in cents; no drift from the song). Unit RMS, float64 (n,).
    """
    x = band_limit(loop_to_length(music, n), sr, *SINGALONG_BAND_HZ).astype(np.float64)
    t = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for d0, cents, rate, phase in zip(sing.delays_s, sing.detune_cents, sing.rate_hz, sing.phase, strict=True):
        depth_s = (1.0 - 2.0 ** (-cents / 1200.0)) / (2.0 * math.pi * rate)
        delay_s = d0 + depth_s * (1.0 + np.sin(2.0 * math.pi * rate * t / sr + phase))
        out += np.interp(t - delay_s * sr, t, x, left=0.0)
    return unit_rms(out)


def synth_voices(texts: Sequence[str], voices: Sequence[str], sr: int, speed_wpm: tuple[int, int],
                 pitch: tuple[int, int], rng: np.random.Generator, *, timeout_s: float = 30.0) -> list[np.ndarray]:
    """Speak each text with espeak-ng: one float32 clip (n_samples,) at `sr` Hz per text, in order.

    For each text an espeak-ng voice is drawn from `voices` (e.g. "en-us", "cs", "nl"), a speed in words
    per minute from `speed_wpm` and a pitch (0-99) from `pitch` (integers, inclusive). The text goes in on
    stdin (so a leading '-' is not an option). Raises ValueError for empty texts or voices, and
    RuntimeError if espeak-ng is missing (saying how to install it) or fails (e.g. an unknown voice).
    """
    from resonance.audio import require_tool

    sr = check_sr(sr)
    if not texts or not voices or any(not str(t).strip() for t in texts):
        raise ValueError("synth_voices: need at least one voice and one text, and no empty text")
    speeds = check_int_range(speed_wpm, "speed_wpm", low=80)
    pitches = check_int_range(pitch, "pitch", low=0)
    if pitches[1] > 99:
        raise ValueError(f"pitch: espeak-ng pitch is 0..99, got {pitch!r}")
    espeak = require_tool("espeak-ng")
    clips = []
    for text in texts:
        voice = str(voices[int(rng.integers(len(voices)))])
        speed = int(rng.integers(speeds[0], speeds[1] + 1))
        pit = int(rng.integers(pitches[0], pitches[1] + 1))
        cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pit), "--stdout", "--stdin"]
        proc = subprocess.run(cmd, input=str(text).encode(), capture_output=True, timeout=timeout_s, check=False)
        if proc.returncode != 0 or not proc.stdout:
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise RuntimeError(f"espeak-ng -v {voice} failed (exit {proc.returncode}): {err}")
        clips.append(_decode_wav(proc.stdout, sr))
    return clips


def _decode_wav(data: bytes, sr: int) -> np.ndarray:
    """WAV bytes (any rate, mono or first channel) -> float32 (n_samples,) at `sr` Hz."""
    import soundfile as sf

    audio, sr_in = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    ratio = Fraction(sr, int(sr_in))
    y = audio[:, 0]
    if ratio != 1:
        y = signal.resample_poly(y, ratio.numerator, ratio.denominator)
    return y.astype(np.float32)

"""PA coloration: a three-band EQ (RBJ biquads), bus compression and brick-wall limiting.

Audio is 1-D, shape (n_samples,), at `sr` Hz; outputs are float32 of the same shape. Everything is
vectorised (no per-sample Python loop): the level detectors use the identity
``y[n] = max(r[n], a * y[n-1])  <=>  log y[n] = n log a + cummax_k(log r[k] - k log a)``
so an instantaneous-attack / exponential-release follower is one `np.maximum.accumulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from resonance.simulate.mix import (
    check_audio,
    check_finite,
    check_positive,
    check_range,
    check_sr,
)


@dataclass(frozen=True)
class EqSpec:
    """A PA's tonal balance: low shelf, mid peaking band and high shelf (gains in dB, corners in Hz)."""

    bass_gain_db: float
    bass_freq_hz: float
    mid_gain_db: float
    mid_freq_hz: float
    mid_q: float
    treble_gain_db: float
    treble_freq_hz: float


@dataclass(frozen=True)
class CompressorSpec:
    """A bus compressor: peak threshold (dBFS), ratio (>= 1), attack/release times (ms), makeup gain (dB)."""

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float
    makeup_db: float


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_eq(rng: np.random.Generator, bass_gain_db: tuple[float, float], bass_freq_hz: tuple[float, float],
              mid_gain_db: tuple[float, float], mid_freq_hz: tuple[float, float], mid_q: tuple[float, float],
              treble_gain_db: tuple[float, float], treble_freq_hz: tuple[float, float]) -> EqSpec:
    """Draw an EqSpec: gains uniform in their (lo, hi) dB ranges; frequencies and Q log-uniform."""
    gains = [check_range(r, n) for r, n in ((bass_gain_db, "bass_gain_db"), (mid_gain_db, "mid_gain_db"),
                                            (treble_gain_db, "treble_gain_db"))]
    freqs = [check_range(r, n, low=1e-9) for r, n in ((bass_freq_hz, "bass_freq_hz"),
                                                      (mid_freq_hz, "mid_freq_hz"), (mid_q, "mid_q"),
                                                      (treble_freq_hz, "treble_freq_hz"))]
    g = [float(rng.uniform(lo, hi)) for lo, hi in gains]
    f = [_log_uniform(rng, lo, hi) for lo, hi in freqs]
    return EqSpec(bass_gain_db=g[0], bass_freq_hz=f[0], mid_gain_db=g[1], mid_freq_hz=f[1], mid_q=f[2],
                  treble_gain_db=g[2], treble_freq_hz=f[3])


def sample_compressor(rng: np.random.Generator, threshold_db: tuple[float, float], ratio: tuple[float, float],
                      attack_ms: tuple[float, float], release_ms: tuple[float, float],
                      makeup_db: tuple[float, float]) -> CompressorSpec:
    """Draw a CompressorSpec: threshold, ratio and makeup uniform; attack and release log-uniform."""
    thr, mk = check_range(threshold_db, "threshold_db"), check_range(makeup_db, "makeup_db")
    rat = check_range(ratio, "ratio", low=1.0)
    att, rel = check_range(attack_ms, "attack_ms", low=1e-9), check_range(release_ms, "release_ms", low=1e-9)
    return CompressorSpec(threshold_db=float(rng.uniform(*thr)), ratio=float(rng.uniform(*rat)),
                          attack_ms=_log_uniform(rng, *att), release_ms=_log_uniform(rng, *rel),
                          makeup_db=float(rng.uniform(*mk)))


def _biquad(kind: str, sr: int, freq_hz: float, gain_db: float, q: float) -> np.ndarray:
    """One RBJ-cookbook biquad as an SOS row [b0, b1, b2, 1, a1, a2]; `q` for the peak (shelves: S = 1)."""
    if not 0 < freq_hz < sr / 2:
        raise ValueError(f"EQ {kind} frequency {freq_hz:.1f} Hz must lie in (0, sr/2 = {sr / 2:.0f} Hz)")
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq_hz / sr
    cw, alpha = math.cos(w0), math.sin(w0) / (2.0 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    else:
        k = 2.0 * math.sqrt(a) * math.sin(w0) / math.sqrt(2.0)  # 2 sqrt(A) alpha with S = 1
        sgn = 1.0 if kind == "low" else -1.0
        b = [a * ((a + 1) - sgn * (a - 1) * cw + k), sgn * 2 * a * ((a - 1) - sgn * (a + 1) * cw),
             a * ((a + 1) - sgn * (a - 1) * cw - k)]
        den = [(a + 1) + sgn * (a - 1) * cw + k, -sgn * 2 * ((a - 1) + sgn * (a + 1) * cw),
               (a + 1) + sgn * (a - 1) * cw - k]
    return np.array([*(v / den[0] for v in b), 1.0, den[1] / den[0], den[2] / den[0]])


def apply_eq(audio: np.ndarray, sr: int, spec: EqSpec) -> np.ndarray:
    """Filter `audio` (n_samples,) through the low shelf, mid peak and high shelf of `spec`; float32 out.

    Corner frequencies must be below sr/2 (ValueError otherwise). All gains 0 dB is the identity.
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    q = check_positive(spec.mid_q, "mid_q")
    sos = np.stack([_biquad("low", sr, spec.bass_freq_hz, check_finite(spec.bass_gain_db, "bass_gain_db"),
                            1 / math.sqrt(2)),
                    _biquad("peak", sr, spec.mid_freq_hz, check_finite(spec.mid_gain_db, "mid_gain_db"), q),
                    _biquad("high", sr, spec.treble_freq_hz,
                            check_finite(spec.treble_gain_db, "treble_gain_db"), 1 / math.sqrt(2))])
    return signal.sosfilt(sos, x).astype(np.float32)


def _hold_release(reduction: np.ndarray, coeff: float) -> np.ndarray:
    """y[n] = max(r[n], coeff * y[n-1]) for r >= 0 (instant attack, exponential release), vectorised."""
    n_log_a = np.arange(reduction.size) * math.log(coeff)
    with np.errstate(divide="ignore"):
        log_r = np.log(reduction)
    return np.exp(np.maximum.accumulate(log_r - n_log_a) + n_log_a)


def _coeff(time_ms: float, sr: int) -> float:
    """One-pole coefficient for a time constant in ms (the envelope falls to 1/e in `time_ms`)."""
    return math.exp(-1000.0 / (time_ms * sr))


def _over_db(x: np.ndarray, level_db: float) -> np.ndarray:
    """How far |x| exceeds `level_db` (dBFS), in dB, clipped at 0."""
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(np.abs(x)) - level_db, 0.0)


def apply_compressor(audio: np.ndarray, sr: int, spec: CompressorSpec) -> np.ndarray:
    """Peak bus compressor on `audio` (n_samples,) -> float32 (n_samples,).

    Gain reduction (dB) = (peak level - threshold) * (1 - 1/ratio) above threshold; it is held with an
    exponential release (`release_ms`), then smoothed by a one-pole attack (`attack_ms`), so fast
    transients partly pass (as on a real bus compressor). Makeup gain is added at the end.
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    thr, makeup = check_finite(spec.threshold_db, "threshold_db"), check_finite(spec.makeup_db, "makeup_db")
    ratio = check_positive(spec.ratio, "ratio")
    if ratio < 1.0:
        raise ValueError(f"ratio: a compressor needs ratio >= 1, got {ratio}")
    a_att = _coeff(check_positive(spec.attack_ms, "attack_ms"), sr)
    a_rel = _coeff(check_positive(spec.release_ms, "release_ms"), sr)
    wanted = _over_db(x, thr) * (1.0 - 1.0 / ratio)
    held = _hold_release(wanted, a_rel)
    smooth = signal.lfilter([1.0 - a_att], [1.0, -a_att], held)
    return (x * 10.0 ** ((makeup - smooth) / 20.0)).astype(np.float32)


def apply_limiter(audio: np.ndarray, sr: int, ceiling_db: float, lookahead_ms: float,
                  release_ms: float) -> np.ndarray:
    """Brick-wall look-ahead limiter: `audio` (n_samples,) -> float32 with |out| <= 10**(ceiling_db/20).

    The needed reduction (dB) is maximised over the next `lookahead_ms`, held with an exponential
    release (`release_ms`), then averaged over the past `lookahead_ms`: each average only contains values
    >= the reduction needed now, so the ceiling holds without clipping (a final clip only removes float
    rounding). No latency: the look-ahead reads future samples of the offline signal.
    """
    x = check_audio(audio)
    sr = check_sr(sr)
    ceiling = 10.0 ** (check_finite(ceiling_db, "ceiling_db") / 20.0)
    if not (math.isfinite(lookahead_ms) and lookahead_ms >= 0):
        raise ValueError(f"lookahead_ms: expected a finite number >= 0, got {lookahead_ms!r}")
    size = max(1, int(round(lookahead_ms * sr / 1000.0)))
    need = _over_db(x, ceiling_db)
    ahead = ndimage.maximum_filter1d(need, size, origin=-(size // 2), mode="constant", cval=0.0)  # [n, n+L)
    held = _hold_release(ahead, _coeff(check_positive(release_ms, "release_ms"), sr))
    smooth = ndimage.uniform_filter1d(held, size, origin=(size - 1) // 2, mode="nearest")  # (n-L, n]
    y = (x * 10.0 ** (-smooth / 20.0)).astype(np.float32)
    top = np.float32(ceiling)
    if top > ceiling:  # float32 rounding must not lift the ceiling
        top = np.nextafter(top, np.float32(0))
    return np.clip(y, -top, top)


def apply_pa(audio: np.ndarray, sr: int, eq: EqSpec, compressor: CompressorSpec, ceiling_db: float,
             lookahead_ms: float, release_ms: float) -> np.ndarray:
    """The whole PA chain: EQ -> bus compressor -> limiter (ceiling in dBFS). (n_samples,) -> float32."""
    y = apply_eq(audio, sr, eq)
    y = apply_compressor(y, sr, compressor)
    return apply_limiter(y, sr, ceiling_db, lookahead_ms, release_ms)

"""Venue acoustics: draw a room (club to arena, or an open-air field), render the two PA-to-phone impulse
responses, measure their RT60, and play music through them.

Geometry: x runs from the stage wall to the back, y across, z up. The left and right PA stacks stand
`PA_FROM_WALL_M` from the stage wall, symmetric about the room's centre line; the phone is `distance_m`
further down the room (clamped to fit), somewhere in the central half of the width.

`render_rirs` is a fast hybrid whose late decay is exactly the drawn RT60 in every room. The
pyroomacoustics image-source model (ISM: `use_rand_ism=False`, air absorption on, no ray tracing, Eyring
wall absorption, order just high enough for the reflections before the splice, at most `max_order_cap`)
gives the direct sound and the early reflections up to `early_s` after the last direct sound. Then a
synthetic tail: Gaussian noise shaped like the last 50 ms of ISM, decaying at exactly `rt60_s`, cross-faded
in over 10 ms, at one level for both stacks: the diffuse field's (`diffuse_energy`, with the ISM's air
absorption) or, if higher, that of those 50 ms (a shoebox ISM rings ~1.5x long). Where the images fall
short of the diffuse field (a stadium's first wall reflections come after several hundred ms), the
shortfall is added under them from `DIRECT_GUARD_S` after the direct sound on, so that the T20 reads the
RT60. The noise is seeded by `RoomSpec.tail_seed`: rendering is deterministic. Open-air stages get the
direct sound, one ground reflection and a weak exponential tail. The common propagation delay is removed
(L/R delay differences stay) and the pair is scaled to unit total energy: the phone's AGC sets the level
downstream, and the SNR against the crowd is set explicitly by `mix.mix_at_snr`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from resonance.simulate.mix import check_audio, check_finite, check_positive, check_range, check_sr

SPEED_OF_SOUND_M_S = 343.0  # pyroomacoustics' default
WALL_MARGIN_M = 0.5  # every source and the mic stay this far inside the box
PA_FROM_WALL_M = 1.0  # the PA line's distance from the stage wall
MAX_ABSORPTION = 0.9  # the deadest walls allowed (Eyring): bounds the shortest RT60 of a room
SPLICE_WINDOW_S = 0.05  # ISM stretch whose spectrum (and level, if above the diffuse field) the tail continues
CROSSFADE_S = 0.01
DIRECT_GUARD_S = 0.02  # gap after the direct sound, before the match window and any diffuse fill


@dataclass(frozen=True)
class RoomSpec:
    """One venue: box dims (m), RT60 (s), left/right PA and phone positions (m), stage distance (m)."""

    dims_m: tuple[float, float, float]
    rt60_s: float
    source_left_m: tuple[float, float, float]
    source_right_m: tuple[float, float, float]
    mic_m: tuple[float, float, float]
    distance_m: float
    open_air: bool
    tail_seed: int


def _sabine_terms(dims: tuple[float, float, float]) -> float:
    """24 ln(10) V / (c S): RT60 (s) times the -ln(1 - absorption) Eyring needs for it."""
    volume = math.prod(dims)
    surface = 2.0 * sum(a * b for a, b in itertools.combinations(dims, 2))
    return 24.0 * math.log(10.0) * volume / (SPEED_OF_SOUND_M_S * surface)


def _min_rt60_s(dims: tuple[float, float, float]) -> float:
    """Eyring RT60 (s) of the box with the deadest allowed walls (MAX_ABSORPTION)."""
    return _sabine_terms(dims) / -math.log(1.0 - MAX_ABSORPTION)


def eyring_absorption(rt60_s: float, dims_m: tuple[float, float, float]) -> float:
    """Wall energy absorption giving `rt60_s` (s) in a box `dims_m` (m) by Eyring's formula, in (0, 1).

    Eyring, not Sabine (`pra.inverse_sabine`): image sources lose (1 - a) of their energy per bounce,
    which is Eyring's model, and Sabine makes short-RT60 halls far too dead (a -> 1, no reverb left).
    """
    return 1.0 - math.exp(-_sabine_terms(dims_m) / check_positive(rt60_s, "rt60_s"))


def ism_order(time_s: float, dims_m: tuple[float, float, float]) -> int:
    """Image-source order that holds every reflection arriving within `time_s` (pyroomacoustics' rule)."""
    radius = min(a * b / math.hypot(a, b) for a, b in itertools.combinations(dims_m, 2))
    return max(1, math.ceil(SPEED_OF_SOUND_M_S * time_s / radius - 1))


def sample_room(rng: np.random.Generator, length_m: tuple[float, float], width_m: tuple[float, float],
                height_m: tuple[float, float], rt60_s: tuple[float, float], distance_m: tuple[float, float],
                *, open_air_prob: float = 0.0, open_air_rt60_s: tuple[float, float] = (0.2, 0.6),
                pa_height_m: tuple[float, float] = (2.0, 4.0), pa_spacing_m: tuple[float, float] = (4.0, 12.0),
                mic_height_m: tuple[float, float] = (1.3, 1.9), size_jitter: float = 0.15) -> RoomSpec:
    """Draw a venue. Ranges are (lo, hi); every draw happens in a fixed order, whatever the branch.

    Size: one quantile q ~ U(0, 1) (club .. arena), each dimension log-interpolated in its range at
    q + U(-size_jitter, size_jitter), so length, width and height grow together. RT60: uniform over the
    part of `rt60_s` the box can reach (>= the Eyring RT60 with MAX_ABSORPTION walls; if the whole range
    is too short, that minimum). With probability `open_air_prob` the stage is open-air: the field is
    lengthened to fit `distance_m`, and the RT60 (of a weak tail) is drawn from `open_air_rt60_s`.
    PA stacks: `pa_spacing_m` apart (clamped to the width), `pa_height_m` high; phone at `mic_height_m`.
    """
    box = 2 * WALL_MARGIN_M + 1e-6
    r = {name: check_range(value, name, low) for name, value, low in (
        ("length_m", length_m, box), ("width_m", width_m, box), ("height_m", height_m, box),
        ("rt60_s", rt60_s, 1e-3), ("open_air_rt60_s", open_air_rt60_s, 1e-3),
        ("distance_m", distance_m, 0.0), ("pa_spacing_m", pa_spacing_m, 0.0),
        ("pa_height_m", pa_height_m, 0.0), ("mic_height_m", mic_height_m, 0.0))}
    if not (0.0 <= open_air_prob <= 1.0 and 0.0 <= size_jitter <= 1.0):
        raise ValueError(f"open_air_prob, size_jitter: need [0, 1], got {open_air_prob}, {size_jitter}")

    q = rng.uniform()
    jitter = rng.uniform(-size_jitter, size_jitter, size=3)
    length, width, height = (float(r[name][0] * (r[name][1] / r[name][0]) ** np.clip(q + j, 0.0, 1.0))
                             for name, j in zip(("length_m", "width_m", "height_m"), jitter))
    is_open = bool(rng.uniform() < open_air_prob)
    u_rt, rt_open = rng.uniform(), float(rng.uniform(*r["open_air_rt60_s"]))
    dist, spacing = float(rng.uniform(*r["distance_m"])), float(rng.uniform(*r["pa_spacing_m"]))
    pa_h, mic_h = float(rng.uniform(*r["pa_height_m"])), float(rng.uniform(*r["mic_height_m"]))
    lateral = float(rng.uniform(-0.25, 0.25))  # phone somewhere in the central half of the width
    tail_seed = int(rng.integers(2**31))

    if is_open:
        length = max(length, PA_FROM_WALL_M + dist + WALL_MARGIN_M)
    height = max(height, pa_h + WALL_MARGIN_M, mic_h + WALL_MARGIN_M)
    dims = (length, width, height)
    lo, hi = max(r["rt60_s"][0], _min_rt60_s(dims)), r["rt60_s"][1]
    rt = rt_open if is_open else (lo + u_rt * (hi - lo) if hi > lo else lo)
    pa_x = min(PA_FROM_WALL_M, length / 2)
    spacing = min(spacing, width - 2 * WALL_MARGIN_M)
    mic_x = min(pa_x + dist, length - WALL_MARGIN_M)
    return RoomSpec(dims_m=dims, rt60_s=float(rt),
                    source_left_m=(pa_x, width / 2 - spacing / 2, pa_h),
                    source_right_m=(pa_x, width / 2 + spacing / 2, pa_h),
                    mic_m=(mic_x, width / 2 + lateral * width, mic_h),
                    distance_m=mic_x - pa_x, open_air=is_open, tail_seed=tail_seed)


def _check_spec(spec: RoomSpec) -> None:
    dims = np.asarray(spec.dims_m, float)
    if dims.shape != (3,) or not np.all(np.isfinite(dims)) or np.any(dims <= 0):
        raise ValueError(f"RoomSpec.dims_m: expected three positive lengths, got {spec.dims_m}")
    for name in ("source_left_m", "source_right_m", "mic_m"):
        pos = np.asarray(getattr(spec, name), float)
        if pos.shape != (3,) or not np.all((pos > 0) & (pos < dims)):
            raise ValueError(f"RoomSpec.{name}: {getattr(spec, name)} is not inside the room {spec.dims_m}")
    check_positive(spec.rt60_s, "RoomSpec.rt60_s")


def _ism(spec: RoomSpec, sr: int, materials: object, order: int) -> tuple[np.ndarray, object]:
    """pyroomacoustics ISM responses of both stacks at the mic, (2, n) zero-padded to one length; the room."""
    import pyroomacoustics as pra

    room = pra.ShoeBox(list(spec.dims_m), fs=sr, materials=materials, max_order=order,
                       air_absorption=True, ray_tracing=False, use_rand_ism=False)
    room.add_source(list(spec.source_left_m))
    room.add_source(list(spec.source_right_m))
    room.add_microphone(list(spec.mic_m))
    room.compute_rir()
    rirs = [np.asarray(room.rir[0][k], dtype=np.float64) for k in (0, 1)]
    n = max(h.size for h in rirs)
    return np.stack([np.pad(h, (0, n - h.size)) for h in rirs]), room


def _direct_index(spec: RoomSpec, sr: int) -> np.ndarray:
    """Sample index of each stack's direct sound in the pyroomacoustics responses, shape (2,)."""
    import pyroomacoustics as pra

    mic = np.asarray(spec.mic_m)
    dist = [np.linalg.norm(np.asarray(p) - mic) for p in (spec.source_left_m, spec.source_right_m)]
    return np.asarray(dist) / pra.constants.get("c") * sr + pra.constants.get("frac_delay_length") // 2


def diffuse_energy(t_s: float, rt60_s: float, dims_m: tuple[float, float, float]) -> float:
    """Energy per second of the diffuse field `t_s` after emission, in ISM units (direct sound at r: 1/r^2).

    Images arrive at 4 pi c^3 t^2 / V per second with energy (1 - a)^reflections / (c t)^2 each: 4 pi c / V
    per second, decaying at the Eyring RT60. Past one mean free path 4V/S this sums to the classical
    reverberant-to-direct ratio 16 pi r^2 / R, R = S a' / (1 - a), a' = -ln(1 - a).
    """
    return 4.0 * math.pi * SPEED_OF_SOUND_M_S / math.prod(dims_m) * 10.0 ** (-6.0 * t_s / rt60_s)


def _decaying_noise(rng: np.random.Generator, n: int, rt60_s: float, sr: int,
                    shape_like: np.ndarray | None) -> np.ndarray:
    """Unit-variance noise (n,), spectrally shaped like `shape_like` if given, decaying 60 dB per `rt60_s`."""
    noise = rng.standard_normal(n)
    if shape_like is not None and np.any(shape_like):
        freqs, psd = signal.welch(shape_like, fs=sr, nperseg=min(256, shape_like.size))
        fir = signal.firwin2(129, freqs, np.sqrt(psd / psd.max()), fs=sr)
        noise = signal.fftconvolve(noise, fir, mode="same")
        noise /= np.sqrt(np.mean(noise**2))
    return noise * np.exp(-3.0 * math.log(10.0) * np.arange(n) / (rt60_s * sr))


def _render_hall(spec: RoomSpec, sr: int, max_order_cap: int, early_s: float) -> np.ndarray:
    import pyroomacoustics as pra

    direct = _direct_index(spec, sr)
    i_splice = int(direct.max() + early_s * sr)
    n_x, n_w, n_g = (int(x * sr) for x in (CROSSFADE_S, SPLICE_WINDOW_S, DIRECT_GUARD_S))
    i0, n = i_splice - n_x, max(int(direct.min() + spec.rt60_s * sr), i_splice + 1)
    order = min(ism_order(i_splice / sr, spec.dims_m), max_order_cap)  # later images are replaced anyway
    absorption = min(eyring_absorption(spec.rt60_s, spec.dims_m), MAX_ABSORPTION)
    h, room = _ism(spec, sr, pra.Material(absorption), order)
    h = np.pad(h, ((0, 0), (0, max(0, n - h.shape[1]))))[:, :n]
    t0 = (i0 - pra.constants.get("frac_delay_length") // 2) / sr  # i0's time after emission
    air = float(np.average(np.exp(-np.asarray(room.air_absorption) * SPEED_OF_SOUND_M_S * t0),
                           weights=room.octave_bands.get_bw()))  # the ISM's air loss at t0, flat spectrum
    decay = 10.0 ** (-6.0 * np.arange(n_w, 0, -1) / (spec.rt60_s * sr))  # energy, back to i0
    matched = np.mean(h[:, i0 - n_w: i0] ** 2 * decay, axis=1)  # per sample, at i0
    level2 = max(diffuse_energy(t0, spec.rt60_s, spec.dims_m) * air / sr, float(np.mean(matched)))
    rng = np.random.default_rng(spec.tail_seed)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_x) / n_x)
    for k in (0, 1):
        i_b, window = int(direct[k]) + n_g, h[k, i0 - n_w: i0].copy()
        tail = math.sqrt(level2) * _decaying_noise(rng, n - i0, spec.rt60_s, sr, window)
        bed = _decaying_noise(rng, i_splice - i_b, spec.rt60_s, sr, window)  # the diffuse shortfall, if any
        bed *= math.sqrt(max(0.0, level2 - matched[k])) * 10.0 ** (3.0 * (i0 - i_b) / (spec.rt60_s * sr))
        h[k, i_b:i0] += bed[: i0 - i_b]
        h[k, i0:i_splice] = (h[k, i0:i_splice] + bed[i0 - i_b:]) * (1.0 - ramp) + tail[:n_x] * ramp
        h[k, i_splice:] = tail[n_x:]
    return h


def _render_open_air(spec: RoomSpec, sr: int, ground_absorption: float, open_air_drr_db: float) -> np.ndarray:
    import pyroomacoustics as pra

    walls = {w: pra.Material(1.0) for w in ("east", "west", "north", "south", "ceiling")}
    h, _ = _ism(spec, sr, {**walls, "floor": pra.Material(ground_absorption)}, 1)
    direct = _direct_index(spec, sr).astype(int)
    n = max(h.shape[1], int(direct.max() + spec.rt60_s * sr))
    h = np.pad(h, ((0, 0), (0, n - h.shape[1])))
    rng = np.random.default_rng(spec.tail_seed)
    for k in (0, 1):
        tail = _decaying_noise(rng, n - direct[k], spec.rt60_s, sr, None)
        tail_energy = float(np.sum(h[k] ** 2)) * 10.0 ** (-open_air_drr_db / 10.0)
        gain = math.sqrt(tail_energy / float(np.sum(tail**2)))
        h[k, direct[k]:] += gain * tail
    return h


def render_rirs(spec: RoomSpec, sr: int, *, max_order_cap: int = 12, early_s: float = 0.1,
                ground_absorption: float = 0.7, open_air_drr_db: float = 20.0) -> np.ndarray:
    """Impulse responses from the left and right PA stacks to the phone: float32 (2, n_taps) at `sr` Hz.

    Halls: ISM early reflections (order <= `max_order_cap`) for `early_s` (>= 0.08 s) after the last
    direct sound, then a synthetic tail decaying at `spec.rt60_s` (see the module docstring).
    Open air: direct sound, a ground reflection (energy absorption `ground_absorption`) and a tail
    `open_air_drr_db` below them. The common delay is removed (the earliest direct sound sits at tap 40,
    the ISM's fractional-delay half-length) and the two responses together have unit energy.
    """
    import pyroomacoustics as pra

    sr = check_sr(sr)
    _check_spec(spec)
    if isinstance(max_order_cap, bool) or not isinstance(max_order_cap, int) or max_order_cap < 1:
        raise ValueError(f"max_order_cap: expected an integer >= 1, got {max_order_cap!r}")
    if not early_s >= DIRECT_GUARD_S + SPLICE_WINDOW_S + CROSSFADE_S:
        raise ValueError(f"early_s: need >= {DIRECT_GUARD_S + SPLICE_WINDOW_S + CROSSFADE_S:.2f} s")
    if not 0.0 <= ground_absorption <= 1.0:
        raise ValueError(f"ground_absorption: expected a value in [0, 1], got {ground_absorption}")
    if spec.open_air:
        h = _render_open_air(spec, sr, ground_absorption, check_finite(open_air_drr_db, "open_air_drr_db"))
    else:
        h = _render_hall(spec, sr, max_order_cap, early_s)
    h = h[:, max(0, int(_direct_index(spec, sr).min()) - pra.constants.get("frac_delay_length") // 2):]
    return (h / math.sqrt(float(np.sum(h**2)))).astype(np.float32)


def measure_rt60(rir: np.ndarray, sr: int, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """RT60 (s) of an impulse response (n_taps,) by Schroeder backward integration.

    A line is fitted to the energy decay curve between `fit_db` = (start, end) dB (default T20) and
    extrapolated to -60 dB. Raises ValueError if the response never decays to `end`.
    """
    h = check_audio(rir, "rir")
    sr = check_sr(sr)
    start_db, end_db = fit_db
    if not 0 >= start_db > end_db:
        raise ValueError(f"fit_db: need 0 >= start > end, got {fit_db}")
    energy = np.cumsum((h * h)[::-1])[::-1]
    if energy[0] <= 0:
        raise ValueError("rir: silent")
    with np.errstate(divide="ignore"):
        edc_db = 10.0 * np.log10(energy / energy[0])
    idx = np.nonzero((edc_db <= start_db) & (edc_db >= end_db))[0]
    if idx.size < 2 or edc_db[-1] > end_db:
        raise ValueError(f"rir: the decay never reaches {end_db} dB; cannot fit an RT60")
    slope_db_per_s = np.polyfit(idx / sr, edc_db[idx], 1)[0]
    if slope_db_per_s >= 0:
        raise ValueError("rir: energy does not decay")
    return float(-60.0 / slope_db_per_s)


def apply_room(audio: np.ndarray, rirs: np.ndarray) -> np.ndarray:
    """Play music through the two PA stacks into the phone: mono float32 (n_samples,).

    `audio` is mono (n_samples,) (fed to both stacks) or stereo (2, n_samples) (left, right);
    `rirs` is (2, n_taps) from `render_rirs`. Both paths are convolved and summed; the reverb tail
    past the input's end is cut, so the output has the input's length.
    """
    h = np.asarray(rirs, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] != 2 or h.shape[1] == 0 or not np.all(np.isfinite(h)):
        raise ValueError(f"rirs: expected finite (2, n_taps) responses, got shape {h.shape}")
    x = np.asarray(audio)
    if x.ndim == 2 and x.shape[0] == 2:
        left, right = check_audio(x[0], "audio[0]"), check_audio(x[1], "audio[1]")
        y = signal.oaconvolve(left, h[0])[: left.size] + signal.oaconvolve(right, h[1])[: right.size]
    elif x.ndim == 1:
        mono = check_audio(x)
        y = signal.oaconvolve(mono, h[0] + h[1])[: mono.size]
    else:
        raise ValueError(f"audio: expected mono (n_samples,) or stereo (2, n_samples), got shape {x.shape}")
    return y.astype(np.float32)

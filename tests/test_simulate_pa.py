"""PA coloration: reproducible EQ and compression, exact static curves, a limiter that never overshoots."""

import numpy as np
import pytest

from resonance.simulate import pa

from conftest import music_clip, scramble_global_rngs

SR = 16000
EQ_RANGES = dict(bass_gain_db=(-6, 6), bass_freq_hz=(60, 200), mid_gain_db=(-6, 6), mid_freq_hz=(300, 3000),
                 mid_q=(0.5, 2.0), treble_gain_db=(-6, 6), treble_freq_hz=(3000, 6000))
COMP_RANGES = dict(threshold_db=(-30, -10), ratio=(2, 8), attack_ms=(1, 30), release_ms=(50, 500),
                   makeup_db=(0, 6))


def _tone(freq_hz: float, amp: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _gain_db(y: np.ndarray, x: np.ndarray) -> float:
    half = x.size // 2  # steady state only
    return 10 * np.log10(np.mean(y[half:].astype(float) ** 2) / np.mean(x[half:].astype(float) ** 2))


def test_same_seed_gives_bit_identical_output() -> None:
    x = music_clip(2.0, seed=3, sr=SR)
    outs = []
    for noise in range(2):
        scramble_global_rngs(noise)  # the draws come from the generator passed in, never from global state
        rng = np.random.default_rng(11)
        eq, comp = pa.sample_eq(rng, **EQ_RANGES), pa.sample_compressor(rng, **COMP_RANGES)
        outs.append(pa.apply_pa(x, SR, eq, comp, -1.0, 2.0, 50.0))
    assert np.array_equal(outs[0], outs[1])


def test_every_stage_keeps_length_and_is_finite() -> None:
    x = music_clip(2.0, seed=4, sr=SR)
    rng = np.random.default_rng(0)
    eq, comp = pa.sample_eq(rng, **EQ_RANGES), pa.sample_compressor(rng, **COMP_RANGES)
    for y in (pa.apply_eq(x, SR, eq), pa.apply_compressor(x, SR, comp), pa.apply_limiter(x, SR, -3, 2, 50),
              pa.apply_pa(x, SR, eq, comp, -1, 2, 50)):
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))


def test_flat_eq_is_identity() -> None:
    x = music_clip(2.0, seed=5, sr=SR)
    flat = pa.EqSpec(0.0, 100.0, 0.0, 1000.0, 1.0, 0.0, 5000.0)
    assert np.max(np.abs(pa.apply_eq(x, SR, flat) - x)) < 1e-6


def test_eq_bands_hit_their_gains() -> None:
    spec = pa.EqSpec(bass_gain_db=6.0, bass_freq_hz=150.0, mid_gain_db=-5.0, mid_freq_hz=1000.0, mid_q=2.0,
                     treble_gain_db=4.0, treble_freq_hz=4000.0)
    for freq_hz, expected_db in ((30.0, 6.0), (1000.0, -5.0), (7500.0, 4.0)):
        x = _tone(freq_hz)
        assert _gain_db(pa.apply_eq(x, SR, spec), x) == pytest.approx(expected_db, abs=0.5)


def test_compressor_static_curve() -> None:
    spec = pa.CompressorSpec(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=100.0, makeup_db=2.0)
    loud = _tone(441.3, amp=0.5)  # peak -6 dBFS: 14 dB over, 3.5 dB out
    peak_db = 20 * np.log10(np.max(np.abs(pa.apply_compressor(loud, SR, spec)[SR // 2:])))
    assert peak_db == pytest.approx(-20.0 + (20 * np.log10(0.5) + 20.0) / 4 + 2.0, abs=0.5)
    quiet = _tone(441.3, amp=0.05)  # below threshold: only the makeup gain
    assert np.allclose(pa.apply_compressor(quiet, SR, spec), quiet * 10 ** (2 / 20), atol=1e-6)


@pytest.mark.parametrize("lookahead_ms", [0.0, 0.5, 5.0])
@pytest.mark.parametrize("ceiling_db", [-6.0, -1.0, 0.0])
def test_limiter_never_exceeds_ceiling(lookahead_ms: float, ceiling_db: float) -> None:
    x = music_clip(2.0, seed=6, sr=SR) * 10.0  # peaks at +9.5 dBFS
    y = pa.apply_limiter(x, SR, ceiling_db, lookahead_ms, 50.0)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 10 ** (ceiling_db / 20)
    assert np.max(np.abs(y)) > 0.9 * 10 ** (ceiling_db / 20)  # limits, does not just attenuate


def test_limiter_leaves_quiet_audio_alone() -> None:
    x = music_clip(1.0, seed=7, sr=SR)  # peak 0.3
    assert np.allclose(pa.apply_limiter(x, SR, -1.0, 2.0, 50.0), x, atol=1e-7)


def test_bad_input_raises_clear_errors() -> None:
    spec = pa.EqSpec(0.0, 100.0, 0.0, 1000.0, 1.0, 0.0, 5000.0)
    with pytest.raises(ValueError, match="empty"):
        pa.apply_eq(np.zeros(0), SR, spec)
    with pytest.raises(ValueError, match="1-D"):
        pa.apply_limiter(np.zeros((2, 10)), SR, -1, 1, 50)
    with pytest.raises(ValueError, match="NaN"):
        pa.apply_compressor(np.array([np.nan]), SR, pa.CompressorSpec(-20, 4, 5, 100, 0))
    with pytest.raises(ValueError, match="sr/2"):
        pa.apply_eq(np.zeros(10), 8000, spec)
    with pytest.raises(ValueError, match="ratio"):
        pa.apply_compressor(np.zeros(10), SR, pa.CompressorSpec(-20, 0.5, 5, 100, 0))
    with pytest.raises(ValueError, match="mid_q"):
        pa.sample_eq(np.random.default_rng(0), **{**EQ_RANGES, "mid_q": (2.0, 1.0)})

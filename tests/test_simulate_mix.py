"""Mixing: exact SNR, looping, fades, bleed; and the whole simulator chain is reproducible bit for bit."""

import numpy as np
import pytest

from resonance.simulate import mix, pa, phone, room

from conftest import music_clip, scramble_global_rngs

SR = 16000


@pytest.mark.parametrize("snr_db", [-10.0, -5.0, 0.0, 5.0, 20.0])
def test_achieved_snr_equals_target(snr_db: float) -> None:
    signal = music_clip(3.0, seed=12, sr=SR)
    noise = np.random.default_rng(0).standard_normal(int(1.3 * SR)).astype(np.float32)  # shorter: looped
    mixture, scaled = mix.mix_at_snr(signal, noise, snr_db, np.random.default_rng(1))
    assert mixture.shape == scaled.shape == signal.shape
    assert mixture.dtype == scaled.dtype == np.float32 and np.all(np.isfinite(mixture))
    assert mix.rms_db(signal) - mix.rms_db(scaled) == pytest.approx(snr_db, abs=0.5)
    assert mix.rms_db(signal) - mix.rms_db(scaled) == pytest.approx(snr_db, abs=0.01)
    assert np.allclose(mixture, signal + scaled, atol=1e-6)


def test_loop_to_length_tiles_cuts_and_is_seeded() -> None:
    x = np.arange(5, dtype=np.float32)
    assert np.array_equal(mix.loop_to_length(x, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    assert np.array_equal(mix.loop_to_length(x, 3), [0, 1, 2])
    a = mix.loop_to_length(x, 12, np.random.default_rng(3))
    scramble_global_rngs(1)  # the draw comes from the generator passed in, never from global state
    b = mix.loop_to_length(x, 12, np.random.default_rng(3))
    assert np.array_equal(a, b) and a.size == 12
    assert np.array_equal(np.diff(a) % 5, np.ones(11))  # still a circular walk through x


def test_fade_ramps_ends_only() -> None:
    x = np.ones(SR, np.float32)
    y = mix.fade(x, SR, 0.1, 0.2)
    assert y[0] == 0.0 and y[-1] == 0.0 and np.all(np.diff(y[: int(0.1 * SR)]) >= 0)
    assert np.array_equal(y[int(0.1 * SR): -int(0.2 * SR)], x[int(0.1 * SR): -int(0.2 * SR)])
    with pytest.raises(ValueError, match="fit"):
        mix.fade(x, SR, 0.6, 0.6)


def test_bleed_adds_other_at_its_level() -> None:
    x = music_clip(2.0, seed=13, sr=SR)
    other = music_clip(1.0, seed=14, sr=SR)
    y = mix.bleed(x, other, -18.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert mix.rms_db(y - x) - mix.rms_db(x) == pytest.approx(-18.0, abs=0.05)


def test_rms_db_of_a_full_scale_sine() -> None:
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    assert mix.rms_db(sine) == pytest.approx(-3.01, abs=0.01)
    assert mix.rms_db(np.zeros(10)) == -np.inf


def test_bad_input_raises_clear_errors() -> None:
    x = music_clip(1.0, seed=15, sr=SR)
    with pytest.raises(ValueError, match="noise: empty"):
        mix.mix_at_snr(x, np.zeros(0), 0.0)
    with pytest.raises(ValueError, match="noise: silent"):
        mix.mix_at_snr(x, np.zeros(100), 0.0)
    with pytest.raises(ValueError, match="signal: silent"):
        mix.mix_at_snr(np.zeros(100), x, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        mix.mix_at_snr(np.array([1.0, np.nan]), x, 0.0)
    with pytest.raises(ValueError, match="1-D"):
        mix.rms_db(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="snr_db"):
        mix.mix_at_snr(x, x, float("nan"))


def _concert(seed: int, music: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Draw every stage's conditions from one seed, then apply them: the simulator end to end."""
    rng = np.random.default_rng(seed)
    spec = room.sample_room(rng, (10, 60), (8, 40), (4, 15), (0.5, 2.0), (5, 40))
    eq = pa.sample_eq(rng, (-6, 6), (60, 200), (-6, 6), (300, 3000), (0.5, 2), (-6, 6), (3000, 6000))
    comp = pa.sample_compressor(rng, (-30, -10), (2, 8), (1, 30), (50, 500), (0, 6))
    ph = phone.sample_phone(rng, (-26, -14), (0.3, 2), (20, 40), (80, 200), (5000, 7500), (0, 12), (0.5, 1),
                            (0.6, 1), {"none": 1, "soft": 1, "hard": 1, "both": 1})
    y = pa.apply_pa(music, SR, eq, comp, -1.0, 2.0, 50.0)
    y = room.apply_room(y, room.render_rirs(spec, SR))
    y, _ = mix.mix_at_snr(y, crowd, float(rng.uniform(-10, 10)), rng)
    return phone.apply_phone(y, SR, ph)


def test_whole_chain_is_bit_identical_for_a_seed() -> None:
    music = music_clip(2.0, seed=16, sr=SR)
    crowd = np.random.default_rng(9).standard_normal(SR).astype(np.float32)
    a = _concert(21, music, crowd)
    scramble_global_rngs(2)  # and in another process: test_determinism.py
    b = _concert(21, music, crowd)
    assert np.array_equal(a, b)
    assert a.shape == music.shape and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert not np.array_equal(a, _concert(22, music, crowd))

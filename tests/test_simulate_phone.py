"""The phone: reproducible chains, exact clipping, a band that passes speech/music and cuts the rest."""

import shutil
import subprocess

import numpy as np
import pytest

from resonance.simulate import phone

from conftest import music_clip, scramble_global_rngs

SR = 16000
RANGES = dict(agc_target_dbfs=(-26, -14), agc_time_s=(0.3, 2.0), agc_max_gain_db=(20, 40), low_hz=(80, 200),
              high_hz=(5000, 7500), drive_db=(0, 12), soft_level=(0.5, 1.0), hard_level=(0.6, 1.0),
              clip_mode_probs={"none": 1, "soft": 1, "hard": 1, "both": 1})


def _tone(freq_hz: float, amp: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * SR)) / SR)


def _level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, float) ** 2))


def test_same_seed_gives_bit_identical_output() -> None:
    x = music_clip(2.0, seed=8, sr=SR)
    specs = [phone.sample_phone(np.random.default_rng(5), **RANGES)]
    first = phone.apply_phone(x, SR, specs[0])
    scramble_global_rngs(3)  # the draws come from the generator passed in, never from global state
    specs.append(phone.sample_phone(np.random.default_rng(5), **RANGES))
    assert specs[0] == specs[1]
    assert np.array_equal(first, phone.apply_phone(x, SR, specs[1]))


@pytest.mark.parametrize("mode", phone.CLIP_MODES)
def test_every_clip_mode_gives_finite_full_scale_audio(mode: str) -> None:
    x = music_clip(2.0, seed=9, sr=SR)
    spec = phone.sample_phone(np.random.default_rng(1), **{**RANGES, "clip_mode_probs": {mode: 1.0}})
    assert spec.clip_mode == mode
    y = phone.apply_phone(x, SR, spec)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0 and np.std(y) > 0


@pytest.mark.parametrize("level", [0.2, 0.5, 0.9])
def test_hard_clip_clips_the_analytic_fraction(level: float) -> None:
    x = _tone(441.7, amp=1.0, seconds=4.0)  # a non-integer number of samples per cycle
    y = phone.hard_clip(x, level)
    clipped = np.mean(np.abs(y) >= np.float32(level))
    assert clipped == pytest.approx(1 - 2 / np.pi * np.arcsin(level), abs=0.01)
    assert np.max(np.abs(y)) <= np.float32(level)


def test_saturate_is_bounded_and_linear_for_small_signals() -> None:
    x = _tone(300.0, amp=2.0)
    assert np.max(np.abs(phone.saturate(x, 12.0, 0.7))) <= 0.7
    small = _tone(300.0, amp=1e-4)
    assert np.allclose(phone.saturate(small, 6.0, 1.0), small * 10 ** (6 / 20), rtol=1e-3, atol=1e-9)


def test_band_limit_passes_1khz_and_cuts_50hz_and_7900hz() -> None:
    def through(freq_hz: float) -> float:
        x = _tone(freq_hz)
        y = phone.band_limit(x, SR, 100.0, 7000.0)
        return _level_db(y[SR // 2:]) - _level_db(x[SR // 2:])

    assert abs(through(1000.0)) < 1.0
    assert through(50.0) < -10.0
    assert through(7900.0) < -10.0
    assert phone.band_limit(_tone(1000.0), SR, 100.0, 9000.0).shape == (SR,)  # above Nyquist: high-pass only


def test_agc_reaches_its_target_and_caps_its_gain() -> None:
    x = music_clip(4.0, seed=10, sr=SR) * 0.03  # about -40 dBFS
    y = phone.apply_agc(x, SR, -20.0, 0.5, 40.0)
    assert _level_db(y[2 * SR:]) == pytest.approx(-20.0, abs=2.0)
    hiss = np.random.default_rng(0).standard_normal(SR) * 1e-6
    boosted = phone.apply_agc(hiss, SR, -20.0, 0.5, 30.0)
    assert np.max(np.abs(boosted)) <= np.max(np.abs(hiss)) * 10 ** (30 / 20) * 1.0001


def _has_encoder(name: str) -> bool:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return f" {name} " in out


@pytest.mark.skipif(not _has_encoder("libopus"), reason="ffmpeg without libopus")
def test_codec_roundtrip_keeps_length_and_content() -> None:
    x = music_clip(2.0, seed=11, sr=SR)
    y = phone.codec_roundtrip(x, SR, "libopus", 32)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.corrcoef(x, y)[0, 1] > 0.8


def test_bad_input_raises_clear_errors() -> None:
    spec = phone.sample_phone(np.random.default_rng(0), **RANGES)
    with pytest.raises(ValueError, match="empty"):
        phone.apply_phone(np.zeros(0), SR, spec)
    with pytest.raises(ValueError, match="NaN"):
        phone.hard_clip(np.array([np.inf]), 0.5)
    with pytest.raises(ValueError, match="1-D"):
        phone.band_limit(np.zeros((2, 100)), SR, 100, 7000)
    with pytest.raises(ValueError, match="clip_mode"):
        phone.apply_phone(np.zeros(100), SR, phone.PhoneSpec(-20, 1, 30, 100, 7000, 0, 1, 1, "fuzz"))
    with pytest.raises(ValueError, match="clip_mode_probs"):
        phone.sample_phone(np.random.default_rng(0), **{**RANGES, "clip_mode_probs": {"fuzz": 1}})
    with pytest.raises(ValueError, match="low_hz"):
        phone.band_limit(np.zeros(100), SR, 8000, 7000)
    with pytest.raises(ValueError, match="codec"):
        phone.codec_roundtrip(np.zeros(100), SR, "wma")

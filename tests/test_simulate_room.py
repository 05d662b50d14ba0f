"""Venue acoustics: reproducible rooms, RT60 that matches its target, the right shapes, clear errors."""

import dataclasses
import json
import math

import numpy as np
import pytest

from resonance.simulate import room

from conftest import music_clip, scramble_global_rngs

SR = 16000
VENUES = dict(length_m=(10.0, 100.0), width_m=(8.0, 60.0), height_m=(4.0, 20.0), rt60_s=(0.4, 2.5),
              distance_m=(5.0, 60.0))


def test_same_seed_gives_bit_identical_rirs_and_audio() -> None:
    specs, rirs = [], []
    for noise in range(2):
        scramble_global_rngs(noise)  # the draws come from the generator passed in, never from global state
        specs.append(room.sample_room(np.random.default_rng(7), **VENUES))
        rirs.append(room.render_rirs(specs[-1], SR))
    assert specs[0] == specs[1]
    assert np.array_equal(rirs[0], rirs[1])
    x = music_clip(1.0, seed=1, sr=SR)
    assert np.array_equal(room.apply_room(x, rirs[0]), room.apply_room(x, rirs[1]))
    assert room.sample_room(np.random.default_rng(8), **VENUES) != specs[0]


def test_sampled_rooms_are_valid_and_loggable() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = room.sample_room(rng, **VENUES, open_air_prob=0.3)
        dims = np.array(spec.dims_m)
        for pos in (spec.source_left_m, spec.source_right_m, spec.mic_m):
            assert np.all((np.array(pos) > 0) & (np.array(pos) < dims))
        assert spec.source_left_m[1] <= spec.source_right_m[1]
        assert 0 < spec.distance_m <= VENUES["distance_m"][1] + 1e-9
        if spec.open_air:  # the field always fits the drawn distance
            assert spec.distance_m >= VENUES["distance_m"][0] - 1e-9
        else:
            shortest = room._min_rt60_s(spec.dims_m)  # a box too big for the whole range gets its minimum
            assert spec.rt60_s <= VENUES["rt60_s"][1] + 1e-9 or math.isclose(spec.rt60_s, shortest)
        assert json.loads(json.dumps(dataclasses.asdict(spec)))["dims_m"] == list(spec.dims_m)


@pytest.mark.parametrize("rt60_s, dims_m", [(0.5, (12.0, 8.0, 5.0)), (1.0, (25.0, 16.0, 8.0)),
                                            (2.0, (50.0, 30.0, 15.0))])
def test_measured_rt60_matches_target(rt60_s: float, dims_m: tuple) -> None:
    rng = np.random.default_rng(3)
    spec = room.sample_room(rng, (dims_m[0],) * 2, (dims_m[1],) * 2, (dims_m[2],) * 2, (rt60_s, rt60_s),
                            (dims_m[0] / 2, dims_m[0] / 2))
    assert spec.rt60_s == rt60_s and not spec.open_air
    rirs = room.render_rirs(spec, SR)
    assert rirs.dtype == np.float32 and rirs.shape[0] == 2 and np.all(np.isfinite(rirs))
    assert math.isclose(float(np.sum(rirs.astype(float) ** 2)), 1.0, rel_tol=1e-4)
    for h in rirs:
        assert room.measure_rt60(h, SR) == pytest.approx(rt60_s, rel=0.25)


def test_measure_rt60_on_an_exact_exponential_decay() -> None:
    rt60_s = 0.8
    t = np.arange(int(1.5 * SR)) / SR
    h = np.random.default_rng(0).standard_normal(t.size) * 10 ** (-3 * t / rt60_s)
    assert room.measure_rt60(h, SR) == pytest.approx(rt60_s, rel=0.05)
    assert room.measure_rt60(h, SR, fit_db=(-5.0, -35.0)) == pytest.approx(rt60_s, rel=0.05)


def test_open_air_is_mostly_direct_sound() -> None:
    spec = room.sample_room(np.random.default_rng(2), **VENUES, open_air_prob=1.0)
    assert spec.open_air
    rirs = room.render_rirs(spec, SR).astype(float)
    for h in rirs:
        energy = np.cumsum(h**2) / np.sum(h**2)
        assert energy[int(0.03 * SR)] > 0.9  # direct + ground reflection hold the energy


def test_apply_room_mono_and_stereo_keep_length() -> None:
    spec = room.sample_room(np.random.default_rng(4), **VENUES)
    rirs = room.render_rirs(spec, SR)
    x = music_clip(2.0, seed=2, sr=SR)
    for audio in (x, np.stack([x, x[::-1]])):
        y = room.apply_room(audio, rirs)
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
        assert np.std(y) > 0.1 * np.std(x)
    assert np.allclose(room.apply_room(np.stack([x, x]), rirs), room.apply_room(x, rirs), atol=1e-5)


def test_bad_input_raises_clear_errors() -> None:
    rirs = np.zeros((2, 10), np.float32)
    rirs[:, 0] = 1.0
    with pytest.raises(ValueError, match="empty"):
        room.apply_room(np.zeros(0, np.float32), rirs)
    with pytest.raises(ValueError, match="NaN"):
        room.apply_room(np.array([0.1, np.nan, 0.2]), rirs)
    with pytest.raises(ValueError, match="stereo"):
        room.apply_room(np.zeros((3, 100)), rirs)
    with pytest.raises(ValueError, match="rirs"):
        room.apply_room(np.zeros(100), rirs[0])
    with pytest.raises(ValueError, match="length_m"):
        room.sample_room(np.random.default_rng(0), **{**VENUES, "length_m": (50.0, 10.0)})
    with pytest.raises(ValueError, match="never reaches"):
        room.measure_rt60(np.ones(100), SR)
    spec = room.sample_room(np.random.default_rng(0), **VENUES)
    with pytest.raises(ValueError, match="inside"):
        room.render_rirs(dataclasses.replace(spec, mic_m=(1e4, 1.0, 1.0)), SR)


@pytest.mark.parametrize("k, ranges", [  # params.yaml's arena and stadium classes, drawn as the bank does
    (2, dict(length_m=(60.0, 110.0), width_m=(45.0, 80.0), height_m=(15.0, 30.0), rt60_s=(2.0, 3.0),
             distance_m=(15.0, 60.0))),
    (3, dict(length_m=(150.0, 230.0), width_m=(110.0, 180.0), height_m=(25.0, 50.0), rt60_s=(1.5, 2.5),
             distance_m=(20.0, 60.0)))], ids=["arena", "stadium"])
def test_huge_rooms_measure_their_rt60(k: int, ranges: dict) -> None:
    # The first wall reflections come after several hundred ms: a tail matched to the few image sources
    # before the splice read 0.07 s for 1.5 s stadiums (draws 3, 6, 10) and 4.2 s for a 2.2 s arena (draw 2).
    rng = np.random.default_rng([515, 1, k])
    for _ in range(12):
        spec = room.sample_room(rng, **ranges)
        assert not spec.open_air
        for h in room.render_rirs(spec, SR):
            assert room.measure_rt60(h, SR) == pytest.approx(spec.rt60_s, rel=0.25)


def test_diffuse_energy_is_the_classical_reverberant_to_direct_ratio() -> None:
    dims, rt60_s, r = (80.0, 60.0, 20.0), 2.0, 30.0
    surface = 2 * (80 * 60 + 80 * 20 + 60 * 20)
    a = room.eyring_absorption(rt60_s, dims)
    t = np.arange(4 * math.prod(dims) / surface / room.SPEED_OF_SOUND_M_S, 10 * rt60_s, 1e-4)
    reverb = np.sum([room.diffuse_energy(x, rt60_s, dims) for x in t]) * 1e-4  # from one mean free path on
    ratio = 16 * math.pi * r**2 / (surface * -math.log(1 - a) / (1 - a))
    assert reverb * r**2 == pytest.approx(ratio, rel=1e-3)

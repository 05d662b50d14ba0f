"""Landmark fingerprinting on generated music: hash layout, peaks, index file format, and matching behaviour."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from resonance.config import load_section
from resonance.landmark import hashes as hl
from resonance.landmark.hashes import fingerprint, pack_hash, pair_peaks, unpack_hash
from resonance.landmark.index import (
    FORMAT_VERSION,
    MAGIC,
    IndexFormatError,
    LandmarkIndex,
    build_index,
    index_from_hashes,
)
from resonance.landmark.match import Match, match, match_hashes
from resonance.landmark.peaks import LandmarkConfig, find_peaks, spectrogram_db

from conftest import ROOT, music_clip

SR = 16000
CONFIG = load_section(ROOT / "params.yaml", "landmark", LandmarkConfig)  # the real settings, as evaluated
assert CONFIG.sr == SR
MIN_SCORE = 25  # accept threshold: chance votes on this music reach 18, a noisy 5 s excerpt scores 98-204
HOP_S = CONFIG.hop / SR
TRACK_S = 20.0
SEEDS = range(5)


@pytest.fixture(scope="module")
def catalog() -> dict[str, np.ndarray]:
    return {f"track-{s}": music_clip(TRACK_S, seed=s, sr=SR) for s in SEEDS}


@pytest.fixture(scope="module")
def index(catalog: dict[str, np.ndarray]) -> LandmarkIndex:
    return build_index(catalog.items(), CONFIG)


def excerpt(audio: np.ndarray, start_s: float, seconds: float = 5.0) -> np.ndarray:
    i = int(round(start_s * SR))
    return audio[i: i + int(seconds * SR)]


# --- hash bit layout -----------------------------------------------------------------------------------------------

def test_pack_unpack_round_trip_over_full_field_ranges() -> None:
    rng = np.random.default_rng(0)
    f1 = np.r_[0, hl.F1_MAX, rng.integers(0, hl.F1_MAX + 1, 10_000)]
    df = np.r_[hl.DF_MIN, hl.DF_MAX, rng.integers(hl.DF_MIN, hl.DF_MAX + 1, 10_000)]
    dt = np.r_[hl.DT_MAX, 0, rng.integers(0, hl.DT_MAX + 1, 10_000)]
    h = pack_hash(f1, df, dt)
    assert h.dtype == np.uint32 and int(h.max()) < 2**hl.HASH_BITS
    for got, want in zip(unpack_hash(h), (f1, df, dt)):
        np.testing.assert_array_equal(got, want)
    all_hashes = np.arange(2**hl.HASH_BITS, dtype=np.uint32)[::997]  # and the other way round
    np.testing.assert_array_equal(pack_hash(*unpack_hash(all_hashes)), all_hashes)


@pytest.mark.parametrize("f1, df, dt, field", [
    (-1, 0, 0, "f1"), (hl.F1_MAX + 1, 0, 0, "f1"), (0, hl.DF_MIN - 1, 0, "df"),
    (0, hl.DF_MAX + 1, 0, "df"), (0, 0, -1, "dt"), (0, 0, hl.DT_MAX + 1, "dt"), (1.5, 0, 0, "f1")])
def test_pack_rejects_values_outside_their_field(f1: float, df: int, dt: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        pack_hash(np.array([3, f1]), np.array([0, df]), np.array([1, dt]))


def test_unpack_rejects_bits_above_the_layout() -> None:
    with pytest.raises(ValueError, match="hash"):
        unpack_hash(np.array([1 << hl.HASH_BITS], dtype=np.uint32))


# --- peaks and pairs -----------------------------------------------------------------------------------------------

def test_peaks_keep_the_density_and_do_not_depend_on_where_an_excerpt_starts(catalog: dict) -> None:
    audio = catalog["track-0"]
    frames, bins, level = find_peaks(spectrogram_db(audio, CONFIG), CONFIG)
    assert 10 < frames.size / TRACK_S <= 2 * CONFIG.peaks_per_s
    lo, hi = CONFIG.band_bins()
    assert bins.min() >= lo and bins.max() < hi and np.all(np.diff(frames) >= 0)
    shift = 300  # frames: the excerpt's frame grid is the track's, shifted
    sub_f, sub_b, _ = find_peaks(spectrogram_db(audio[shift * CONFIG.hop:], CONFIG), CONFIG)
    margin = CONFIG.frames_per_s  # edges differ: neighbours beyond the excerpt are unseen
    inner = (frames >= shift + margin) & (frames < frames.max() - margin)
    full = set(zip(frames[inner].tolist(), bins[inner].tolist()))
    sub_inner = (sub_f + shift >= shift + margin) & (sub_f + shift < frames.max() - margin)
    assert set(zip((sub_f[sub_inner] + shift).tolist(), sub_b[sub_inner].tolist())) == full


def test_pairs_stay_in_the_target_zone_with_at_most_fan_out_per_anchor() -> None:
    rng = np.random.default_rng(1)
    cells = np.sort(rng.choice(400 * 184, 600, replace=False))  # distinct (frame, bin) peaks, like real ones
    frames, bins = cells // 184, 4 + cells % 184
    h, t1 = pair_peaks(frames, bins, CONFIG)
    f1, df, dt = unpack_hash(h)
    assert np.all((dt >= CONFIG.dt_min_frames) & (dt <= CONFIG.dt_max_frames))
    assert np.all(np.abs(df) <= CONFIG.df_max_bins)
    peaks = set(zip(frames.tolist(), bins.tolist()))
    assert all((t + d, f + g) in peaks for t, f, g, d in zip(t1.tolist(), f1.tolist(), df.tolist(), dt.tolist()))
    _, per_anchor = np.unique(np.stack([t1, f1]), axis=1, return_counts=True)
    assert per_anchor.max() == CONFIG.fan_out


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, np.float32), "empty"), (np.zeros((2, SR), np.float32), "1-D"),
    (np.r_[np.zeros(SR), np.nan].astype(np.float32), "NaN")])
def test_bad_audio_is_a_clear_value_error(audio: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fingerprint(audio, CONFIG)


def test_bad_config_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="odd"):
        dataclasses.replace(CONFIG, peak_time_frames=8)
    with pytest.raises(ValueError, match="fmax_hz"):
        dataclasses.replace(CONFIG, fmax_hz=9000.0)
    with pytest.raises(ValueError, match="dt_max_frames"):
        fingerprint(music_clip(1.0, seed=0, sr=SR), dataclasses.replace(CONFIG, dt_max_frames=hl.DT_MAX + 1))


# --- index ---------------------------------------------------------------------------------------------------------

def test_lookup_returns_exactly_the_entries_with_each_hash(index: LandmarkIndex) -> None:
    rng = np.random.default_rng(2)
    query = np.r_[rng.choice(index.hashes, 50), rng.integers(0, 2**hl.HASH_BITS, 50)].astype(np.uint32)
    rows, tracks, frames = index.lookup(query)
    got = sorted(zip(rows.tolist(), tracks.tolist(), frames.tolist()))
    want = sorted((i, int(index.tracks[j]), int(index.frames[j]))
                  for i, q in enumerate(query) for j in np.flatnonzero(index.hashes == q))
    assert got == want


# --- matching ------------------------------------------------------------------------------------------------------

def test_votes_in_adjacent_offsets_add_up_and_the_runner_up_is_another_track() -> None:
    index = index_from_hashes(["a", "b"], [(np.array([10, 11, 12, 13]), np.array([100, 101, 102, 103])),
                                           (np.array([10, 11]), np.array([50, 70]))], CONFIG)
    m = match_hashes(np.array([10, 11, 12, 13], np.uint32), np.array([0, 1, 2, 2]), index)
    # "a": offsets 100, 100, 100, 101 -> 3 + 1 votes, centred at 100.25 frames; "b": offsets 50 and 69.
    assert m == Match("a", 100.25 / CONFIG.frames_per_s, 4, 1)
    assert match_hashes(np.array([99], np.uint32), np.array([0]), index) == Match(None, 0.0, 0, 0)


def test_exact_excerpt_finds_the_track_and_its_offset(catalog: dict, index: LandmarkIndex) -> None:
    m = match(excerpt(catalog["track-2"], 7.3), index, CONFIG)
    assert m.track_id == "track-2" and m.accepted(MIN_SCORE)
    assert abs(m.offset_s - 7.3) <= HOP_S
    assert m.second_score < MIN_SCORE


def test_shifted_quieter_noisy_excerpt_still_matches(catalog: dict, index: LandmarkIndex) -> None:
    rng = np.random.default_rng(3)
    for track_id, audio in catalog.items():
        start_s = 4.1 + 0.37 * HOP_S  # a fraction of a hop off the index's frame grid
        clip = excerpt(audio, start_s) * 10 ** (-12 / 20)
        noise = rng.standard_normal(clip.size).astype(np.float32)
        noise *= np.sqrt(np.mean(clip**2) / np.mean(noise**2) / 10 ** (10 / 10))  # 10 dB SNR
        m = match(clip + noise, index, CONFIG)
        assert m.track_id == track_id and m.accepted(MIN_SCORE), m
        assert abs(m.offset_s - start_s) <= HOP_S and m.second_score < MIN_SCORE


def test_out_of_catalog_clips_are_rejected(index: LandmarkIndex) -> None:
    for seed in (100, 101, 102):
        m = match(music_clip(5.0, seed=seed, sr=SR), index, CONFIG)
        assert not m.accepted(MIN_SCORE), m


def test_silence_matches_nothing(index: LandmarkIndex) -> None:
    assert match(np.zeros(5 * SR, np.float32), index, CONFIG) == Match(None, 0.0, 0, 0)


def test_query_config_must_share_the_index_frame_grid(catalog: dict, index: LandmarkIndex) -> None:
    with pytest.raises(ValueError, match="hop"):
        match(excerpt(catalog["track-0"], 1.0), index, dataclasses.replace(CONFIG, hop=128))


# --- index file ----------------------------------------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_matches(catalog: dict, index: LandmarkIndex, tmp_path: Path) -> None:
    path = tmp_path / "landmarks.idx"
    index.save(path)
    loaded = LandmarkIndex.load(path)
    assert loaded.config == index.config and loaded.track_ids == index.track_ids
    for name in ("hashes", "tracks", "frames"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(index, name))
    for track_id, audio in catalog.items():
        query = excerpt(audio, 2.5)
        assert match(query, loaded, CONFIG) == match(query, index, CONFIG)
    assert [p.name for p in tmp_path.iterdir()] == ["landmarks.idx"]  # no temp file left behind


def _corrupt(data: bytes, how: str) -> bytes:
    if how == "wrong magic":
        return b"NOTANIDX" + data[8:]
    if how == "wrong version":
        return data[:8] + (FORMAT_VERSION + 1).to_bytes(4, "little") + data[12:]
    if how == "flipped byte":
        mid = len(data) // 2
        return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
    cut = {"truncated preamble": 10, "truncated header": 40, "truncated entries": len(data) // 2,
           "missing checksum": len(data) - 2, "empty file": 0}[how]
    return data[:cut]


@pytest.mark.parametrize("how, message", [
    ("wrong magic", "not a resonance landmark index"), ("wrong version", "format version"),
    ("truncated preamble", "truncated"), ("truncated header", "truncated"), ("truncated entries", "truncated"),
    ("missing checksum", "truncated"), ("empty file", "truncated"), ("flipped byte", "corrupt")])
def test_corrupt_index_file_is_a_clear_error(index: LandmarkIndex, tmp_path: Path, how: str, message: str) -> None:
    good = tmp_path / "good.idx"
    index.save(good)
    assert good.read_bytes()[:8] == MAGIC
    bad = tmp_path / "bad.idx"
    bad.write_bytes(_corrupt(good.read_bytes(), how))
    with pytest.raises(IndexFormatError, match=message) as err:
        LandmarkIndex.load(bad)
    assert str(bad) in str(err.value) and "rebuild" in str(err.value)

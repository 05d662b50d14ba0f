"""Chromaprint baseline: fpcalc invocation and failure modes, the BER search, the reference file format, and
matching behaviour on generated music (exact, noisy and out-of-catalog excerpts)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from resonance import chromaprint as cp
from resonance.chromaprint import (
    ITEM_S,
    ChromaprintConfig,
    ChromaprintError,
    ChromaprintIndex,
    FingerprintFormatError,
    ber_by_alignment,
    index_from_fingerprints,
    match_fingerprint,
    parse_fpcalc_output,
)
from resonance.evaluate.methods import ChromaprintMethod, Identification
from resonance.simulate.mix import mix_at_snr

from conftest import music_clip

SR = 16000
TRACK_S = 25.0
CONFIG = ChromaprintConfig(timeout_s=60.0, max_overhang_items=2)
needs_fpcalc = pytest.mark.skipif(shutil.which("fpcalc") is None,
                                  reason="fpcalc not installed (apt-get install libchromaprint-tools)")


@pytest.fixture(scope="module")
def tracks() -> dict[str, np.ndarray]:
    return {f"track-{s}": music_clip(TRACK_S, seed=s, sr=SR) for s in range(4)}


@pytest.fixture(scope="module")
def index(tracks: dict[str, np.ndarray]) -> ChromaprintIndex:
    if shutil.which("fpcalc") is None:
        pytest.skip("fpcalc not installed (apt-get install libchromaprint-tools)")
    return cp.build_index(tracks.items(), SR, CONFIG.timeout_s)


def excerpt(audio: np.ndarray, start_s: float, seconds: float) -> np.ndarray:
    i = int(round(start_s * SR))
    return audio[i:i + int(seconds * SR)]


def fake_fpcalc(tmp_path: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put a stand-in `fpcalc` shell script first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "fpcalc"
    tool.write_text("#!/bin/sh\n" + script + "\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))


# --- fpcalc invocation -------------------------------------------------------------------------------------------

def test_missing_fpcalc_names_the_package_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no fpcalc
    with pytest.raises(ChromaprintError, match="apt-get install libchromaprint-tools"):
        cp.fingerprint(np.zeros(SR, np.float32), SR, 5.0)


def test_fingerprint_printed_before_a_nonzero_exit_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_fpcalc(tmp_path, 'echo "DURATION=30"; echo "FINGERPRINT=1,4294967295,7"; '
                          'echo "ERROR: Error decoding audio frame (End of file)" >&2; exit 3', monkeypatch)
    fp = cp.fingerprint(np.zeros(SR, np.float32), SR, 5.0)
    np.testing.assert_array_equal(fp, np.array([1, 4294967295, 7], np.uint32))


def test_no_fingerprint_line_is_none_and_no_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_fpcalc(tmp_path, 'echo "ERROR: Empty fingerprint" >&2; exit 2', monkeypatch)
    assert cp.fingerprint(np.zeros(SR, np.float32), SR, 5.0) is None
    index = index_from_fingerprints(["a"], [np.arange(50, dtype=np.uint32)])
    found = ChromaprintMethod.with_index(CONFIG, index).identify(np.zeros(SR, np.float32), SR)
    assert found == Identification(None, None, 0.0)


def test_a_hung_fpcalc_times_out_with_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_fpcalc(tmp_path, f"exec {shutil.which('sleep')} 30", monkeypatch)  # PATH holds only the fake
    with pytest.raises(ChromaprintError, match="longer than 0.3 s"):
        cp.fingerprint(np.zeros(SR, np.float32), SR, 0.3)


def test_parse_output() -> None:
    assert parse_fpcalc_output("DURATION=3\nFINGERPRINT=\n") is None
    assert parse_fpcalc_output("") is None
    with pytest.raises(ChromaprintError, match="malformed"):
        parse_fpcalc_output("FINGERPRINT=1,x,3")
    with pytest.raises(ChromaprintError, match="uint32"):
        parse_fpcalc_output("FINGERPRINT=1,-5,3")


def test_bad_audio_and_config_are_value_errors() -> None:
    with pytest.raises(ValueError, match="1-D"):
        cp.fingerprint(np.zeros((2, SR), np.float32), SR, 5.0)
    with pytest.raises(ValueError, match="NaN"):
        cp.fingerprint(np.full(SR, np.nan, np.float32), SR, 5.0)
    with pytest.raises(ValueError, match="sample rate"):
        cp.fingerprint(np.zeros(SR, np.float32), 0, 5.0)
    with pytest.raises(ValueError, match="timeout_s"):
        ChromaprintConfig(timeout_s=0.0, max_overhang_items=2)
    with pytest.raises(ValueError, match="max_overhang_items"):
        ChromaprintConfig(timeout_s=1.0, max_overhang_items=-1)


# --- the BER search ----------------------------------------------------------------------------------------------

def brute_force_ber(q: np.ndarray, r: np.ndarray, h: int) -> list[float]:
    out = []
    for p in range(-h, r.size - q.size + h + 1):
        pairs = [(i, p + i) for i in range(q.size) if 0 <= p + i < r.size]
        if len(pairs) < max(1, q.size - h):
            out.append(np.inf)
        else:
            bits = sum(bin(int(q[i]) ^ int(r[j])).count("1") for i, j in pairs)
            out.append(bits / (32 * len(pairs)))
    return out


@pytest.mark.parametrize("n, m, h", [(60, 12, 0), (60, 12, 3), (12, 12, 2), (9, 12, 3), (5, 12, 3), (40, 1, 1)])
def test_ber_by_alignment_matches_a_plain_loop(n: int, m: int, h: int) -> None:
    rng = np.random.default_rng(n * 100 + m + h)
    r = rng.integers(0, 2**32, n, dtype=np.uint32)
    q = rng.integers(0, 2**32, m, dtype=np.uint32)
    np.testing.assert_allclose(ber_by_alignment(q, r, h), brute_force_ber(q, r, h))


def test_match_fingerprint_finds_the_planted_alignment_and_the_runner_up() -> None:
    rng = np.random.default_rng(7)
    refs = [rng.integers(0, 2**32, 300, dtype=np.uint32) for _ in range(5)]
    query = refs[3][117:117 + 40].copy()
    query[::4] ^= np.uint32(0xFF)  # 8 of 32 bits wrong in a quarter of the items: BER 1/16
    found = match_fingerprint(query, index_from_fingerprints([f"r{i}" for i in range(5)], refs), 2)
    assert found.track_id == "r3"
    assert found.offset_s == pytest.approx(117 * ITEM_S)
    assert found.score == pytest.approx(1 - 1 / 16)
    assert 0.3 < found.second_score < 0.7  # random fingerprints: about half the bits differ


@pytest.mark.parametrize("h", [0, 2])
def test_search_over_many_references_agrees_with_a_plain_loop(h: int) -> None:
    rng = np.random.default_rng(h)
    refs = [rng.integers(0, 2**32, n, dtype=np.uint32) for n in (0, 5, 12, 60, 1, 33, 11, 40)]
    ids = [f"r{i}" for i in range(len(refs))]
    query = np.r_[refs[5][20:30], rng.integers(0, 2**32, 2, dtype=np.uint32)]  # m = 12, 10 items from r5
    per_ref = [brute_force_ber(query, r, h) for r in refs]
    best_ber = [min(b, default=np.inf) for b in per_ref]
    found = match_fingerprint(query, index_from_fingerprints(ids, refs), h)
    assert found.track_id == "r5" and found.score == pytest.approx(1 - best_ber[5])
    assert found.offset_s == pytest.approx((int(np.argmin(per_ref[5])) - h) * ITEM_S)
    assert found.second_score == pytest.approx(1 - sorted(best_ber)[1])


def test_a_window_never_straddles_two_references() -> None:
    rng = np.random.default_rng(1)
    refs = [rng.integers(0, 2**32, 30, dtype=np.uint32) for _ in range(2)]
    query = np.r_[refs[0][-6:], refs[1][:6]]  # the seam between two references laid end to end
    found = match_fingerprint(query, index_from_fingerprints(["a", "b"], refs), 0)
    assert found.score < 0.8  # only an alignment inside one reference counts: half the items are wrong


def test_a_query_hanging_over_the_track_end_still_aligns() -> None:
    ref = np.random.default_rng(3).integers(0, 2**32, 100, dtype=np.uint32)
    query = np.r_[ref[-20:], np.uint32(12345)]  # one item past the end
    found = match_fingerprint(query, index_from_fingerprints(["r"], [ref]), 2)
    assert found.track_id == "r" and found.score == 1.0 and found.offset_s == pytest.approx(80 * ITEM_S)
    empty = match_fingerprint(query, index_from_fingerprints(["short"], [ref[:5]]), 2)
    assert empty.track_id is None  # no alignment overlaps enough


# --- reference file format ---------------------------------------------------------------------------------------

def small_index() -> ChromaprintIndex:
    rng = np.random.default_rng(0)
    return index_from_fingerprints(["a", "b", "silent"], [rng.integers(0, 2**32, 50, dtype=np.uint32),
                                                         rng.integers(0, 2**32, 70, dtype=np.uint32), None])


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = small_index()
    index.save(tmp_path / "refs.bin")
    loaded = ChromaprintIndex.load(tmp_path / "refs.bin")
    assert loaded.track_ids == ("a", "b", "silent")
    np.testing.assert_array_equal(loaded.items, index.items)
    np.testing.assert_array_equal(loaded.starts, [0, 50, 120, 120])
    assert loaded.fingerprint_of(2).size == 0 and loaded.unfingerprinted == ("silent",) and loaded.n_bytes == 480
    assert [p.name for p in tmp_path.iterdir()] == ["refs.bin"]  # no temp file left behind


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"NOTOURS!" + b[8:], "not a resonance Chromaprint"),
    (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "format version 99"),
    (lambda b: b[:-40], "checksum|truncated"),
    (lambda b: b[:300] + bytes([b[300] ^ 1]) + b[301:], "checksum"),
    (lambda b: b[:5], "truncated"),
])
def test_a_damaged_file_is_refused_with_a_clear_error(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "refs.bin"
    small_index().save(path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(FingerprintFormatError, match=message):
        ChromaprintIndex.load(path)


# --- behaviour on generated music (real fpcalc) ------------------------------------------------------------------

@needs_fpcalc
def test_item_rate_is_about_8_per_second_whatever_the_sample_rate() -> None:
    short, long = (cp.fingerprint(music_clip(s, seed=11, sr=SR), SR, 60.0) for s in (10.0, 30.0))
    assert abs((long.size - short.size) - 20.0 / ITEM_S) <= 1.5
    at_8k = cp.fingerprint(music_clip(30.0, seed=11, sr=8000), 8000, 60.0)
    assert abs(at_8k.size - long.size) <= 1


@needs_fpcalc
@pytest.mark.parametrize("track, start_s", [("track-0", 0.0), ("track-1", 7.3), ("track-3", 19.9)])
def test_exact_excerpt_found_at_its_offset(tracks: dict, index: ChromaprintIndex, track: str,
                                           start_s: float) -> None:
    found = cp.match(excerpt(tracks[track], start_s, 5.0), SR, index, CONFIG)
    assert found.track_id == track
    assert abs(found.offset_s - start_s) <= 0.25
    assert found.score > 0.85 and found.second_score < found.score - 0.15


@needs_fpcalc
def test_noisy_quieter_excerpt_still_found_and_out_of_catalog_scores_lower(tracks: dict,
                                                                          index: ChromaprintIndex) -> None:
    clean = excerpt(tracks["track-2"], 11.0, 8.0)
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32)
    noisy, _ = mix_at_snr(0.25 * clean, noise, snr_db=10.0)  # -12 dB gain, then white noise at 10 dB SNR
    found = cp.match(noisy, SR, index, CONFIG)
    assert found.track_id == "track-2" and abs(found.offset_s - 11.0) <= 0.25
    stranger = cp.match(music_clip(8.0, seed=99, sr=SR), SR, index, CONFIG)
    assert stranger.score < found.score - 0.1
    assert stranger.score < 0.8


@needs_fpcalc
def test_too_short_clip_is_no_match_not_a_crash(tracks: dict, index: ChromaprintIndex) -> None:
    clip = excerpt(tracks["track-0"], 3.0, 1.5)
    assert cp.fingerprint(clip, SR, 60.0) is None
    assert ChromaprintMethod.with_index(CONFIG, index).identify(clip, SR) == Identification(None, None, 0.0)


@needs_fpcalc
def test_loaded_references_match_like_the_built_ones(tmp_path: Path, tracks: dict, index: ChromaprintIndex) -> None:
    index.save(tmp_path / "refs.bin")
    loaded = ChromaprintIndex.load(tmp_path / "refs.bin")
    query = excerpt(tracks["track-1"], 12.0, 5.0)
    assert cp.match(query, SR, loaded, CONFIG) == cp.match(query, SR, index, CONFIG)

"""The catalog stage on a real .deb built from generated clips: ids, splits, duplicates, bad files, safety."""

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from resonance.catalog import build as build_mod
from resonance.catalog import debs as debs_mod
from resonance.catalog.build import assign_split, track_id_for
from resonance.catalog.manifest import ManifestError, load_manifest
from resonance.catalog.stage import run
from resonance.config import CatalogParams, load_section

from conftest import MUSIC_DIR, PKG, SONGS


def _build(params_file: Path, cache: Path, out: Path, **kw) -> dict:
    params = load_section(params_file, "catalog", CatalogParams)
    return run(params, out, cache, progress=False, **kw)


def _skips(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    return {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in rows}


def test_catalog_keeps_each_song_once_and_skips_bad_files(params_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "catalog"
    header = _build(params_file, cache_dir, out)
    tracks = load_manifest(out)
    expected = {track_id_for(PKG, f"{MUSIC_DIR}/{s}") for s in SONGS}
    if shutil.which("fpcalc"):
        assert {t.track_id for t in tracks} == expected  # both duplicates dropped, the originals kept
        assert header["duplicates"] == 2
    assert header["tracks"] == len(tracks) and header["format"] == 1
    skips = _skips(out)
    assert "undecodable" in skips["corrupt.ogg"]
    assert "empty" in skips["empty.ogg"]
    assert "too short" in skips["jingle.ogg"]
    assert "silent" in skips["silence.ogg"]
    assert "too short" in skips["mostly_silent.ogg"] and "after trimming" in skips["mostly_silent.ogg"]
    assert "exact duplicate of " + track_id_for(PKG, f"{MUSIC_DIR}/song_0.ogg") in " ".join(skips.values())
    for t in tracks:
        audio, sr = sf.read(out / t.audio_path, dtype="int16")
        assert sr == t.sample_rate == 16000 and audio.ndim == 1
        assert abs(len(audio) / sr - t.duration_s) < 0.01
        assert t.license == ("CC-BY-SA-3.0" if "bonus" in t.source_path else "GPL-2+")
        assert t.package == PKG and t.package_version == "1.0-1" and t.title
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{t.track_id}.flac" for t in tracks)


def test_ids_hashes_and_splits_are_stable_across_runs(params_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    _build(params_file, cache_dir, tmp_path / "a")
    _build(params_file, cache_dir, tmp_path / "b")
    a, b = load_manifest(tmp_path / "a"), load_manifest(tmp_path / "b")
    assert [t.to_dict() for t in a] == [t.to_dict() for t in b]
    assert {t.split for t in a} == {"train", "val", "unseen"}


def test_second_build_needs_no_download(params_file: Path, cache_dir: Path, tmp_path: Path, monkeypatch) -> None:
    _build(params_file, cache_dir, tmp_path / "a")
    assert not list((cache_dir / "debs").glob(f"{PKG}_*.deb")), "the .deb is dropped once extracted"
    assert (cache_dir / "sources" / PKG / "source.json").is_file()

    def no_network(*args, **kwargs):
        raise AssertionError("download attempted although the cache holds the package")

    monkeypatch.setattr(debs_mod, "download_deb", no_network)
    header = _build(params_file, cache_dir, tmp_path / "b")
    assert header["tracks"] >= 4


def test_limit_caps_the_track_count(params_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    header = _build(params_file, cache_dir, tmp_path / "c", limit=2)
    assert header["tracks"] == 2 and len(list((tmp_path / "c" / "audio").iterdir())) == 2


def test_crash_mid_build_leaves_previous_catalog_intact(params_file: Path, cache_dir: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    out = tmp_path / "catalog"
    _build(params_file, cache_dir, out)
    before = (out / "manifest.jsonl").read_bytes()
    real, calls = build_mod.process, []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(build_mod, "process", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        _build(params_file, cache_dir, out)
    assert (out / "manifest.jsonl").read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*")), "no half-built catalog left behind"


def test_track_id_is_derived_from_package_and_path() -> None:
    # golden values (more in test_golden.py): a changed hash or slug rule renames every track
    assert track_id_for("supertux-data", "usr/share/games/supertux2/music/battle_theme.ogg") == \
        "supertux-data--battle-theme-a280e8a7"
    assert track_id_for("flare-game", "usr/share/games/flare/mods/fantasycore/music/battle_theme.ogg") == \
        "flare-game--battle-theme-ecd8197e"  # same file name, another package: another id


def test_split_assignment_is_per_track_and_follows_fractions() -> None:
    fractions = {"train": 0.7, "val": 0.1, "unseen": 0.2}
    ids = [f"pkg--t{i}" for i in range(20000)]
    splits = [assign_split(i, 7, fractions) for i in ids]
    for name, frac in fractions.items():
        assert abs(splits.count(name) / len(ids) - frac) < 0.015
    assert splits[:12] == ["train", "unseen", "unseen", "train", "train", "train", "train", "train", "train",
                           "unseen", "train", "train"]  # golden: a changed split hash moves these
    assert [assign_split(i, 8, fractions) for i in ids[:12]] == [
        "train", "unseen", "unseen", "train", "train", "train", "unseen", "unseen", "val", "unseen", "train",
        "train"]  # the seed matters


def test_load_manifest_rejects_other_format(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a built catalog"):
        load_manifest(tmp_path)
    (tmp_path / "catalog.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ManifestError, match="format 99"):
        load_manifest(tmp_path)


def test_exclude_drops_songs_of_another_catalog(params_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    first = _build(params_file, cache_dir, tmp_path / "catalog")
    assert (tmp_path / "catalog" / "fingerprints.npz").is_file()
    header = _build(params_file, cache_dir, tmp_path / "outside", exclude=tmp_path / "catalog")
    assert header["tracks"] == 0 and header["duplicates"] >= first["tracks"]
    kept = {t.track_id for t in load_manifest(tmp_path / "catalog")}
    reasons = _skips(tmp_path / "outside").values()
    assert sum(any(k in r for k in kept) for r in reasons if "duplicate" in r) >= first["tracks"]


def test_a_file_whose_two_decodes_differ_is_left_out(params_file: Path, cache_dir: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    """catalog.decode_twice: a tracker module rendered with random effects decodes differently each time; such a
    file is skipped (a deterministic outcome), while files that decode the same twice are kept unchanged."""
    import dataclasses

    import numpy as np

    params = dataclasses.replace(load_section(params_file, "catalog", CatalogParams), decode_twice=[".ogg"])
    run(dataclasses.replace(params, decode_twice=[]), tmp_path / "once", cache_dir, progress=False)
    once = load_manifest(tmp_path / "once")
    run(params, tmp_path / "twice", cache_dir, progress=False)
    assert [t.to_dict() for t in load_manifest(tmp_path / "twice")] == [t.to_dict() for t in once]

    real, seen = build_mod.decode, set()

    def random_effects(path, sr, timeout_s):  # song_2 renders a little differently on every decode
        audio = real(path, sr, timeout_s)
        if path.name.endswith("song_2.ogg"):
            key = len(seen)
            seen.add(key)
            audio = audio + np.random.default_rng(key).normal(0, 1e-3, audio.size).astype(np.float32)
        return audio

    monkeypatch.setattr(build_mod, "decode", random_effects)
    run(params, tmp_path / "random", cache_dir, progress=False)
    kept = {t.track_id for t in load_manifest(tmp_path / "random")}
    song_2 = track_id_for(PKG, f"{MUSIC_DIR}/song_2.ogg")
    assert song_2 not in kept and kept == {t.track_id for t in once} - {song_2}
    assert "nondeterministic render" in _skips(tmp_path / "random")["song_2.ogg"]


def test_a_track_holding_a_song_of_the_excluded_catalog_is_found_by_its_shared_audio(
        params_file: Path, cache_dir: Path, tmp_path: Path) -> None:
    """catalog.shared_audio: a reference song reused inside a longer track (another length, so no duplicate test
    sees it) is found at its offset; unrelated music is not."""
    import dataclasses

    import numpy as np

    from resonance.audio import read_audio, to_pcm16, write_flac
    from resonance.catalog.shared import shared_audio
    from resonance.landmark.peaks import LandmarkConfig

    from conftest import music_clip

    _build(params_file, cache_dir, tmp_path / "catalog")
    ref = load_manifest(tmp_path / "catalog")
    song = ref[0]
    reused, sr = read_audio(tmp_path / "catalog" / song.audio_path, song.sample_rate)
    other = music_clip(60.0, seed=77, sr=sr).astype(np.float32) * 0.5
    medley = np.concatenate([other[:20 * sr], reused[:12 * sr], other[20 * sr:35 * sr]])
    new = tmp_path / "new"
    tracks = []
    for name, audio in (("medley", medley), ("unrelated", other)):
        write_flac(new / "audio" / f"{name}.flac", to_pcm16(audio), sr)
        tracks.append(dataclasses.replace(song, track_id=name, audio_path=f"audio/{name}.flac",
                                          duration_s=audio.size / sr))
    config = load_section(params_file, "landmark", LandmarkConfig)
    shared = load_section(params_file, "catalog", CatalogParams).shared_audio
    found = shared_audio(tracks, new, tmp_path / "catalog", config, 5.0, 2.5, shared.min_votes // 3,
                         progress=False)
    assert [f.track_id for f in found] == ["medley"]
    assert found[0].other == song.track_id and 17.5 <= found[0].at_s <= 25.0
    assert "shares audio with " + song.track_id in found[0].reason()

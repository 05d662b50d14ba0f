"""Golden values where the README claims stability: track ids and splits of real (package, member path) pairs
written out literally, and the fixture catalog built twice in two separate processes, compared byte for byte.

A change of the id hash, the split hash, the seed handling or the split edges moves tracks between `train` and
`unseen` (songs the model trained on would be scored as never seen): these literals are what catches it. They
are the ids and splits of the real catalog (`data/catalog/manifest.jsonl`, params.yaml's `catalog.seed` and
`catalog.splits`) when this test was written; never regenerate them to make the test pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from resonance.catalog.build import assign_split, track_id_for
from resonance.config import CatalogParams, load_section

from conftest import MUSIC_DIR, PKG, ROOT, SONGS, seed_covering_all_splits, shrunk_params

# (package, member path) -> (track_id, split under params.yaml's catalog.seed and catalog.splits)
GOLDEN = {
    ("warzone2100-music", "usr/share/games/warzone2100/music/albums/aftermath_soundtrack/menu_enhanced.opus"):
        ("warzone2100-music--menu-enhanced-6ed33150", "train"),
    ("warzone2100-music", "usr/share/games/warzone2100/music/albums/legacy_soundtrack/track14.opus"):
        ("warzone2100-music--track14-a98452f6", "val"),
    ("warzone2100-music", "usr/share/games/warzone2100/music/albums/aftermath_soundtrack/track23.opus"):
        ("warzone2100-music--track23-4f61826a", "unseen"),
    ("ufoai-music", "usr/share/games/ufoai/base/0music.pk3!music/alBasrahM.ogg"):
        ("ufoai-music--albasrahm-2485460c", "train"),
    ("ufoai-music", "usr/share/games/ufoai/base/0music.pk3!music/Crystan-Battlescape02.ogg"):
        ("ufoai-music--crystan-battlescape02-80785214", "val"),
    ("ufoai-music", "usr/share/games/ufoai/base/0music.pk3!music/Crystan-Geosphere02.ogg"):
        ("ufoai-music--crystan-geosphere02-1a5ed13d", "unseen"),
    ("tecnoballz-data", "usr/share/games/tecnoballz/musics/area1-game.mod"):
        ("tecnoballz-data--area1-game-afc31177", "unseen"),
    ("tecnoballz-data", "usr/share/games/tecnoballz/musics/area1-game2.mod"):
        ("tecnoballz-data--area1-game2-7758a3d2", "val"),
    ("tecnoballz-data", "usr/share/games/tecnoballz/musics/area2-game.mod"):
        ("tecnoballz-data--area2-game-3c98c7f7", "train"),
    ("supertux-data", "usr/share/games/supertux2/music/antarctic/arctic_breeze.ogg"):
        ("supertux-data--arctic-breeze-4dd394dd", "unseen"),
    ("supertux-data", "usr/share/games/supertux2/music/antarctic/bossattack.ogg"):
        ("supertux-data--bossattack-517f3497", "val"),
    ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music/battle-epic.ogg"):
        ("wesnoth-1.16-music--battle-epic-1f30d21e", "unseen"),
    ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music/casualties_of_war.ogg"):
        ("wesnoth-1.16-music--casualties-of-war-f13f7c49", "val"),
    ("blobwars-data", "usr/share/games/blobwars/music/cutscene"):  # an extension-less member
        ("blobwars-data--cutscene-86bc9250", "unseen"),
    ("openarena-088-data", "usr/share/games/openarena/baseoa/pak6-patch088.pk3!music/OA13.ogg"):
        ("openarena-088-data--oa13-ba5a4d09", "unseen"),
    ("pachi-data", "usr/share/pachi/music/stage3.s3m"):
        ("pachi-data--stage3-fd944532", "val"),
}

# The fixture package's four songs (tests/conftest.py), their ids, the first seed that spreads them over all three
# splits (what shrunk_params uses), and their splits under that seed.
FIXTURE = {"song_0.ogg": ("resonance-fixture-music--song-0-688c0569", "unseen"),
           "song_1.ogg": ("resonance-fixture-music--song-1-9e57616f", "train"),
           "song_2.ogg": ("resonance-fixture-music--song-2-627d57c5", "train"),
           "bonus_theme.ogg": ("resonance-fixture-music--bonus-theme-008937fe", "val")}
FIXTURE_SEED = 0


def _real_catalog_params() -> CatalogParams:
    return load_section(ROOT / "params.yaml", "catalog", CatalogParams)


def test_track_ids_of_real_members_are_the_golden_ones() -> None:
    got = {key: track_id_for(*key) for key in GOLDEN}
    assert got == {key: tid for key, (tid, _) in GOLDEN.items()}


def test_splits_of_real_tracks_under_the_real_seed_are_the_golden_ones() -> None:
    params = _real_catalog_params()
    assert params.seed == 20261124 and params.splits == {"train": 0.7, "val": 0.1, "unseen": 0.2}, \
        "catalog.seed or catalog.splits changed: every track may move; rebuild the catalog and retrain"
    got = {key: assign_split(tid, params.seed, params.splits) for key, (tid, _) in GOLDEN.items()}
    assert got == {key: split for key, (_, split) in GOLDEN.items()}
    assert {split for _, split in GOLDEN.values()} == {"train", "val", "unseen"}


def test_fixture_ids_seed_and_splits_are_the_golden_ones() -> None:
    params = _real_catalog_params()
    ids = {song: track_id_for(PKG, f"{MUSIC_DIR}/{song}") for song in SONGS}
    assert ids == {song: tid for song, (tid, _) in FIXTURE.items()}
    assert seed_covering_all_splits(params.splits) == FIXTURE_SEED
    assert {s: assign_split(tid, FIXTURE_SEED, params.splits) for s, tid in ids.items()} == \
        {song: split for song, (_, split) in FIXTURE.items()}


def _catalog_in_a_new_process(root: Path, debs: Path, workers: int, hash_seed: str) -> Path:
    """`resonance catalog` in its own interpreter, its own cache (a fresh copy of the fixture .debs), its own
    decode worker count and Python hash seed; returns the catalog folder."""
    root.mkdir()
    params = shrunk_params()
    params["catalog"]["workers"] = workers
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(debs, root / "cache" / "debs")
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(root / "params.yaml"), "-q", "catalog",
                           "--out", str(root / "catalog"), "--cache", str(root / "cache")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root / "catalog"


def _files(catalog: Path, cache: Path) -> dict[str, bytes]:
    """Every file of a catalog folder; in skipped.jsonl the cache folder a bad file was read from (named in its
    decoder error) becomes CACHE: where the cache lives is not part of the catalog."""
    out = {str(p.relative_to(catalog)): p.read_bytes() for p in sorted(catalog.rglob("*")) if p.is_file()}
    out["skipped.jsonl"] = out["skipped.jsonl"].replace(str(cache).encode(), b"CACHE")
    return out


def test_a_build_in_another_process_is_byte_identical(built: dict, extra_debs: Path, tmp_path: Path) -> None:
    """The session's catalog (built in this process, 2 decode workers) against `resonance catalog` run in a new
    interpreter with 1 worker and another hash seed: every file the same, byte for byte."""
    ours = _files(built["root"] / "catalog", built["root"] / "cache")
    other = _files(_catalog_in_a_new_process(tmp_path / "b", extra_debs, workers=1, hash_seed="12345"),
                   tmp_path / "b" / "cache")
    assert sorted(ours) == sorted(other)
    assert {"manifest.jsonl", "catalog.json", "skipped.jsonl", "fingerprints.npz"} <= set(ours)
    assert sum(name.startswith("audio/") for name in ours) == len(FIXTURE)
    differ = [name for name in ours if ours[name] != other[name]]
    assert differ == [], f"not byte-identical across processes: {differ}"
    manifest = ours["manifest.jsonl"].decode()
    for tid, split in FIXTURE.values():  # and the ids and splits in it are the golden ones
        assert f'"track_id": "{tid}"' in manifest
        assert f'"split": "{split}", "audio_path": "audio/{tid}.flac"' in manifest

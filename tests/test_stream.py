"""`resonance index remove|info`, `resonance listen` (file, stdin raw PCM; ffmpeg underneath) and `identify
--setlist`, on a tiny real setup: an untrained `fast` model, an index built by `index add` from generated songs,
a calibration for it; the generated concerts of the benchmark on the fixture catalog."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resonance.cli import main
from resonance.config import load_section
from resonance.config.stream import ConcertParams, SetlistParams
from resonance.stream.concerts import Concert, Song
from resonance.stream.score import score_setlist
from resonance.stream.setlist import Performance
from serve_helpers import PARAMS, SR, build_setup, calibrate, embedding_params, serve_params, songs, write_wav


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_setup(tmp_path_factory.mktemp("stream"), 3, songs())


def _args(setup: dict[str, Path], *names: str) -> list[str]:
    return [a for n in names for a in (f"--{n}", str(setup[n]))]


def _cli(*args: str) -> int:
    return main(["-q", "--params", str(PARAMS), *args])


def test_index_info_and_remove(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    import shutil

    idx = tmp_path / "index"
    shutil.copytree(setup["index"], idx)
    assert _cli("index", "info", "--index", str(idx), "--json", "--tracks") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tracks"] == 3 and info["checksums"] == "verified" and info["type"]["kind"] in ("flat", "hnsw")
    assert [t["track_id"] for t in info["track_list"]] == ["song_a", "song_b", "song_c"]
    assert info["windows"] == sum(t["windows"] for t in info["track_list"]) and info["bytes"] > 0
    build = info["build_id"]

    assert _cli("index", "remove", "song_b", "nope", "--index", str(idx)) == 2  # one unknown id: nothing removed
    assert "nope not in" in capsys.readouterr().err
    assert _cli("index", "remove", "song_b", "--index", str(idx)) == 0
    assert "1 track(s) removed: song_b" in capsys.readouterr().out
    assert _cli("index", "info", "--index", str(idx), "--json", "--tracks") == 0
    after = json.loads(capsys.readouterr().out)
    assert [t["track_id"] for t in after["track_list"]] == ["song_a", "song_c"] and after["build_id"] != build
    assert after["windows"] == info["windows"] - info["track_list"][1]["windows"]
    clip = write_wav(tmp_path / "b.wav", songs()["song_b"][4 * SR:9 * SR])
    assert _cli("identify", "--json", str(clip), "--index", str(idx), *_args(setup, "model", "calibration")) == 0
    assert json.loads(capsys.readouterr().out)["track_id"] != "song_b"
    assert _cli("index", "info", "--index", str(tmp_path / "none")) == 2
    assert "no index" in capsys.readouterr().err.lower()


def test_a_compressed_ivfpq_index_is_built_added_to_and_identifies(setup: dict[str, Path], tmp_path: Path,
                                                                     capsys) -> None:
    from resonance.index.stage import add_files

    files = [write_wav(tmp_path / f"{k}.wav", a) for k, a in songs().items()]
    pq = dataclasses.replace(embedding_params(), index_type="ivfpq", ivfpq={"nlist": 2, "nprobe": 2, "m": 8,
                                                                           "nbits": 8})
    idx = tmp_path / "pq"
    add_files(files[:2], None, None, setup["model"], idx, pq)
    add_files(files[2:], None, None, setup["model"], idx, pq)  # a second add: encoded into the saved codes
    assert not (idx / "index.faiss").exists() and (idx / "ann.faiss").is_file()
    assert _cli("index", "info", "--index", str(idx), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"]["kind"] == "ivfpq" and info["tracks"] == 3
    assert info["bytes_per_window"] < json.loads(_info_json(setup["index"], capsys))["bytes_per_window"] / 2
    clip = write_wav(tmp_path / "b.wav", songs()["song_b"][4 * SR:9 * SR])
    assert _cli("identify", "--json", str(clip), "--index", str(idx), *_args(setup, "model", "calibration")) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out.get("track_id") or out["best_guess"]["track_id"]) == "song_b"


def _info_json(index: Path, capsys) -> str:
    assert _cli("index", "info", "--index", str(index), "--json") == 0
    return capsys.readouterr().out


def _listen(setup: dict[str, Path], *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "resonance", "--params", str(PARAMS), "listen", *args,
           *_args(setup, "model", "index", "calibration")]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=300)


def test_listen_names_each_song_as_it_starts_from_a_file_and_from_raw_stdin(setup: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    s = songs()
    audio = np.concatenate([s["song_a"][:6 * SR], s["song_c"]])  # song a for 6 s, then song c
    wav = write_wav(tmp_path / "two.wav", audio)
    done = _listen(setup, str(wav))
    assert done.returncode == 0, done.stderr.decode()
    lines = [json.loads(x) for x in done.stdout.decode().splitlines()]
    matches = [m for m in lines if m["event"] == "match"]
    assert matches[0]["track_id"] == "song_a" and matches[-1]["track_id"] == "song_c", matches
    assert all(a["track_id"] != b["track_id"] for a, b in zip(matches, matches[1:]))  # said once per change
    assert matches[0]["t_s"] == 1.0 and 6.0 < matches[-1]["t_s"] <= 18.0 and matches[-1]["decided_by"]
    assert {"time_to_decision_s", "offset_s", "confidence", "buffer_start_s"} <= set(matches[-1])
    assert lines[-1]["event"] == "final" and lines[-1]["track_id"] == "song_c"
    raw = (np.round(audio * 32767)).astype("<i2").tobytes()
    piped = _listen(setup, "-", "--raw", "s16le", "--rate", str(SR), stdin=raw)
    assert piped.returncode == 0, piped.stderr.decode()
    assert [json.loads(x)["track_id"] for x in piped.stdout.decode().splitlines()] == \
        [m["track_id"] for m in lines]
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"OggS" + bytes(3000))
    failed = _listen(setup, str(bad))
    assert failed.returncode == 2 and not failed.stdout and "cannot decode" in failed.stderr.decode()
    assert _listen(setup, str(wav), "--rate", "8000").returncode == 2  # --rate without --raw


def test_setlist_lists_the_known_songs_with_their_times(setup: dict[str, Path], tmp_path: Path, capsys) -> None:
    s = songs()
    gap = np.zeros(4 * SR, dtype=np.float32)
    recording = np.concatenate([gap, s["song_a"], gap, s["song_c"], gap, s["song_b"][:10 * SR], gap])
    path = write_wav(tmp_path / "concert.wav", recording)
    assert _cli("identify", "--setlist", "--json", str(path), *_args(setup, "model", "index", "calibration")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["duration_s"] == pytest.approx(recording.size / SR, abs=0.01)
    got = [(x["track_id"], x["start_s"], x["end_s"]) for x in out["songs"]]
    want = [("song_a", 4.0, 16.0), ("song_c", 20.0, 32.0), ("song_b", 36.0, 46.0)]
    assert [g[0] for g in got] == [w[0] for w in want], got
    for (_, start, end), (_, true_start, true_end) in zip(got, want):
        assert abs(start - true_start) <= 2.0 and abs(end - true_end) <= 2.0, got
    assert _cli("identify", "--setlist", str(path), *_args(setup, "model", "index", "calibration")) == 0
    assert "3 song(s)" in capsys.readouterr().out


def test_score_counts_found_bounded_unknown_and_wrong() -> None:
    songs_ = [Song("a", "a", "A", 5.0, 60.0, 0.0), Song(None, "x", "X", 70.0, 120.0, 3.0),
              Song("b", "b", "B", 130.0, 190.0, 1.0)]
    concert = Concert("c", 0.0, "hall", songs_, 200.0)

    def perf(track: str, start: float, end: float) -> Performance:
        return Performance(track, track, start, end, 0.0, 0.9, 10, 3)

    exact = score_setlist(concert, [perf("a", 6.0, 58.0), perf("b", 133.0, 191.0)])
    assert (exact.found, exact.bounded, exact.unknown_named, exact.wrong, exact.exact) == (2, 2, 0, 0, True)
    off = score_setlist(concert, [perf("a", 20.0, 58.0), perf("q", 80.0, 110.0), perf("z", 140.0, 150.0)])
    assert (off.found, off.bounded, off.unknown_named, off.wrong, off.exact) == (1, 0, 1, 1, False)


def test_concerts_render_from_the_seed_with_the_songs_where_the_truth_says(built: dict, tmp_path: Path) -> None:
    import soundfile as sf

    from resonance.banks.stage import load_banks
    from resonance.catalog.manifest import load_manifest
    from resonance.config import ParamsError, SimulateParams
    from resonance.stream.concerts import write_concerts

    p = load_section(PARAMS, "setlist", SetlistParams)
    with pytest.raises(ParamsError, match="unknown"):
        dataclasses.replace(p.concerts, unknown=p.concerts.songs[0])
    with pytest.raises(ParamsError, match="step_s"):
        dataclasses.replace(p, step_s=p.buffer_s + 1)
    root = built["root"]
    c = dataclasses.replace(p.concerts, n=2, songs=[2, 2], song_s=[2.0, 3.0], gap_s=[1.0, 2.0], split="train")
    assert len(load_manifest(root / "catalog")) >= 3
    sim = load_section(built["params"], "simulate", SimulateParams)
    banks = load_banks(root / "banks")
    args = (c, sim, banks, root / "catalog", root / "outside")
    first = write_concerts(*args, tmp_path / "a", progress=False)
    again = write_concerts(*args, tmp_path / "b", progress=False)
    assert [x.to_dict() for x in first] == [x.to_dict() for x in again]
    assert json.loads((tmp_path / "a" / "concerts.json").read_text())["concerts"] == [x.to_dict() for x in first]
    for concert in first:
        assert (tmp_path / "a" / f"{concert.name}.flac").read_bytes() == (tmp_path / "b" / f"{concert.name}.flac").read_bytes()
        audio, sr = sf.read(str(tmp_path / "a" / f"{concert.name}.flac"), dtype="float32")
        assert sr == banks.sr and audio.size == int(round(concert.duration_s * sr))
        assert len(concert.songs) == 2 and sum(s.track_id is None for s in concert.songs) == 1
        assert concert.songs[0].track_id is not None  # a set opens with a known song
        ends = [0.0] + [x for s in concert.songs for x in (s.start_s, s.end_s)] + [concert.duration_s]
        assert ends == sorted(ends)


def test_concert_params_need_sane_ranges() -> None:
    from resonance.config import ParamsError

    base = dict(seed=1, n=2, songs=[5, 8], unknown=1, song_s=[40.0, 75.0], gap_s=[4.0, 12.0], split="val",
                snr_db=[0.0], reverb=["hall"], clip_mode="none")
    assert ConcertParams(**base).n == 2
    for bad in ({"songs": [8, 5]}, {"song_s": [1.0, 2.0]}, {"snr_db": []}):
        with pytest.raises(ParamsError):
            ConcertParams(**{**base, **bad})


def test_listen_names_a_song_below_the_threshold_when_its_guesses_agree(setup: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    """Thresholds nothing clears: only `agree_decisions` aligned guesses in a row name a song (0: never)."""
    from resonance.serve.holder import load_served
    from resonance.serve.listen import StreamDecider

    strict = calibrate(setup["model"], tmp_path / "strict", {1.0: 1e9, 3.0: 1e9})
    served = load_served(serve_params({**setup, "calibration": strict}), embedding_params())
    base = serve_params(setup).listen
    audio = songs()["song_b"]
    for agree, named in ((0, []), (3, ["song_b"])):
        decider = StreamDecider(lambda: served, dataclasses.replace(base, agree_decisions=agree))
        matches = decider.feed(audio)
        assert [m["track_id"] for m in matches] == named
        if named:
            first = matches[0]
            assert first["decided_by"] == "agreement" and first["accepted"] is True and first["t_s"] == 3.0
            assert first["score"] < first["threshold"]  # below the threshold, named by agreement

"""The FAISS reference index, the temporal vote, and the `index add` / `identify` verbs.

Real parts only: real FAISS, real audio files decoded by ffmpeg, and a tiny UNTRAINED model of the project's
`fast` profile. Untrained, it still maps an exact excerpt of an indexed track (starting on a multiple of the
reference hop) to the very same embeddings, which is what these tests lean on. (What a TRAINED model recognizes
is checked in test_decision.py and test_train.py.)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from resonance.cli import main
from resonance.config import EmbeddingParams, load_section, load_train
from resonance.index.method import EmbeddingMethod, model_sha256
from resonance.index.store import EmbeddingIndex, EmbeddingIndexError
from resonance.index.vote import vote
from resonance.model.embedder import Embedder, EmbeddingModel, load_model, save_bundle

from conftest import ROOT, music_clip

SR = 16000
PARAMS = ROOT / "params.yaml"


# --- vote: hand-made neighbour arrays -------------------------------------------------------------------


def _true_neighbours(m: int, query_hop_s: float, hop_s: float, track: int, offset_s: float, sim: float):
    """Each query window's correct neighbour: the reference window of `track` nearest offset_s + i*query_hop_s."""
    starts = np.round((offset_s + np.arange(m) * query_hop_s) / hop_s) * hop_s
    return np.full(m, sim), np.full(m, track), starts


def test_vote_finds_the_track_and_offset_the_windows_agree_on() -> None:
    rng = np.random.default_rng(0)
    m, k = 30, 5
    scores = rng.uniform(0.2, 0.6, (m, k))  # chance neighbours: random tracks and starts, lower similarity
    tracks = rng.integers(0, 50, (m, k))
    starts = rng.integers(0, 400, (m, k)) * 0.5
    s, t, r = _true_neighbours(m, 0.1, 0.5, track=7, offset_s=12.3, sim=0.9)
    scores[:, 2], tracks[:, 2], starts[:, 2] = s, t, r  # the right neighbour, not always ranked first
    found = vote(scores, tracks, starts, query_hop_s=0.1, hop_s=0.5)
    assert found.track == 7
    assert abs(found.offset_s - 12.3) <= 0.25
    assert found.n_agree == m and found.n_windows == m
    assert found.confidence == pytest.approx(0.9, abs=0.05)  # every window agrees at similarity 0.9


def test_vote_without_agreement_has_low_confidence() -> None:
    rng = np.random.default_rng(1)
    m, k = 30, 5
    scores = np.full((m, k), 0.9)  # as similar as the agreeing case above, but scattered over tracks and times
    tracks = rng.integers(0, 50, (m, k))
    starts = rng.integers(0, 400, (m, k)) * 0.5
    scattered = vote(scores, tracks, starts, query_hop_s=0.1, hop_s=0.5)
    assert scattered.confidence < 0.15
    s, t, r = _true_neighbours(m, 0.1, 0.5, track=3, offset_s=40.0, sim=0.9)
    half = m // 2
    tracks[:half, 0], starts[:half, 0] = t[:half], r[:half]  # half the windows agree: confidence about halves
    partial = vote(scores, tracks, starts, query_hop_s=0.1, hop_s=0.5)
    assert partial.track == 3 and abs(partial.offset_s - 40.0) <= 0.25
    assert partial.confidence == pytest.approx(0.9 * half / m, abs=0.1)
    assert scattered.confidence < partial.confidence


def test_vote_confidence_grows_with_similarity_and_clips_the_offset_at_zero() -> None:
    s, t, r = _true_neighbours(10, 0.1, 0.5, track=0, offset_s=0.0, sim=1.0)
    r = r - 0.5  # neighbours say the query started half a second before the track did
    low = vote(0.4 * s[:, None], t[:, None], r[:, None], 0.1, 0.5)
    high = vote(0.95 * s[:, None], t[:, None], r[:, None], 0.1, 0.5)
    assert low.track == high.track == 0
    assert 0.0 <= low.confidence < high.confidence <= 1.0
    assert high.offset_s == 0.0


def test_vote_with_no_usable_neighbour_is_no_match() -> None:
    scores = np.array([[-np.inf, -0.2]])
    found = vote(scores, np.array([[-1, 4]]), np.array([[np.nan, 3.0]]), 0.1, 0.5)
    assert found.track is None and found.confidence == 0.0


# --- the index, with a tiny untrained model ----------------------------------------------------------------


def _tiny_model(seed: int) -> EmbeddingModel:
    p = load_train(PARAMS, "fast")
    torch.manual_seed(seed)
    return EmbeddingModel(p.frontend, p.encoder, p.encoders[p.encoder], p.window_s, p.hop_s)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "model"
    save_bundle(_tiny_model(0), folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def songs() -> dict[str, np.ndarray]:
    """Three 12 s songs at 16 kHz, quantized to 16 bits exactly as a PCM WAV stores them."""
    return {f"song_{c}": np.round(music_clip(12.0, seed=i, sr=SR) * 32767) / 32767
            for i, c in enumerate("abc")}


def _method(model_dir: Path, **over) -> EmbeddingMethod:
    params = dataclasses.replace(load_section(PARAMS, "embedding", EmbeddingParams), **over)
    return EmbeddingMethod(Embedder(load_model(model_dir), batch=params.batch), params)


def test_exact_excerpt_is_identified_and_wrong_rate_refused(model_dir: Path, songs: dict) -> None:
    method = _method(model_dir)
    method.build(songs.items(), SR)
    assert method.index.n_windows == 3 * 23  # 12 s of 1 s windows every 0.5 s
    clip = songs["song_b"][int(4.5 * SR): int(8.5 * SR)]
    found = method.identify(clip, SR)
    assert found.track_id == "song_b" and abs(found.offset_s - 4.5) <= 0.5
    plain = _method(model_dir, score="score")  # uncalibrated `score`: the mean cosine of the aligned windows
    plain.build(songs.items(), SR)
    cosine = plain.identify(clip, SR)
    assert cosine.track_id == "song_b" and 0 < cosine.score <= 1
    if method.config.score == "blend":  # the shipped score adds the margin over the best other song (>= 0)
        assert found.score >= cosine.score
    assert method.index_bytes() >= method.index.n_windows * method.embedder.dim * 4
    with pytest.raises(ValueError, match="44100 Hz"):
        method.identify(songs["song_b"], 44100)


def test_a_finer_reference_hop_indexes_twice_the_windows_and_still_locates(model_dir: Path, songs: dict,
                                                                            tmp_path: Path) -> None:
    fine = _method(model_dir, reference_hop_s=0.25)
    fine.build(songs.items(), SR)
    assert fine.index.hop_s == 0.25 and fine.index.n_windows == 3 * 45  # 12 s of 1 s windows every 0.25 s
    found = fine.identify(songs["song_b"][int(4.25 * SR): int(8.25 * SR)], SR)
    assert found.track_id == "song_b" and abs(found.offset_s - 4.25) <= 0.125
    fine.index.save(tmp_path / "idx")
    again = _method(model_dir)  # params back at the model's hop: a loaded index keeps its own
    again._index = EmbeddingIndex.load(tmp_path / "idx")
    again.add("song_d", songs["song_a"][: 6 * SR], "D", "d.wav")
    assert again.index.hop_s == 0.25 and again.index.tracks[-1].n_slots == 21


def test_save_load_round_trip_gives_the_same_search(model_dir: Path, songs: dict, tmp_path: Path) -> None:
    method = _method(model_dir)
    method.build(songs.items(), SR)
    method.index.save(tmp_path / "idx")
    method.index.save(tmp_path / "idx")  # overwrite: swapped in whole, nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    # an HNSW index (the default type) keeps the floats once, in its graph: no separate index.faiss
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["ann.faiss", "index.json", "tracks.jsonl",
                                                                    "windows.npz"]
    loaded = EmbeddingIndex.load(tmp_path / "idx", method.model_sha256)
    head = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert head["n_tracks"] == 3 and head["n_windows"] == 69 and head["dim"] == 32 and head["hop_s"] == 0.5
    assert head["model_sha256"] == model_sha256(load_model(model_dir))  # same model, same fingerprint
    queries = method.embedder.embed(songs["song_c"][SR:5 * SR], 0.1)
    before, after = method.index.search(queries, 5), loaded.search(queries, 5)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert [t.track_id for t in loaded.tracks] == ["song_a", "song_b", "song_c"]
    assert after[1][0, 0] == 2 and after[2][0, 0] == 1.0 and after[0][0, 0] == pytest.approx(1.0, abs=1e-5)


def test_re_adding_a_track_replaces_it(model_dir: Path, songs: dict, tmp_path: Path) -> None:
    method = _method(model_dir)
    method.add("song_a", songs["song_a"], "A", "a.wav")
    method.add("song_b", songs["song_b"], "B", "b.wav")
    method.add("song_a", songs["song_c"][: 6 * SR], "A (new)", "a2.wav")  # same id, new audio
    index = method.index
    assert [t.track_id for t in index.tracks] == ["song_a", "song_b"]
    assert index.tracks[0].title == "A (new)" and index.tracks[0].n_windows == 11
    assert index.n_windows == 11 + 23 == index.faiss.ntotal
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    scores, track, start = loaded.search(method.embedder.embed(songs["song_c"][2 * SR: 3 * SR]), 1)
    assert track[0, 0] == 0 and start[0, 0] == 2.0 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    old = method.embedder.embed(songs["song_a"][8 * SR: 9 * SR])  # the replaced audio is gone
    assert loaded.search(old, 1)[0][0, 0] < 1.0 - 1e-5
    loaded.remove_track("song_a")
    assert loaded.n_windows == 23 == loaded.faiss.ntotal and loaded.search(old, 1)[1][0, 0] == 0


def test_an_index_of_another_model_is_refused(model_dir: Path, songs: dict, tmp_path: Path) -> None:
    method = _method(model_dir)
    method.build(list(songs.items())[:1], SR)
    method.index.save(tmp_path / "idx")
    other = _tiny_model(1)
    with pytest.raises(EmbeddingIndexError, match="built with another model"):
        EmbeddingIndex.load(tmp_path / "idx", model_sha256(other))
    with pytest.raises(EmbeddingIndexError, match="another model"):
        EmbeddingMethod.with_index(Embedder(other), method.config, EmbeddingIndex.load(tmp_path / "idx"))
    with pytest.raises(EmbeddingIndexError, match="no index here"):
        EmbeddingIndex.load(tmp_path / "nothing")


def test_readers_see_a_whole_index_while_it_is_rewritten(model_dir: Path, songs: dict, tmp_path: Path) -> None:
    small, big = _method(model_dir), _method(model_dir)
    small.build(list(songs.items())[:1], SR)
    big.build(songs.items(), SR)
    small.index.save(tmp_path / "idx")
    seen, errors, done = set(), [], threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                idx = EmbeddingIndex.load(tmp_path / "idx")
                seen.add((len(idx.tracks), idx.n_windows, idx.faiss.ntotal))
            except Exception as exc:  # noqa: BLE001 - any failure is the bug this test looks for
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20):
        (big if i % 2 else small).index.save(tmp_path / "idx")
    done.set()
    reader.join()
    assert not errors
    assert seen <= {(1, 23, 23), (3, 69, 69)} and seen


def test_harness_runs_the_embedding_method(model_dir: Path, songs: dict) -> None:
    from resonance.evaluate.harness import run_queries
    from resonance.evaluate.queries import Query

    method = _method(model_dir)
    method.build(songs.items(), SR)
    queries = [Query(f"q{i}", f"{i}.wav", f"e{i}", tid, off, 3.0, None, "dry", 0.0, False, {}, True)
               for i, (tid, off) in enumerate([("song_a", 1.0), ("song_c", 6.5)])]
    clips = {q.query_id: songs[q.track_id][int(q.offset_s * SR): int((q.offset_s + 3) * SR)] for q in queries}
    results = run_queries(method, queries, lambda q: clips[q.query_id], SR)
    assert all(r.song_hit and r.segment_hit(0.5) for r in results)
    assert all(r.latency_ms > 0 for r in results)


# --- the CLI: index add, identify ---------------------------------------------------------------------------


def _wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(str(path), audio, SR, subtype="PCM_16")
    return path


def _calibrate(model_dir: Path, folder: Path, thresholds: dict[float, float]) -> Path:
    """A calibration folder for the model: a cohort of generated music windows and the given per-length
    thresholds (logistic a = 4, b = -4 * threshold: confidence 0.5 at the threshold)."""
    from resonance.index.calibration import Calibration, LengthCalibration

    embedder = Embedder(load_model(model_dir))
    cohort = embedder.embed(music_clip(40.0, seed=77, sr=SR))
    lengths = tuple(LengthCalibration(length, t, 4.0, -4.0 * t, 0.01, 0.5, 10, 10)
                    for length, t in sorted(thresholds.items()))
    Calibration(model_sha256(embedder.model), "sequence", "margin", 8, 0.01, lengths, cohort).save(folder)
    return folder


@pytest.fixture(scope="module")
def calibration_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Thresholds low enough that an exact excerpt of an indexed song passes at every length."""
    return _calibrate(model_dir, tmp_path_factory.mktemp("cal") / "calibration", {1.0: -50.0, 3.0: -50.0})


def _cli(*args: str) -> int:
    return main(["-q", "--params", str(PARAMS), *args])


FIELDS = {"file", "track_id", "title", "accepted", "confidence", "offset_s", "reason", "best_guess", "runner_up",
          "score", "threshold", "duration_s", "latency_ms"}


def test_index_add_then_identify_json(model_dir: Path, calibration_dir: Path, songs: dict, tmp_path: Path,
                                      capsys) -> None:
    files = [_wav(tmp_path / f"{name}.wav", audio) for name, audio in songs.items()]
    idx = tmp_path / "index"
    assert _cli("index", "add", *map(str, files[:2]), "--model", str(model_dir), "--index", str(idx)) == 0
    assert _cli("index", "add", str(files[2]), "--id", "third", "--title", "The Third", "--model", str(model_dir),
                "--index", str(idx)) == 0
    out = capsys.readouterr().out
    assert "2 track(s) indexed" in out and "holds 3 tracks" in out
    excerpt = _wav(tmp_path / "live_b.wav", songs["song_b"][6 * SR: 10 * SR])
    third = _wav(tmp_path / "live_c.wav", songs["song_c"][int(2.5 * SR): int(7.5 * SR)])
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    code = _cli("identify", "--json", str(excerpt), str(corrupt), str(third), "--model", str(model_dir),
                "--index", str(idx), "--calibration", str(calibration_dir))
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and len(lines) == 3
    rows = [json.loads(line) for line in lines]
    assert [r["file"] for r in rows] == [str(excerpt), str(corrupt), str(third)]
    assert set(rows[0]) == FIELDS
    assert rows[0]["track_id"] == "song_b" and rows[0]["title"] == "song_b" and abs(rows[0]["offset_s"] - 6) <= 0.5
    assert rows[0]["accepted"] is True and rows[0]["reason"] is None and rows[0]["threshold"] == -50.0
    assert 0.5 < rows[0]["confidence"] <= 1 and rows[0]["latency_ms"] > 0 and rows[0]["duration_s"] == 4.0
    assert rows[0]["best_guess"]["track_id"] == "song_b" and rows[0]["runner_up"]["track_id"] != "song_b"
    assert set(rows[1]) == {"file", "error"} and rows[1]["error"]
    assert rows[2]["track_id"] == "third" and rows[2]["title"] == "The Third" and abs(rows[2]["offset_s"] - 2.5) <= 0.5
    assert _cli("identify", str(excerpt), "--model", str(model_dir), "--index", str(idx),
                "--calibration", str(calibration_dir)) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{excerpt}: song_b [song_b] at 0:0") and "confidence" in line


def test_the_threshold_is_per_length_and_read_from_the_stored_calibration(model_dir: Path, songs: dict,
                                                                          tmp_path: Path) -> None:
    from resonance.index.stage import add_files, identify_files

    params = load_section(PARAMS, "embedding", EmbeddingParams)
    add_files([_wav(tmp_path / f"{n}.wav", a) for n, a in songs.items()], None, None, model_dir, tmp_path / "idx",
              params)
    short = _wav(tmp_path / "short.wav", songs["song_a"][2 * SR: 4 * SR])  # 2 s: the 1 s threshold applies
    long = _wav(tmp_path / "long.wav", songs["song_a"][2 * SR: 6 * SR])  # 4 s: the 3 s threshold applies
    cal = _calibrate(model_dir, tmp_path / "cal", {1.0: -50.0, 3.0: 1e6})
    a, b = identify_files([short, long], model_dir, tmp_path / "idx", cal, params)
    assert a["accepted"] and a["track_id"] == "song_a" and a["threshold"] == -50.0
    assert not b["accepted"] and b["track_id"] is None and b["title"] is None and b["offset_s"] is None
    assert b["reason"] == "below_threshold" and b["threshold"] == 1e6 and b["confidence"] < 0.01
    assert b["best_guess"]["track_id"] == "song_a"  # the best guess is still reported
    _calibrate(model_dir, cal, {1.0: 1e6, 3.0: -50.0})  # the same clips, the stored thresholds swapped
    a, b = identify_files([short, long], model_dir, tmp_path / "idx", cal, params)
    assert not a["accepted"] and b["accepted"] and b["track_id"] == "song_a"


def test_too_short_and_silent_queries_are_no_match_with_a_reason(model_dir: Path, calibration_dir: Path,
                                                                 songs: dict, tmp_path: Path) -> None:
    from resonance.index.stage import add_files, identify_files

    params = load_section(PARAMS, "embedding", EmbeddingParams)
    add_files([_wav(tmp_path / f"{n}.wav", a) for n, a in songs.items()], None, None, model_dir, tmp_path / "idx",
              params)
    clips = {"short": songs["song_a"][: int(0.15 * SR)], "silence": np.zeros(5 * SR),
             "whisper": 1e-4 * np.random.default_rng(0).standard_normal(5 * SR),
             "noise_50ms": np.random.default_rng(1).uniform(-0.5, 0.5, int(0.05 * SR))}
    rows = identify_files([_wav(tmp_path / f"{k}.wav", v) for k, v in clips.items()], model_dir, tmp_path / "idx",
                          calibration_dir, params)
    reasons = {Path(r["file"]).stem: r for r in rows}
    for name, reason in [("short", "too_short"), ("noise_50ms", "too_short"), ("silence", "silent"),
                         ("whisper", "silent")]:
        row = reasons[name]
        assert row["reason"] == reason and row["track_id"] is None and not row["accepted"], name
        assert row["confidence"] == 0.0 and row["best_guess"] is None, name


def test_missing_or_corrupt_parts_are_one_error_line(model_dir: Path, calibration_dir: Path, songs: dict,
                                                    tmp_path: Path, capsys) -> None:
    clip = _wav(tmp_path / "q.wav", songs["song_a"][: 3 * SR])
    cal = ["--calibration", str(calibration_dir)]
    assert _cli("identify", "--json", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "none"),
                *cal) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "no index here" in captured.err
    assert _cli("identify", str(clip), "--model", str(tmp_path / "nomodel"), "--index", str(tmp_path), *cal) == 2
    assert "no index here" in capsys.readouterr().err  # the index is checked before the (slow) model load
    _cli("index", "add", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "idx"))
    assert _cli("identify", str(clip), "--model", str(tmp_path / "nomodel"), "--index", str(tmp_path / "idx"),
                *cal) == 2
    assert "no model here" in capsys.readouterr().err
    assert _cli("identify", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "idx"),
                "--calibration", str(tmp_path / "nocal")) == 2
    err = capsys.readouterr().err
    assert "no calibration here" in err and "resonance calibrate" in err
    broken = tmp_path / "broken"
    shutil.copytree(calibration_dir, broken)
    text = (broken / "calibration.json").read_text()
    (broken / "calibration.json").write_text(text.replace('"threshold": -50.0', '"threshold": -49.0', 1))
    assert _cli("identify", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "idx"),
                "--calibration", str(broken)) == 2
    assert "corrupt calibration" in capsys.readouterr().err
    (broken / "calibration.json").write_text("{not json")
    assert _cli("identify", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "idx"),
                "--calibration", str(broken)) == 2
    assert "corrupt calibration" in capsys.readouterr().err
    shutil.copytree(calibration_dir, tmp_path / "flipped")
    data = bytearray((tmp_path / "flipped" / "cohort.npy").read_bytes())
    data[-3] ^= 0x10
    (tmp_path / "flipped" / "cohort.npy").write_bytes(bytes(data))
    assert _cli("identify", str(clip), "--model", str(model_dir), "--index", str(tmp_path / "idx"),
                "--calibration", str(tmp_path / "flipped")) == 2
    assert "corrupt" in capsys.readouterr().err
    other = _calibrate(model_dir, tmp_path / "other", {1.0: 0.0})
    save_bundle(_tiny_model(1), tmp_path / "m2" / "model.pt")
    _cli("index", "add", str(clip), "--model", str(tmp_path / "m2"), "--index", str(tmp_path / "idx2"))
    assert _cli("identify", str(clip), "--model", str(tmp_path / "m2"), "--index", str(tmp_path / "idx2"),
                "--calibration", str(other)) == 2
    assert "calibrated for another model" in capsys.readouterr().err


def test_index_add_refuses_unusable_files_and_writes_nothing(model_dir: Path, songs: dict, tmp_path: Path,
                                                             capsys) -> None:
    good = _wav(tmp_path / "good.wav", songs["song_a"])
    silent = _wav(tmp_path / "silent.wav", np.zeros(3 * SR))
    short = _wav(tmp_path / "short.wav", songs["song_b"][: SR // 2])
    idx = tmp_path / "idx"
    for bad, why in [(silent, "silent"), (short, "shorter than one 1 s window")]:
        assert _cli("index", "add", str(good), str(bad), "--model", str(model_dir), "--index", str(idx)) == 2
        err = capsys.readouterr().err
        assert str(bad) in err and why in err
    assert not idx.exists()
    assert _cli("index", "add", str(good), str(silent), "--id", "x", "--model", str(model_dir),
                "--index", str(idx)) == 2
    assert "exactly one FILE" in capsys.readouterr().err and not idx.exists()
    assert _cli("index", "add", str(good), "--model", str(model_dir), "--index", str(idx)) == 0
    save_bundle(_tiny_model(1), tmp_path / "other" / "model.pt")
    before = (idx / "index.json").read_text()
    assert _cli("index", "add", str(good), "--model", str(tmp_path / "other"), "--index", str(idx)) == 2
    assert "built with another model" in capsys.readouterr().err
    assert (idx / "index.json").read_text() == before  # untouched


def test_index_build_embeds_every_catalog_track(model_dir: Path, songs: dict, tmp_path: Path, capsys) -> None:
    from resonance.audio import pcm_sha256, to_pcm16, write_flac
    from resonance.catalog.manifest import CATALOG_FORMAT, Track
    from resonance.io import write_json, write_jsonl

    catalog = tmp_path / "catalog"
    rows = []
    for name, audio in songs.items():
        if name == "song_b":  # a silent break of 3 s: the windows inside it must never enter the index
            audio = audio.copy()
            audio[4 * SR: 7 * SR] = 0.0
        pcm = to_pcm16(audio)
        write_flac(catalog / "audio" / f"{name}.flac", pcm, SR)
        rows.append(Track(name, name.title(), "artist", "pkg", "1.0", f"{name}.ogg", "GPL", audio.size / SR, SR,
                          pcm_sha256(pcm), 0.0, 0.0, "unseen", f"audio/{name}.flac").to_dict())
    write_jsonl(catalog / "manifest.jsonl", rows)
    write_json(catalog / "catalog.json", {"format": CATALOG_FORMAT})
    out = tmp_path / "index"
    assert _cli("index", "build", "--model", str(model_dir), "--catalog", str(catalog), "--out", str(out)) == 0
    assert capsys.readouterr().out.startswith("index build: 3 tracks, 64 windows (5 silent ones masked), 0.0 h")
    index = EmbeddingIndex.load(out, model_sha256(load_model(model_dir)))
    b = index.position("song_b")
    slots = index.row_slot()[index.row_track() == b]
    assert index.tracks[b].n_slots == 23 and index.tracks[b].n_windows == 18
    assert sorted(set(range(23)) - set(slots.tolist())) == [8, 9, 10, 11, 12]  # windows starting 4.0 .. 6.0 s
    first, rows_of = index.slot_rows()
    assert (rows_of[first[b] + 8: first[b] + 13] == -1).all() and (rows_of[first[b]: first[b] + 8] >= 0).all()
    assert [(t.track_id, t.title, t.source) for t in index.tracks] == [(n, n.title(), "catalog") for n in songs]
    assert index.tracks[0].duration_s == pytest.approx(12.0)


def test_evaluate_makes_the_embedding_method_from_params(model_dir: Path, calibration_dir: Path, songs: dict,
                                                         tmp_path: Path) -> None:
    from resonance.evaluate.stage import METHODS, make_method
    from resonance.index.stage import add_files

    params = yaml.safe_load(PARAMS.read_text())
    params["embedding"].update(model=str(model_dir), index=str(tmp_path / "idx"), calibration=str(calibration_dir),
                               top_k=3)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    add_files([_wav(tmp_path / "a.wav", songs["song_a"])], None, None, model_dir, tmp_path / "idx",
              load_section(tmp_path / "params.yaml", "embedding", EmbeddingParams))
    method = make_method("embedding", tmp_path / "params.yaml")
    assert "embedding" in METHODS and isinstance(method, EmbeddingMethod) and method.name == "embedding"
    assert method.config.top_k == 3 and method.index.n_windows == 23  # the deployed index, not a new one
    assert method.calibration is not None and method.calibration.lengths[0].threshold == -50.0
    assert method.model_sha256 == model_sha256(load_model(model_dir))

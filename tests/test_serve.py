"""`resonance serve`: a real uvicorn server on a free loopback port, real PyAV (FFmpeg) decoding, real FAISS, a real
MLflow sqlite store for the champion alias, and a tiny UNTRAINED `fast`-profile model (an exact excerpt of an
indexed song maps to the very same embeddings, which is what the identifications lean on; see test_index.py).
The hot swap, the fallback and the API key are in test_serve_swap.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from resonance.index.stage import identify_files
from serve_helpers import (
    SR,
    Server,
    build_setup,
    embedding_params,
    http,
    multipart,
    post_audio,
    serve_params,
    songs,
    stream,
    wav_bytes,
    write_wav,
)

from conftest import ROOT


@pytest.fixture(scope="module")
def tracks() -> dict[str, np.ndarray]:
    return songs()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tracks: dict) -> dict[str, Path]:
    return build_setup(tmp_path_factory.mktemp("serve"), 0, tracks)


@pytest.fixture(scope="module")
def server(setup: dict[str, Path]):
    with Server(serve_params(setup)) as srv:
        yield srv


ROW_FIELDS = ("track_id", "title", "accepted", "confidence", "offset_s", "reason", "best_guess", "runner_up", "score",
              "threshold", "duration_s")


# --- identification over HTTP and WebSocket ---------------------------------------------------------------------


def test_identify_answers_like_identify_json(server: Server, setup: dict, tracks: dict, tmp_path: Path) -> None:
    clip = tracks["song_b"][6 * SR:10 * SR]
    path = write_wav(tmp_path / "live_b.wav", clip)
    (cli_row,) = identify_files([path], setup["model"], setup["index"], setup["calibration"], embedding_params())
    body, headers = multipart(path.read_bytes(), "live_b.wav")
    status, form = http("POST", f"{server.url}/identify", body, headers)
    assert status == 200, form
    status, raw = post_audio(server, path.read_bytes(), "application/octet-stream")
    assert status == 200, raw
    assert form["file"] == "live_b.wav" and raw["file"] is None
    assert form["track_id"] == "song_b" and form["accepted"] is True and abs(form["offset_s"] - 6.0) <= 0.5
    for answer in (form, raw):  # the same fields and values as `resonance identify --json`
        assert {k: answer[k] for k in ROW_FIELDS} == {k: cli_row[k] for k in ROW_FIELDS}
        assert answer["latency_ms"] > 0 and answer["index_build_id"]
    # a container FFmpeg must sniff (Ogg Vorbis at 44.1 kHz, stereo, no file name, a generic type): same song
    import soundfile as sf

    ogg = tmp_path / "x"
    from scipy.signal import resample_poly

    up = resample_poly(clip, 441, 160).astype(np.float32)
    sf.write(str(ogg), np.stack([up, up], axis=1), 44100, format="OGG", subtype="VORBIS")
    status, answer = post_audio(server, ogg.read_bytes(), "application/octet-stream")
    assert status == 200 and answer["track_id"] == "song_b", answer
    short = post_audio(server, wav_bytes(clip[: SR // 2]))  # under one window: an answer with a reason
    assert short[0] == 200 and short[1]["track_id"] is None and short[1]["reason"] == "too_short"


def test_listen_names_songs_as_they_change(server: Server, tracks: dict) -> None:
    audio = np.concatenate([tracks["song_a"][:6 * SR], tracks["song_c"]])  # song a for 6 s, then song c
    messages = stream(server, audio, chunk_s=0.37)  # chunks that do not line up with samples of a decision
    assert all("error" not in m for m in messages), messages
    matches = [m for m in messages if m["event"] == "match"]
    assert matches[0]["track_id"] == "song_a" and matches[0]["t_s"] == 1.0
    assert matches[0]["time_to_decision_s"] == 1.0 and matches[0]["offset_s"] == 0.0
    assert matches[-1]["track_id"] == "song_c" and 6.0 < matches[-1]["t_s"] <= 18.0
    assert all(a["track_id"] != b["track_id"] for a, b in zip(matches, matches[1:]))  # said once per change
    song_c = matches[-1]
    assert 0 < song_c["time_to_decision_s"] <= song_c["t_s"] - 1.0
    final = messages[-1]
    assert final["event"] == "final" and final["track_id"] == "song_c" and final["t_s"] == 18.0
    assert final["duration_s"] == 10.0 and final["buffer_start_s"] == 8.0  # the most recent listen.max_buffer_s
    # where song c is at the end: offset_s + (t_s - buffer_start_s) = 18 - 6 s
    assert abs(final["offset_s"] + final["t_s"] - final["buffer_start_s"] - 12.0) <= 0.5


def test_listen_decision_equals_the_upload_answer(server: Server, tracks: dict) -> None:
    clip = tracks["song_b"][6 * SR:10 * SR]
    upload = post_audio(server, wav_bytes(clip))[1]
    for fmt in ("s16le", "f32le"):
        quantized = np.round(clip * 32767) / 32768 if fmt == "f32le" else clip  # the samples ffmpeg gives /identify
        messages = stream(server, quantized.astype(np.float32), 0.5, {"format": fmt, "sample_rate": SR}, fmt)
        final = messages[-1]
        assert final["event"] == "final"
        assert {k: final[k] for k in ROW_FIELDS} == {k: upload[k] for k in ROW_FIELDS}
        assert [m["event"] for m in messages] == ["match", "final"]  # song b named once, at the first decision


def test_listen_bad_input_is_a_json_error_and_a_close(server: Server) -> None:
    cases = [(json.dumps({"format": "mp3"}), None, "bad_format", 1003),
             (json.dumps({"sample_rate": 44100}), None, "bad_sample_rate", 1003),
             ("not json", None, "bad_header", 1003),
             (json.dumps({"format": "f32le"}), np.array([0.1, np.nan], dtype="<f4").tobytes(), "non_finite_samples",
              1007)]
    for text, data, error, code in cases:
        with connect(f"{server.ws_url}/listen", proxy=None) as ws:
            ws.send(text)
            if data is not None:
                ws.send(data)
            message = json.loads(ws.recv(timeout=30))
            assert message["error"] == error and message["detail"], message
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == code
    assert http("GET", f"{server.url}/healthz")[0] == 200


# --- bad requests: a 4xx with a JSON error, never a 500 -------------------------------------------------------


def _bad_uploads(tracks: dict) -> dict[str, tuple[bytes, str, int, str]]:
    import struct
    import zlib

    rng = np.random.default_rng(0)
    clip = tracks["song_a"][: 3 * SR]
    nan = clip.copy()
    nan[100], nan[2000] = np.nan, np.inf

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 52)) + chunk(b"IEND", b""))
    long_clip = np.tile(tracks["song_b"], 3)[: 25 * SR]  # 25 s > serve.max_duration_s (20 s) but < 1 MB
    return {  # name: (body, content type, status, error)
        "corrupt": (rng.bytes(5000), "audio/wav", 415, "undecodable"),
        "truncated_header": (wav_bytes(clip)[:30], "audio/wav", 415, "undecodable"),
        "empty_body": (b"", "audio/wav", 400, "empty_body"),
        "not_audio_png": (png, "application/octet-stream", 415, "not_audio"),
        "not_audio_text": (b"this is a text file, not a song\n" * 40, "application/octet-stream", 415, "undecodable"),
        "oversized": (rng.bytes(1_500_000), "audio/wav", 413, "too_large"),
        "too_long": (wav_bytes(long_clip), "audio/wav", 422, "too_long"),
        "zero_length": (wav_bytes(np.zeros(0, dtype=np.float32)), "audio/wav", 422, "empty_audio"),
        "nan_inf_float_wav": (wav_bytes(nan, subtype="FLOAT"), "audio/wav", 422, "non_finite_samples"),
        "eight_channels": (wav_bytes(np.tile(clip[: SR, None], (1, 8))), "audio/wav", 422, "unsupported_channels"),
        "192khz": (wav_bytes(np.tile(clip[: SR // 2], 12)[: 192000], sr=192000), "audio/wav", 422,
                   "unsupported_sample_rate"),
        "8khz": (wav_bytes(clip[::2], sr=8000), "audio/wav", 422, "unsupported_sample_rate"),
        "wrong_content_type": (wav_bytes(clip), "application/json", 415, "unsupported_media_type"),
        "text_content_type": (wav_bytes(clip), "text/plain", 415, "unsupported_media_type"),
    }


def _decode_params(**over: float):
    return serve_params({"model": "m", "index": "i", "calibration": "c"}, **over)


def test_a_mono_wav_or_flac_at_the_model_rate_decodes_in_memory_to_ffmpegs_samples(tracks: dict,
                                                                                   tmp_path: Path) -> None:
    import io

    import soundfile as sf

    from resonance.audio import decode
    from resonance.serve.upload import decode_av, decode_in_memory

    p = _decode_params()
    clip = tracks["song_c"][: 4 * SR]
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("WAV", "PCM_32")):
        buf = io.BytesIO()
        sf.write(buf, clip, SR, format=fmt, subtype=subtype)
        fast = decode_in_memory(buf.getvalue(), SR, p)
        (tmp_path / f"upload_{subtype}").write_bytes(buf.getvalue())
        np.testing.assert_array_equal(fast, decode(tmp_path / f"upload_{subtype}", SR))  # the ffmpeg CLI's samples
        np.testing.assert_array_equal(fast, decode_av(buf.getvalue(), SR, p))  # and PyAV's
    for other in (wav_bytes(np.stack([clip, clip], axis=1)), wav_bytes(clip[::2], sr=8000),
                  wav_bytes(clip, subtype="FLOAT"), b"RIFF....WAVE", b""):
        assert decode_in_memory(other, SR, p) is None  # stereo, another rate, float, broken: PyAV decides


def _phone_clip(sr: int, seconds: float = 5.0) -> np.ndarray:
    """(n, 2) float32 stereo at sr: a chirp 200 Hz -> 8 kHz with harmonics and noise; the right channel is the
    left one delayed by 0.8 ms and quieter, with its own noise."""
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * 200 * seconds / np.log(40) * (40 ** (t / seconds) - 1)  # f(t) = 200 * 40^(t / seconds)
    left = sum(np.sin(h * phase) / h for h in (1, 2, 3, 5)) * 0.2 + 0.02 * rng.standard_normal(t.size)
    right = 0.8 * np.roll(left, int(0.0008 * sr)) + 0.01 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1).astype(np.float32)


def _encoded(folder: Path) -> dict[str, Path]:
    """The clip as a phone or a browser sends it: 44.1 kHz stereo 16-bit WAV, 48 kHz stereo FLAC, and MP3,
    Ogg/Vorbis, M4A/AAC and Opus made from the WAV by the system ffmpeg."""
    import subprocess

    import soundfile as sf

    from resonance.audio import require_tool

    folder.mkdir(parents=True, exist_ok=True)
    files = {"wav": folder / "clip.wav", "flac": folder / "clip.flac"}
    sf.write(str(files["wav"]), _phone_clip(44100), 44100, subtype="PCM_16")
    sf.write(str(files["flac"]), _phone_clip(48000), 48000, subtype="PCM_16")
    encoders = subprocess.run([require_tool("ffmpeg"), "-hide_banner", "-encoders"], capture_output=True,
                              text=True).stdout
    for ext, args in (("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]), ("ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
                      ("m4a", ["-c:a", "aac", "-b:a", "128k"]), ("opus", ["-c:a", "libopus", "-b:a", "64k"])):
        if args[1] not in encoders:
            continue  # an ffmpeg build without this encoder
        files[ext] = folder / f"clip.{ext}"
        subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-i", str(files["wav"]), *args,
                        str(files[ext])], check=True)
    return files


def test_any_other_upload_decodes_in_memory_to_the_samples_of_identify(tmp_path: Path) -> None:
    """PyAV (FFmpeg's libraries in the `av` wheel) gives what the ffmpeg CLI gives `resonance identify`: measured,
    bit-exact for WAV, FLAC and MP3 and within 3e-7 for Vorbis, AAC and Opus; allowed: 1e-4 and 4 samples."""
    from resonance.audio import decode
    from resonance.serve.upload import decode_upload

    p = _decode_params()
    files = _encoded(tmp_path)
    assert {"wav", "flac", "mp3", "ogg", "m4a"} <= set(files)
    for ext, path in files.items():
        want, got = decode(path, SR), decode_upload(path.read_bytes(), SR, p)
        assert got.dtype == np.float32 and got.ndim == 1, ext
        assert abs(got.size - want.size) <= 4 and abs(want.size - 5 * SR) <= 300, (ext, got.size, want.size)
        n = min(got.size, want.size)
        assert np.max(np.abs(got[:n] - want[:n])) < 1e-4, (ext, np.max(np.abs(got[:n] - want[:n])))
        assert np.corrcoef(got[:n], want[:n])[0, 1] > 0.99999, ext
    for ext in ("mp3", "ogg"):  # cut in the middle: the audio before the cut, as the CLI decodes it
        half = tmp_path / f"half.{ext}"
        half.write_bytes(files[ext].read_bytes()[: files[ext].stat().st_size // 2])
        want, got = decode(half, SR), decode_upload(half.read_bytes(), SR, p)
        assert SR < got.size < 4 * SR and got.size == want.size, (ext, got.size, want.size)
        assert np.max(np.abs(got - want)) < 1e-4, ext


def test_the_decoding_work_is_bounded(tmp_path: Path) -> None:
    import soundfile as sf

    from resonance.serve.errors import ApiError
    from resonance.serve.upload import decode_av

    long = tmp_path / "long.wav"  # 25 s > serve.max_duration_s (20 s): refused after 21 s decoded, not 25
    sf.write(str(long), np.tile(_phone_clip(44100), (5, 1)), 44100, subtype="PCM_16")
    mp3 = _encoded(tmp_path / "enc")["mp3"].read_bytes()
    cases = [(long.read_bytes(), _decode_params(), "too_long"),
             (mp3, _decode_params(decode_timeout_s=1e-9), "decode_timeout")]
    for data, p, error in cases:
        with pytest.raises(ApiError) as caught:
            decode_av(data, SR, p)
        assert (caught.value.status, caught.value.error) == (422, error)


def test_every_bad_upload_gets_a_clear_4xx(server: Server, tracks: dict) -> None:
    for name, (body, content_type, status, error) in _bad_uploads(tracks).items():
        got, answer = post_audio(server, body, content_type)
        assert (got, answer.get("error")) == (status, error), f"{name}: {got} {answer}"
        assert set(answer) == {"error", "detail"} and len(answer["detail"]) > 10, name
        assert "/tmp" not in answer["detail"] and "Errno" not in answer["detail"], name
    bad_forms = {"form_without_file": (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
                                       "multipart/form-data; boundary=b", 400, "empty_body"),
                 "form_without_boundary": (b"garbage", "multipart/form-data", 400, "bad_form")}
    for name, (body, content_type, status, error) in bad_forms.items():
        got, answer = post_audio(server, body, content_type)
        assert (got, answer.get("error")) == (status, error), f"{name}: {got} {answer}"
    body, headers = multipart(_bad_uploads(tracks)["eight_channels"][0], "song.mp3", content_type="audio/mpeg")
    got, answer = http("POST", f"{server.url}/identify", body, headers)  # a name and type that lie change nothing
    assert (got, answer["error"]) == (422, "unsupported_channels")
    assert http("GET", f"{server.url}/nowhere")[1]["error"] == "not_found"
    assert http("GET", f"{server.url}/identify")[1]["error"] == "method_not_allowed"
    assert http("GET", f"{server.url}/healthz")[0] == 200  # and the service is still up


def test_a_truncated_mp3_or_ogg_gets_a_clear_415(server: Server, tmp_path: Path) -> None:
    files = _encoded(tmp_path)
    for ext, cut in (("mp3", 100), ("ogg", 200)):  # cut inside the headers: nothing decodes
        got, answer = post_audio(server, files[ext].read_bytes()[:cut], "application/octet-stream")
        assert (got, answer.get("error")) == (415, "undecodable"), (ext, got, answer)
        assert "Errno" not in answer["detail"] and len(answer["detail"]) > 10, answer
    mp3 = files["mp3"].read_bytes()
    damaged = mp3[:20000] + np.random.default_rng(1).bytes(3000) + mp3[23000:]  # a bad packet is skipped, as
    assert post_audio(server, damaged, "audio/mpeg")[0] == 200  # `identify` skips it: an answer


def _unit(rng: np.random.Generator, m: int, dim: int) -> list[list[float]]:
    x = rng.standard_normal((m, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).tolist()


def test_every_bad_embeddings_payload_gets_a_clear_4xx(server: Server) -> None:
    version = http("GET", f"{server.url}/version")[1]
    dim, sha = version["device"]["dim"], version["model"]["sha256"]
    rng = np.random.default_rng(1)
    good = _unit(rng, 13, dim)  # a 4 s clip: 1 + (4 - 1) / 0.25 windows
    nan_row = [row[:] for row in good]
    nan_row[3][0] = math.nan
    cases = {  # name: (body, status, error)
        "wrong_dim": (json.dumps({"embeddings": _unit(rng, 13, dim + 1)}), 422, "wrong_dim"),
        "ragged": (json.dumps({"embeddings": good[:5] + [good[5][:-1]]}), 422, "wrong_dim"),
        "nan": (json.dumps({"embeddings": nan_row}), 422, "non_finite"),
        "too_many_windows": (json.dumps({"embeddings": _unit(rng, 241, dim)}), 422, "too_many_windows"),
        "not_unit": (json.dumps({"embeddings": (np.asarray(good) * 3).tolist()}), 422, "not_unit_norm"),
        "usable_mismatch": (json.dumps({"embeddings": good, "usable": [True] * 12}), 422, "usable_mismatch"),
        "duration_mismatch": (json.dumps({"embeddings": good, "duration_s": 9.0}), 422, "duration_mismatch"),
        "wrong_hop": (json.dumps({"embeddings": good, "hop_s": 0.5}), 422, "wrong_hop"),
        "too_long": (json.dumps({"embeddings": _unit(rng, 77, dim), "duration_s": 20.2}), 422, "too_long"),
        "huge_duration": (json.dumps({"embeddings": good, "duration_s": 1e308}), 422, "too_long"),
        "negative_duration": (json.dumps({"embeddings": good, "duration_s": -4.0}), 422, "bad_duration"),
        "nan_hop": (json.dumps({"embeddings": good, "hop_s": math.nan}), 422, "wrong_hop"),
        "missing_field": (json.dumps({"usable": [True]}), 422, "invalid_payload"),
        "strings": (json.dumps({"embeddings": [["a"] * dim]}), 422, "invalid_payload"),
        "unknown_field": (json.dumps({"embeddings": good, "audio": "x"}), 422, "invalid_payload"),
        "not_json": (b"{\"embeddings\": [[0.1,", 400, "invalid_json"),
        "empty": (b"", 400, "empty_body"),
        "other_model": (json.dumps({"embeddings": good, "model_sha256": "0" * 64}), 409, "model_mismatch"),
    }
    for name, (body, status, error) in cases.items():
        data = body.encode() if isinstance(body, str) else body
        got, answer = http("POST", f"{server.url}/identify/embeddings", data, {"Content-Type": "application/json"})
        assert (got, answer.get("error")) == (status, error), f"{name}: {got} {answer}"
        assert set(answer) == {"error", "detail"}, name
    got, answer = http("POST", f"{server.url}/identify/embeddings", json.dumps({"embeddings": good}).encode(),
                       {"Content-Type": "text/plain"})
    assert (got, answer["error"]) == (415, "unsupported_media_type")
    ok = {"embeddings": good, "usable": [True] * 13, "duration_s": 4.0, "hop_s": 0.25, "model_sha256": sha}
    got, answer = http("POST", f"{server.url}/identify/embeddings", json.dumps(ok).encode(),
                       {"Content-Type": "application/json"})
    assert got == 200 and answer["duration_s"] == 4.0 and "score" in answer, answer  # random vectors: judged anyway
    none = {"embeddings": [], "duration_s": 0.5}
    got, answer = http("POST", f"{server.url}/identify/embeddings", json.dumps(none).encode(),
                       {"Content-Type": "application/json"})
    assert got == 200 and answer["reason"] == "too_short"


def test_an_unexpected_failure_is_json_and_logged(server: Server, tracks: dict, monkeypatch, caplog) -> None:
    import sys

    stereo = wav_bytes(np.stack([tracks["song_a"][: 2 * SR]] * 2, axis=1))  # decoded by PyAV, not libsndfile
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV vanished: a broken install, not a bad request
    with caplog.at_level("ERROR", logger="resonance.serve"):
        got, answer = post_audio(server, stereo)
    assert got == 500 and answer["error"] == "internal" and "RuntimeError" in answer["detail"]
    assert any("unexpected error" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert post_audio(server, stereo)[0] == 200


def test_version_names_the_model_index_and_calibration(server: Server, setup: dict) -> None:
    from resonance.index.method import model_sha256
    from resonance.model.embedder import load_model

    got, v = http("GET", f"{server.url}/version")
    head = json.loads((setup["index"] / "index.json").read_text())
    cal = json.loads((setup["calibration"] / "calibration.json").read_text())
    assert got == 200 and v["model"]["sha256"] == model_sha256(load_model(setup["model"]))
    assert v["model"]["source"] == "local" and v["model"]["fallback_reason"] is None
    assert v["index"] == {"build_id": head["build_id"], "tracks": 3, "windows": head["n_windows"]}
    assert v["calibration"]["sha256"] == cal["sha256"] and v["catalog_size"] == 3
    assert v["device"] == {"sr": SR, "window_s": 1.0, "query_hop_s": 0.25, "dim": head["dim"],
                           "usable": {"silence_dbfs": -55.0, "min_active": 0.5, "frame_s": 0.05}}


def test_docs_and_openapi_describe_the_endpoints(server: Server) -> None:
    got, spec = http("GET", f"{server.url}/openapi.json")
    assert got == 200 and {"/identify", "/identify/embeddings", "/version", "/healthz"} <= set(spec["paths"])
    body = spec["paths"]["/identify"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(body)
    import urllib.request

    from serve_helpers import DIRECT

    with DIRECT.open(urllib.request.Request(f"{server.url}/docs"), timeout=30) as resp:
        assert resp.status == 200 and b"swagger" in resp.read().lower()


def test_the_load_benchmark_runs(server: Server, tracks: dict, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    clips = [wav_bytes(tracks[k][: 3 * SR]) for k in tracks]
    rows = bench.run_load(server.url, clips, [1, 4], requests=8, api_key=None)
    assert [r["clients"] for r in rows] == [1, 4] and all(r["ok"] == 8 and r["errors"] == 0 for r in rows)
    assert "p95 ms" in bench.table(rows)
    for k in tracks:
        write_wav(tmp_path / "clips" / f"{k}.wav", tracks[k][: 4 * SR])
    out = tmp_path / "serve_load.md"
    assert bench.main(["--url", server.url, "--clips", str(tmp_path / "clips"), "--n-clips", "3", "--seconds", "3",
                       "--requests", "4", "--concurrency", "1", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## 16 kHz mono" in text and "## 44.1 kHz stereo" in text and text.count("| 4 | 4 | 0 |") == 3

"""The on-device hand-off: clients/device_client.py (numpy + onnxruntime only) against a real uvicorn server.

The model is the tiny untrained `fast`-profile one, exported to ONNX with the project's own exporter
(resonance.train.export.export_onnx); the server answers the device's embeddings with the same decision as the
audio it would have been sent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resonance.audio import decode
from resonance.index.usable import usable_windows
from resonance.model.embedder import Embedder, load_model
from serve_helpers import SR, Server, build_setup, http, serve_params, songs, wav_bytes, write_wav

from conftest import ROOT, music_clip

CLIENT = ROOT / "clients" / "device_client.py"


def _load_client():
    spec = importlib.util.spec_from_file_location("device_client", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dc = _load_client()


@pytest.fixture(scope="module")
def tracks() -> dict[str, np.ndarray]:
    return songs()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tracks: dict) -> dict[str, Path]:
    from resonance.train.export import export_onnx

    root = tmp_path_factory.mktemp("device")
    setup = build_setup(root, 0, tracks)
    diff = export_onnx(load_model(setup["model"]), setup["model"] / "model.onnx")
    assert diff < 1e-4
    return {**setup, "onnx": setup["model"] / "model.onnx"}


@pytest.fixture(scope="module")
def server(setup: dict):
    with Server(serve_params(setup), watch=False) as srv:
        yield srv


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    music = music_clip(7.3, seed=5, sr=SR)
    gaps = music.copy()
    gaps[int(1.2 * SR):int(2.9 * SR)] = 0.0  # digital silence
    gaps[int(4.0 * SR):int(5.1 * SR)] *= 1e-3  # near the floor
    ramp = music * np.linspace(0.0, 1.0, music.size, dtype=np.float32) ** 6  # crossing the floor slowly
    return {"music": music, "gaps": gaps, "ramp": ramp, "whisper": 1e-3 * rng.standard_normal(3 * SR),
            "short": music[: SR - 1], "one_window": music[:SR], "odd": music[: int(3.337 * SR)]}


def test_usable_flags_equal_the_servers_rule() -> None:
    for name, audio in _signals().items():
        for hop_s in (0.25, 0.1, 0.33, 0.5):
            for floor, share in ((-55.0, 0.5), (-40.0, 0.8), (-70.0, 0.2)):
                want = usable_windows(audio, SR, 1.0, hop_s, floor, share)
                got = dc.usable_windows(audio, SR, 1.0, hop_s, floor, share, 0.05)
                np.testing.assert_array_equal(got, want, err_msg=f"{name} hop {hop_s} floor {floor}")
    gaps = _signals()["gaps"]
    flags = dc.usable_windows(gaps, SR, 1.0, 0.25, -55.0, 0.5, 0.05)
    assert flags.any() and not flags.all()  # the test signal does exercise both outcomes


def test_wav_reading_equals_the_servers_decoding(tmp_path: Path) -> None:
    music = music_clip(2.0, seed=8, sr=SR)
    cases = {"pcm16": (music, "PCM_16"), "pcm24": (music, "PCM_24"), "pcm32": (music, "PCM_32"),
             "float": (music, "FLOAT"), "stereo": (np.stack([music, -0.5 * music[::-1]], axis=1), "PCM_16")}
    for name, (audio, subtype) in cases.items():
        path = write_wav(tmp_path / f"{name}.wav", audio, subtype=subtype)
        got, sr = dc.read_wav(str(path))
        assert sr == SR
        np.testing.assert_allclose(got, decode(path, SR), atol=2e-7, err_msg=name)
    (tmp_path / "junk.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(dc.ClientError, match="RIFF"):
        dc.read_wav(str(tmp_path / "junk.wav"))
    write_wav(tmp_path / "four.wav", np.tile(music[:, None], (1, 4)))
    with pytest.raises(dc.ClientError, match="4 channels"):
        dc.read_wav(str(tmp_path / "four.wav"))


def test_onnx_window_embeddings_equal_the_torch_ones(setup: dict) -> None:
    audio = music_clip(4.0, seed=9, sr=SR)
    want = Embedder(load_model(setup["model"])).embed(audio, 0.25)
    got = dc.DeviceEmbedder(str(setup["onnx"])).embed(audio, window=SR, hop=int(0.25 * SR))
    assert got.shape == want.shape == (13, want.shape[1])
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def _clips(tracks: dict) -> dict[str, np.ndarray]:
    with_gap = tracks["song_c"][int(1.5 * SR):int(7.5 * SR)].copy()
    with_gap[2 * SR:int(3.5 * SR)] = 0.0  # a dropout: those windows are no evidence on either path
    return {"excerpt": tracks["song_b"][6 * SR:10 * SR], "with_gap": with_gap,
            "unknown": music_clip(5.0, seed=99, sr=SR), "silence": np.zeros(3 * SR, dtype=np.float32),
            "too_short": tracks["song_a"][: SR // 2], "odd_length": tracks["song_a"][int(2.0 * SR):int(5.13 * SR)]}


FIELDS = ("track_id", "title", "accepted", "reason", "offset_s", "best_guess", "runner_up", "duration_s",
          "model_version", "index_build_id")


def test_the_device_answer_equals_the_audio_answer(server: Server, setup: dict, tracks: dict, tmp_path: Path) -> None:
    for name, audio in _clips(tracks).items():
        path = write_wav(tmp_path / f"{name}.wav", audio)
        status, by_audio = http("POST", f"{server.url}/identify", path.read_bytes(), {"Content-Type": "audio/wav"})
        assert status == 200, by_audio
        by_device = dc.identify(server.url, str(setup["onnx"]), str(path))
        assert {k: by_device[k] for k in FIELDS} == {k: by_audio[k] for k in FIELDS}, name
        for key in ("confidence", "score"):
            if by_audio[key] is None:
                assert by_device[key] is None, name
            else:
                assert by_device[key] == pytest.approx(by_audio[key], abs=2e-3), (name, key)
    excerpt = dc.identify(server.url, str(setup["onnx"]), str(tmp_path / "excerpt.wav"))
    assert excerpt["track_id"] == "song_b" and abs(excerpt["offset_s"] - 6.0) <= 0.5  # and it is right
    assert dc.identify(server.url, str(setup["onnx"]), str(tmp_path / "silence.wav"))["reason"] == "silent"


def test_the_client_script_needs_no_torch_and_reports_errors(server: Server, setup: dict, tracks: dict,
                                                            tmp_path: Path) -> None:
    path = write_wav(tmp_path / "clip.wav", tracks["song_b"][6 * SR:10 * SR])
    sha = http("GET", f"{server.url}/version")[1]["model"]["sha256"]
    probe = ("import runpy, sys\nsys.argv = ['device_client'] + sys.argv[1:]\ncode = 0\ntry:\n"
             f"    runpy.run_path({str(CLIENT)!r}, run_name='__main__')\nexcept SystemExit as exc:\n"
             "    code = exc.code\nheavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'resonance'})\n"
             "print('HEAVY', heavy, file=sys.stderr)\nsys.exit(code)\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)

    ok = run(str(path), "--model", str(setup["onnx"]), "--server", server.url, "--model-sha256", sha)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["track_id"] == "song_b" and "HEAVY []" in ok.stderr
    wrong = run(str(path), "--model", str(setup["onnx"]), "--server", server.url, "--model-sha256", "f" * 64)
    assert wrong.returncode == 2 and "409 model_mismatch" in wrong.stderr
    (tmp_path / "cd.wav").write_bytes(wav_bytes(tracks["song_b"][: 2 * SR], sr=44100))
    rate = run(str(tmp_path / "cd.wav"), "--model", str(setup["onnx"]), "--server", server.url)
    assert rate.returncode == 2 and "resample" in rate.stderr and "Traceback" not in rate.stderr

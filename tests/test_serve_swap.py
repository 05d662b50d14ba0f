"""`resonance serve`: who may connect (the API key, a public bind refused), which model serves (the MLflow
champion alias in a throwaway sqlite store, the local fallback) and swapping it under load, against a real uvicorn
server on loopback with tiny untrained models (see test_serve.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from resonance.serve.run import is_loopback
from serve_helpers import SR, Server, build_setup, http, post_audio, serve_params, songs, stream, wait, wav_bytes

from conftest import ROOT


@pytest.fixture(scope="module")
def tracks() -> dict[str, np.ndarray]:
    return songs()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tracks: dict) -> dict[str, Path]:
    return build_setup(tmp_path_factory.mktemp("serve_swap"), 0, tracks)


# --- who may connect ---------------------------------------------------------------------------------------------


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.org", ""))


def test_a_public_bind_without_an_api_key_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RESONANCE_API_KEY"}
    for host in ("0.0.0.0", "::"):
        proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(ROOT / "params.yaml"), "serve",
                               "--host", host, "--port", "1"], capture_output=True, text=True, env=env, timeout=120,
                              cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "refusing to listen on" in proc.stderr and "RESONANCE_API_KEY" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_with_an_api_key_every_request_but_healthz_needs_it(setup: dict, tracks: dict, monkeypatch) -> None:
    monkeypatch.setenv("RESONANCE_API_KEY", "s3cret-key")
    clip = wav_bytes(tracks["song_c"][2 * SR:5 * SR])
    with Server(serve_params(setup), watch=False) as srv:
        assert http("GET", f"{srv.url}/healthz")[0] == 200
        for path in ("/version", "/docs", "/openapi.json"):
            got, answer = http("GET", f"{srv.url}{path}")
            assert (got, answer["error"]) == (401, "unauthorized"), path
        assert http("GET", f"{srv.url}/version", headers={"X-API-Key": "wrong"})[0] == 401
        assert post_audio(srv, clip)[0] == 401
        got, answer = http("POST", f"{srv.url}/identify", clip, {"Content-Type": "audio/wav",
                                                                  "X-API-Key": "s3cret-key"})
        assert got == 200 and answer["track_id"] == "song_c"
        with pytest.raises(InvalidStatus):
            with connect(f"{srv.ws_url}/listen", proxy=None):
                pass
        messages = stream(srv, tracks["song_c"][: 2 * SR], 0.5, headers={"X-API-Key": "s3cret-key"})
        assert messages[-1]["event"] == "final" and messages[-1]["track_id"] == "song_c"


# --- the model behind the champion alias, and swapping it under load ----------------------------------------------


def _register(name: str, model_dir: Path, artifacts: Path) -> str:
    """A registered model version whose artifacts hold model.pt (what resonance.model.embedder loads)."""
    import mlflow
    from mlflow import MlflowClient

    from resonance.train.stage import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    experiment = client.get_experiment_by_name("serve-test")
    experiment_id = (experiment.experiment_id if experiment else
                     client.create_experiment("serve-test", artifact_location=artifacts.as_uri()))
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifact(str(model_dir / "model.pt"), "model")
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version)


def test_fifty_clients_during_a_champion_swap_all_get_answers(tmp_path: Path, tracks: dict) -> None:
    from mlflow import MlflowClient

    from resonance.index.calibration import load_calibration
    from resonance.index.store import EmbeddingIndex

    one, two = build_setup(tmp_path, 0, tracks, "1"), build_setup(tmp_path, 1, tracks, "2")
    name = "serve-test-embedder"
    v1, v2 = _register(name, one["model"], tmp_path / "art"), _register(name, two["model"], tmp_path / "art")
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", v1)
    live_index, live_cal = tmp_path / "live_index", tmp_path / "live_cal"
    shutil.copytree(one["index"], live_index)
    shutil.copytree(one["calibration"], live_cal)
    p = serve_params({"model": f"models:/{name}@champion", "index": live_index, "calibration": live_cal})
    clip = wav_bytes(tracks["song_b"][int(3.5 * SR):int(6.5 * SR)])
    answers: list[list[dict]] = [[] for _ in range(50)]  # per client, in order
    failures: list[str] = []
    stop = threading.Event()

    def client_loop(i: int) -> None:  # requests back to back until it got an answer from the new model
        while not stop.is_set():
            try:
                status, answer = post_audio(srv, clip, timeout_s=400)  # 50 queued on a busy 2-core machine
            except Exception as exc:  # noqa: BLE001 - a dropped or reset connection fails the swap
                failures.append(repr(exc))
                return
            if status != 200:
                failures.append(f"{status} {answer}")
                return
            answers[i].append(answer)
            if answer["model_version"] == v2:
                return

    with Server(p) as srv:
        assert http("GET", f"{srv.url}/version")[1]["model"]["version"] == v1
        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()  # 50 requests in flight while the alias moves
        client.set_registered_model_alias(name, "champion", v2)  # the index is still model 1's: that load fails
        failed = wait(lambda: http("GET", f"{srv.url}/version")[1]["last_reload_error"], 120, "the failed load")
        assert "another model" in failed and http("GET", f"{srv.url}/version")[1]["model"]["version"] == v1
        EmbeddingIndex.load(two["index"]).save(live_index)  # the pair built for model 2 lands (atomic writes)
        load_calibration(two["calibration"]).save(live_cal)
        wait(lambda: http("GET", f"{srv.url}/version")[1]["model"]["version"] == v2, 120, "the swap")
        for t in threads:
            t.join(timeout=450)
        stop.set()
        version = http("GET", f"{srv.url}/version")[1]
    assert not failures, failures[:3]
    assert all(client and client[-1]["model_version"] == v2 for client in answers)  # every client served after
    flat = [a for client in answers for a in client]
    assert sum(a["model_version"] == v1 for a in flat) >= 25  # in flight during the swap: finished on the old one
    assert all(a["track_id"] == "song_b" for a in flat)  # every answer right, from either triple
    head = json.loads((live_index / "index.json").read_text())
    assert version["model"]["version"] == v2 and version["model"]["alias"] == "champion"
    assert version["index"]["build_id"] == head["build_id"] and version["swaps"] == 1
    assert version["last_reload_error"] is None and version["catalog_size"] == 3


def test_a_stream_goes_on_across_a_swap_of_a_local_model(tmp_path: Path, tracks: dict) -> None:
    from resonance.index.calibration import load_calibration
    from resonance.index.store import EmbeddingIndex
    from resonance.model.embedder import load_model, save_bundle

    one, two = build_setup(tmp_path, 0, tracks, "1"), build_setup(tmp_path, 1, tracks, "2")
    live = {k: tmp_path / f"live_{k}" for k in one}
    for k in one:
        shutil.copytree(one[k], live[k])
    clip = tracks["song_b"][2 * SR:8 * SR]
    pcm = np.round(clip * 32767).astype("<i2").tobytes()
    with Server(serve_params(live)) as srv:
        sha1 = http("GET", f"{srv.url}/version")[1]["model"]["sha256"]
        with connect(f"{srv.ws_url}/listen", proxy=None) as ws:
            ws.send(pcm[: 3 * SR * 2])
            first = json.loads(ws.recv(timeout=60))
            assert first["event"] == "match" and first["track_id"] == "song_b"
            save_bundle(load_model(two["model"]), live["model"] / "model.pt")  # model 2 and its pair land
            EmbeddingIndex.load(two["index"]).save(live["index"])
            load_calibration(two["calibration"]).save(live["calibration"])
            wait(lambda: http("GET", f"{srv.url}/version")[1]["model"]["sha256"] != sha1, 120, "the swap")
            ws.send(pcm[3 * SR * 2:])
            ws.send(json.dumps({"type": "end"}))
            final = json.loads(ws.recv(timeout=60))
        version = http("GET", f"{srv.url}/version")[1]
    assert final["event"] == "final" and final["track_id"] == "song_b" and final["t_s"] == 6.0
    assert abs(final["offset_s"] - 2.0) <= 0.5  # the buffer, re-embedded by model 2, still starts 2 s in
    build_id = json.loads((live["index"] / "index.json").read_text())["build_id"]
    assert first["index_build_id"] != build_id and final["index_build_id"] == build_id
    assert version["swaps"] == 1 and version["index"]["build_id"] == build_id


def test_a_missing_alias_falls_back_to_the_local_model_and_says_so(setup: dict, tracks: dict) -> None:
    p = serve_params(setup, model="models:/no-such-model@champion", fallback_model=str(setup["model"]))
    with Server(p, watch=False) as srv:
        model = http("GET", f"{srv.url}/version")[1]["model"]
        assert model["source"] == "fallback" and model["loaded_from"] == str(setup["model"])
        assert "no-such-model" in model["fallback_reason"] and model["version"] is None
        assert post_audio(srv, wav_bytes(tracks["song_a"][: 3 * SR]))[1]["track_id"] == "song_a"



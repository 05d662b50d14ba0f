"""Shared by test_serve.py and test_device_client.py: a tiny real setup (untrained `fast`-profile model, an index
built with `index add` from generated songs, a calibration made for the model) and a real uvicorn server on a free
loopback port in a background thread."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from resonance.config import EmbeddingParams, ServeParams, load_section, load_train
from resonance.index.method import model_sha256
from resonance.model.embedder import Embedder, EmbeddingModel, load_model, save_bundle

from conftest import ROOT, music_clip

SR = 16000
PARAMS = ROOT / "params.yaml"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only: never through a proxy


def tiny_model(seed: int) -> EmbeddingModel:
    p = load_train(PARAMS, "fast")
    torch.manual_seed(seed)
    return EmbeddingModel(p.frontend, p.encoder, p.encoders[p.encoder], p.window_s, p.hop_s)


def songs() -> dict[str, np.ndarray]:
    """Three 12 s songs at 16 kHz, quantized to 16 bits exactly as a PCM WAV stores them."""
    return {f"song_{c}": (np.round(music_clip(12.0, seed=i, sr=SR) * 32767) / 32767).astype(np.float32)
            for i, c in enumerate("abc")}


def wav_bytes(audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    """A WAV file's bytes; PCM_16 stores round(x * 32767) exactly (libsndfile's own float conversion is off by one
    on some samples), which ffmpeg decodes as that integer / 32768."""
    buf = io.BytesIO()
    if subtype == "PCM_16" and np.asarray(audio).dtype.kind == "f":
        audio = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32767), -32768, 32767).astype(np.int16)
    sf.write(buf, audio, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def write_wav(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(audio, sr, subtype))
    return path


def calibrate(model_source: str | Path, folder: Path, thresholds: dict[float, float]) -> Path:
    """A calibration folder for the model: a cohort of generated music windows and the given thresholds."""
    from resonance.index.calibration import Calibration, LengthCalibration

    embedder = Embedder(load_model(model_source))
    cohort = embedder.embed(music_clip(40.0, seed=77, sr=SR))
    lengths = tuple(LengthCalibration(length, t, 4.0, -4.0 * t, 0.01, 0.5, 10, 10)
                    for length, t in sorted(thresholds.items()))
    Calibration(model_sha256(embedder.model), "sequence", "margin", 8, 0.01, lengths, cohort).save(folder)
    return folder


def embedding_params() -> EmbeddingParams:
    return load_section(PARAMS, "embedding", EmbeddingParams)


def build_setup(root: Path, seed: int, tracks: dict[str, np.ndarray], name: str = "") -> dict[str, Path]:
    """model.pt (tiny, `seed`), an index of `tracks` (index add of WAV files) and a calibration for it."""
    from resonance.index.stage import add_files

    model_dir = root / f"model{name}"
    save_bundle(tiny_model(seed), model_dir / "model.pt")
    files = [write_wav(root / f"songs{name}" / f"{k}.wav", a) for k, a in tracks.items()]
    add_files(files, None, None, model_dir, root / f"index{name}", embedding_params())
    calibrate(model_dir, root / f"calibration{name}", {1.0: -50.0, 3.0: -50.0})
    return {"model": model_dir, "index": root / f"index{name}", "calibration": root / f"calibration{name}"}


def serve_params(setup: dict[str, Path], **over: Any) -> ServeParams:
    p = load_section(PARAMS, "serve", ServeParams)
    base = {"host": "127.0.0.1", "port": 0, "model": str(setup["model"]), "fallback_model": None,
            "index": str(setup["index"]), "calibration": str(setup["calibration"]), "poll_s": 0.2,
            "max_upload_bytes": 1_000_000, "max_duration_s": 20.0}
    return dataclasses.replace(p, **{**base, **over})


class Server:
    """A real uvicorn server of the service on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, p: ServeParams, watch: bool = True) -> None:
        import uvicorn

        from resonance.serve.run import build_service, uvicorn_config

        self.app, self.holder = build_service(p, embedding_params(), watch=watch)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(self.app, p, "warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout_s: float = 60.0) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request (urllib: error statuses are answers too)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with DIRECT.open(req, timeout=timeout_s) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw)


def multipart(data: bytes, filename: str, field: str = "file",
              content_type: str = "application/octet-stream") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file part, and its Content-Type header."""
    boundary = "resonance-test-boundary-7e1f"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_audio(srv: Server, data: bytes, content_type: str = "audio/wav", timeout_s: float = 60.0) -> tuple[int, dict]:
    """POST /identify with a raw body."""
    return http("POST", f"{srv.url}/identify", data, {"Content-Type": content_type}, timeout_s)


def stream(srv: Server, audio: np.ndarray, chunk_s: float, header: dict | None = None, fmt: str = "s16le",
           headers: dict | None = None) -> list[dict]:
    """Stream `audio` to WS /listen in chunks, then ask for the final decision; every message received."""
    pcm = (np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2").tobytes() if fmt == "s16le"
           else audio.astype("<f4").tobytes())
    step = int(chunk_s * SR) * (2 if fmt == "s16le" else 4)
    messages = []
    with connect(f"{srv.ws_url}/listen", proxy=None, additional_headers=headers) as ws:
        if header is not None:
            ws.send(json.dumps(header))
        for i in range(0, len(pcm), step):
            ws.send(pcm[i:i + step])
        ws.send(json.dumps({"type": "end"}))
        try:
            while True:
                messages.append(json.loads(ws.recv(timeout=60)))
        except ConnectionClosed:
            pass
    return messages


def wait(check: Any, timeout_s: float, what: str) -> Any:
    """The first truthy value of check() within timeout_s (AssertionError naming `what` otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")

#!/usr/bin/env python3
"""The on-device hand-off, as a reference client: embed a clip where it was recorded, send only the embeddings.

Needs numpy, onnxruntime and the Python standard library: no torch and nothing of `resonance` (copy this file and
model.onnx into an app prototype). What it does, which is what a phone app does (docs/device.md):

1. GET /version: the window length, the query hop, the sample rate, the embedding dim, the usable (silence) rule
   and the sha256 of the model the server runs;
2. read a WAV: 16-bit/24-bit/32-bit PCM or 32-bit float, mono or stereo (mixed to mono as (L + R) / sqrt(2),
   which is what ffmpeg's `-ac 1` does on the server's audio path), at the model's rate (16 kHz). Resampling is
   the app's job (AVAudioConverter on iOS); a WAV at another rate is refused rather than resampled differently
   from the server;
3. cut 1 s windows every query_hop_s, run model.onnx on them (the log-mel front end is inside the graph: input
   "audio" (batch, window samples) float32 -> output "embedding" (batch, dim) unit vectors), and compute each
   window's usable flag (the same rule as resonance.index.usable, reimplemented in numpy);
4. POST /identify/embeddings {embeddings, usable, duration_s, hop_s[, model_sha256]} and print the answer.

    python clients/device_client.py clip.wav --model data/model/model.onnx --server http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import urllib.error
import urllib.request
from typing import Any

import numpy as np

API_KEY_HEADER = "X-API-Key"


class ClientError(Exception):
    """A WAV this client cannot use, or a server that answered with an error."""


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """(mono float32 (n_samples,) in [-1, 1], sample rate) of a RIFF/WAVE file (PCM 16/24/32 bit or IEEE float
    32 bit, WAVE_FORMAT_EXTENSIBLE included). Integer PCM is scaled by 2**(bits-1), as ffmpeg does."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ClientError(f"{path}: not a RIFF/WAVE file")
    fmt, pcm, pos = None, None, 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:  # extensible: the real format is the sub-format GUID's first 2 bytes
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ClientError(f"{path}: no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if tag == 3 and bits == 32:
        x = np.frombuffer(pcm[:len(pcm) - len(pcm) % 4], dtype="<f4").astype(np.float32)
    elif tag == 1 and bits in (16, 32):
        dtype = "<i2" if bits == 16 else "<i4"
        width = bits // 8
        x = (np.frombuffer(pcm[:len(pcm) - len(pcm) % width], dtype=dtype) / float(2 ** (bits - 1))).astype(np.float32)
    elif tag == 1 and bits == 24:
        raw = np.frombuffer(pcm[:len(pcm) - len(pcm) % 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8 >> 8  # sign-extend 24 -> 32 bits
        x = (ints / float(2 ** 23)).astype(np.float32)
    else:
        raise ClientError(f"{path}: WAV format tag {tag} with {bits} bits is not supported (PCM 16/24/32, float 32)")
    if channels == 2:  # ffmpeg's `-ac 1` of stereo, which the server's audio path applies: (L + R) / sqrt(2)
        x = x[: x.size - x.size % 2].reshape(-1, 2)
        x = ((x[:, 0] + x[:, 1]) * np.float32(np.sqrt(0.5))).astype(np.float32)
    elif channels != 1:
        raise ClientError(f"{path}: {channels} channels; mix to mono (or stereo) in the app first")
    if not np.all(np.isfinite(x)):
        raise ClientError(f"{path}: NaN or infinite samples")
    return x, int(rate)


def window_count(n_samples: int, window: int, hop: int) -> int:
    """Windows of `window` samples every `hop` samples (the last partial one dropped; 0 under one window)."""
    return 0 if n_samples < window else 1 + (n_samples - window) // hop


def usable_windows(audio: np.ndarray, sr: int, window_s: float, hop_s: float, floor_dbfs: float,
                   min_active: float, frame_s: float) -> np.ndarray:
    """(n_windows,) bool: a window is usable when at least `min_active` of its back-to-back `frame_s` frames have
    an RMS level above `floor_dbfs` (dBFS). The rule of resonance.index.usable, in numpy only."""
    audio = np.asarray(audio)
    win, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    if audio.ndim != 1 or audio.size < win:
        return np.zeros(0, dtype=bool)
    frame = max(1, int(round(frame_s * sr)))
    n = audio.size // frame
    x = np.asarray(audio[:n * frame], dtype=np.float64).reshape(n, frame)
    level_db = 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-20)
    active = np.concatenate([[0], np.cumsum(level_db > floor_dbfs)])
    n_windows = window_count(audio.size, win, hop)
    first = (np.arange(n_windows) * hop) // frame
    last = (np.arange(n_windows) * hop + win) // frame
    return (active[last] - active[first]) / np.maximum(1, last - first) >= min_active


class DeviceEmbedder:
    """model.onnx in onnxruntime on `threads` CPU threads: windows of mono audio -> (m, dim) unit embeddings."""

    def __init__(self, onnx_path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        self.model_sha256: str | None = meta.get("model_sha256")
        shape = self.session.get_inputs()[0].shape
        self.window = int(shape[1]) if isinstance(shape[1], int) else None

    def embed(self, audio: np.ndarray, window: int, hop: int, batch: int = 32) -> np.ndarray:
        """(n_samples,) float32 -> (n_windows, dim) float32; window i covers samples [i*hop, i*hop + window)."""
        if self.window is not None and window != self.window:
            raise ClientError(f"the server's window is {window} samples, this model.onnx takes {self.window}")
        m = window_count(audio.size, window, hop)
        if m == 0:  # shorter than one window: nothing to embed (the server answers "too_short")
            return np.zeros((0, 0), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, dtype=np.float32), window)[::hop][:m]
        out = [self.session.run(None, {"audio": np.ascontiguousarray(frames[i:i + batch])})[0]
               for i in range(0, m, batch)]
        return np.concatenate(out).astype(np.float32)


def _request(url: str, api_key: str | None, body: dict[str, Any] | None = None, timeout_s: float = 60.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header(API_KEY_HEADER, api_key)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
            message = f"{err.get('error')}: {err.get('detail')}"
        except ValueError:
            message = exc.reason
        raise ClientError(f"{url}: HTTP {exc.code} {message}") from None


def payload(audio: np.ndarray, sr: int, device: dict[str, Any], embedder: DeviceEmbedder,
            model_sha256: str | None) -> dict[str, Any]:
    """The /identify/embeddings body for a mono clip at `sr`, from /version's `device` block."""
    if sr != device["sr"]:
        raise ClientError(f"audio at {sr} Hz: the model works at {device['sr']} Hz; resample it first (the app's job)")
    window, hop = int(round(device["window_s"] * sr)), int(round(device["query_hop_s"] * sr))
    emb = embedder.embed(audio, window, hop)
    u = device["usable"]
    flags = usable_windows(audio, sr, device["window_s"], device["query_hop_s"], u["silence_dbfs"], u["min_active"],
                           u["frame_s"])
    body: dict[str, Any] = {"embeddings": emb.tolist() if emb.size else [], "usable": flags.tolist(),
                            "duration_s": audio.size / sr, "hop_s": device["query_hop_s"]}
    sha = model_sha256 or embedder.model_sha256
    if sha:
        body["model_sha256"] = sha
    return body


def identify(server: str, onnx_path: str, wav_path: str, api_key: str | None = None, threads: int = 1,
             model_sha256: str | None = None) -> dict[str, Any]:
    """Embed `wav_path` on this machine with `onnx_path` and ask `server` which song it is (the answer's fields
    are those of POST /identify)."""
    server = server.rstrip("/")
    device = _request(f"{server}/version", api_key)["device"]
    audio, sr = read_wav(wav_path)
    body = payload(audio, sr, device, DeviceEmbedder(onnx_path, threads), model_sha256)
    return _request(f"{server}/identify/embeddings", api_key, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Embed a WAV on this device and identify it via the server.")
    parser.add_argument("wav", help="16 kHz WAV, mono or stereo")
    parser.add_argument("--model", default="data/model/model.onnx", help="the ONNX export of the served model")
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key-env", default="RESONANCE_API_KEY", help="env var holding the API key, if any")
    parser.add_argument("--model-sha256", default=None, help="the model's sha256 (GET /version model.sha256), sent "
                        "so a server running another model answers 409 instead of a wrong song")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    args = parser.parse_args(argv)
    try:
        answer = identify(args.server, args.model, args.wav, os.environ.get(args.api_key_env), args.threads,
                          args.model_sha256)
    except (ClientError, OSError) as exc:
        print(f"device_client: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())

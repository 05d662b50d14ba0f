"""HTTP load on `resonance serve`: throughput and latency of POST /identify under 1, 8 and 32 concurrent clients.

Each request uploads a WAV of --seconds of a query clip (default: the first --n-clips test queries, 5 s), so a
latency is end to end as a client sees it: HTTP, the decode (libsndfile or PyAV, in memory), embedding, search
and the decision. Without --url the script starts `resonance serve` itself (a subprocess on a free loopback port) with the
given model, index and calibration (default the real data/ ones: data/model, data/index, data/calibration) and
stops it at the end.

    .venv/bin/python benchmarks/serve_load.py                       # against data/ (the lead runs this)
    .venv/bin/python benchmarks/serve_load.py --model M --index I --calibration C --clips DIR
    .venv/bin/python benchmarks/serve_load.py --url http://127.0.0.1:8000 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
ROOT = Path(__file__).resolve().parents[1]


def _post(url: str, data: bytes, api_key: str | None) -> tuple[int, dict[str, Any], float]:
    headers = {"Content-Type": "audio/wav", **({"X-API-Key": api_key} if api_key else {})}
    t0 = time.perf_counter()
    try:
        with DIRECT.open(urllib.request.Request(f"{url}/identify", data=data, headers=headers), timeout=300) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    ms = (time.perf_counter() - t0) * 1000.0
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return status, body, ms


def run_load(url: str, clips: list[bytes], levels: list[int], requests: int, api_key: str | None) -> list[dict]:
    """For each concurrency level: `requests` uploads (clips in turn) from that many client threads. Returns one
    row per level: clients, requests, ok, errors, rps, p50/p95 ms (client side), server p50 ms (latency_ms)."""
    rows = []
    for clients in levels:
        counter, lock = iter(range(requests)), threading.Lock()
        results: list[tuple[int, dict[str, Any], float]] = []

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    out = _post(url, clips[i % len(clips)], api_key)
                except OSError as exc:  # a refused or reset connection is an error row, not a crash
                    out = (0, {"error": repr(exc)}, float("nan"))
                with lock:
                    results.append(out)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for _ in range(clients):
                pool.submit(worker)
        elapsed = time.perf_counter() - t0
        ok = [r for r in results if r[0] == 200]
        ms = np.array([r[2] for r in ok]) if ok else np.array([np.nan])
        server = np.array([r[1].get("latency_ms", np.nan) for r in ok]) if ok else np.array([np.nan])
        rows.append({"clients": clients, "requests": len(results), "ok": len(ok), "errors": len(results) - len(ok),
                     "rps": len(ok) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
                     "p95_ms": float(np.percentile(ms, 95)), "server_p50_ms": float(np.nanpercentile(server, 50))})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| clients | requests | ok | errors | throughput (req/s) | p50 ms | p95 ms | server p50 ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['clients']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['rps']:.1f} | "
                     f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['server_p50_ms']:.0f} |")
    return "\n".join(lines)


def load_clips(folder: Path, n: int, seconds: float, phone: bool = False) -> list[bytes]:
    """The first n audio files of `folder` (sorted), cut to `seconds`, as 16-bit WAV bytes at their own rate
    (the query sets': 16 kHz mono), or with `phone` as a phone's own recording: 44.1 kHz stereo (PyAV decodes
    and resamples it on the server)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".flac", ".wav", ".ogg"))[:n]
    if not files:
        raise SystemExit(f"serve_load: no .flac/.wav/.ogg clips in {folder}")
    out = []
    for path in files:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
        audio = audio[: int(seconds * sr)]
        if phone:
            audio = resample_poly(audio, 44100, sr).astype(np.float32)
            audio, sr = np.stack([audio, audio], axis=1), 44100
        buf = io.BytesIO()
        sf.write(buf, np.clip(audio, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """`resonance serve` on a free loopback port; returns once /healthz answers."""
    port = _free_port()
    cmd = [sys.executable, "-m", "resonance", "--params", str(args.params), "serve", "--host", "127.0.0.1",
           "--port", str(port), "--model", args.model, "--index", args.index, "--calibration", args.calibration]
    proc = subprocess.Popen(cmd, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve_load: `resonance serve` exited with {proc.returncode}")
        try:
            with DIRECT.open(f"{url}/healthz", timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("serve_load: the server did not come up within 300 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="an already running service (default: start one)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--model", default="data/model")
    parser.add_argument("--index", default="data/index")
    parser.add_argument("--calibration", default="data/calibration")
    parser.add_argument("--clips", default="data/queries/test/audio", help="folder of query clips")
    parser.add_argument("--n-clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="query length sent (default 5 s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    parser.add_argument("--api-key-env", default="RESONANCE_API_KEY")
    parser.add_argument("--out", default=None, help="also write the tables here (markdown)")
    args = parser.parse_args(argv)
    clips = load_clips(Path(args.clips), args.n_clips, args.seconds)
    phone = load_clips(Path(args.clips), args.n_clips, args.seconds, phone=True)
    proc, url = (None, args.url.rstrip("/")) if args.url else start_server(args)
    try:
        key = os.environ.get(args.api_key_env)
        run_load(url, clips, [min(4, max(args.concurrency))], min(8, args.requests), key)  # warm-up
        rows = run_load(url, clips, args.concurrency, args.requests, key)
        phone_rows = run_load(url, phone, [1], args.requests, key)
        with DIRECT.open(urllib.request.Request(f"{url}/version", headers={"X-API-Key": key} if key else {}),
                         timeout=30) as r:
            version = json.loads(r.read())
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    from resonance.io import write_report

    head = (f"POST /identify, {args.seconds:g} s clips ({len(clips)} distinct test queries), {args.requests} requests "
            f"per level; model {version['model']['version'] or version['model']['loaded_from']}, "
            f"{version['catalog_size']} tracks, {version['index']['windows']:,} windows, {os.cpu_count()} CPU cores. "
            f"Latency is end to end as the client sees it (HTTP, decode, embed, search, decision); server p50 is the "
            f"service's own latency_ms.")
    lines = ["# HTTP load (`python benchmarks/serve_load.py`)", "", head, "",
             "## 16 kHz mono 16-bit WAV (what a client app records; decoded in memory)", "", table(rows), "",
             "## 44.1 kHz stereo 16-bit WAV (a phone's own format; PyAV decodes and resamples it in memory)", "",
             table(phone_rows), ""]
    if args.out:
        write_report(Path(args.out), lines)
    else:
        print("\n".join(lines))
    bad = sum(r["errors"] for r in rows + phone_rows)
    print(f"serve_load: {sum(r['ok'] for r in rows + phone_rows)} answers, {bad} errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

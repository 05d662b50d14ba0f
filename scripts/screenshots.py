"""Screenshots of a real run in headless Chromium: the MLflow model version page (promotion tags and
description), the Prefect flow run of `retrain`, and the Evidently drift report. Writes PNGs under --out.

    .venv/bin/python scripts/screenshots.py [--project DIR] [--out docs]

--project is a project folder after a real run (`make run`, or `make run PROFILE=quick` then `resonance
monitor`): its MLflow store (mlruns/mlflow.db), Prefect database (.prefect/) and monitoring/reports/ are read;
`mlflow ui` and `prefect server start` are started on free loopback ports and stopped at the end. Needs the
Debian package chromium (`SETUP_BROWSER=1 bash scripts/setup.sh` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MODEL = "resonance-embedder"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    """Poll `url` until it answers 200 (SystemExit if the server died or timeout_s passed)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"screenshots: the server for {url} exited with code {proc.returncode}")
        try:
            with opener.open(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    sys.exit(f"screenshots: {url} did not answer within {timeout_s:.0f} s")


def shoot(url: str, out: Path, size: tuple[int, int], budget_ms: int = 20000) -> Path:
    """Render `url` in headless Chromium and write the PNG to `out` atomically; SystemExit when nothing came."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("screenshots: chromium is not installed (SETUP_BROWSER=1 bash scripts/setup.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "shot.png"
        cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp}/profile", f"--window-size={size[0]},{size[1]}",
               f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", url]
        subprocess.run(cmd, capture_output=True, timeout=180)
        if not png.is_file() or png.stat().st_size < 10_000:
            sys.exit(f"screenshots: chromium rendered nothing useful for {url}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_suffix(".png.tmp")
        shutil.copyfile(png, tmp_out)
        os.replace(tmp_out, out)
    print(f"screenshots: {url} -> {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return out


def model_version(tracking_uri: str) -> tuple[str, str]:
    """(name, version) of the newest registered model version that carries a promotion decision (its page
    shows the gate's tags): `resonance-embedder`, or a profile's (`resonance-embedder-quick`)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    gated = [v for m in client.search_registered_models() if m.name.startswith(MODEL)
             for v in client.search_model_versions(f"name='{m.name}'") if "promotion.decision" in v.tags]
    if not gated:
        sys.exit(f"screenshots: no version of {MODEL}* in {tracking_uri} has promotion tags: run `make run` first")
    newest = max(gated, key=lambda v: v.creation_timestamp)
    return newest.name, str(newest.version)


def latest_flow_run(api: str, flow_name: str) -> str:
    """The id of the newest run of the flow `flow_name` in the Prefect API at `api`."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = json.dumps({"flows": {"name": {"any_": [flow_name]}}, "sort": "START_TIME_DESC", "limit": 1}).encode()
    req = urllib.request.Request(f"{api}/flow_runs/filter", body, {"Content-Type": "application/json"})
    with opener.open(req, timeout=30) as r:
        runs = json.loads(r.read())
    if not runs:
        sys.exit(f"screenshots: no run of flow {flow_name!r} in the Prefect database: run `make run` first")
    return runs[0]["id"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", help="the project folder after a real run (default: here)")
    ap.add_argument("--out", default="docs", help="where the PNGs go (default: docs)")
    ap.add_argument("--flow", default="retrain", help="the Prefect flow whose newest run is shown")
    args = ap.parse_args()
    project, out = Path(args.project).resolve(), Path(args.out)
    tracking = f"sqlite:///{project}/mlruns/mlflow.db"
    env = {**os.environ, "PREFECT_HOME": str(project / ".prefect"), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    bin_dir = Path(sys.executable).parent
    reports = sorted([*project.glob("monitoring/reports/*/drift_report.html"),
                      *project.glob("runs/*/monitoring/reports/*/drift_report.html")], key=lambda p: p.parent.name)
    if not reports:
        sys.exit(f"screenshots: no drift report under {project}/monitoring/reports: run `resonance monitor` first")
    name, version = model_version(tracking)
    procs = []
    try:
        port = free_port()
        procs.append(subprocess.Popen([str(bin_dir / "mlflow"), "ui", "--backend-store-uri", tracking,
                                       "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                      env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{port}/health", 120, procs[-1])
        shoot(f"http://127.0.0.1:{port}/#/models/{name}/versions/{version}", out / "mlflow_model_version.png",
              (1500, 3400))
        pport = free_port()
        api = f"http://127.0.0.1:{pport}/api"
        procs.append(subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1",
                                       "--port", str(pport)], env={**env, "PREFECT_UI_API_URL": api,
                                                                   "PREFECT_SERVER_UI_API_URL": api}, cwd=project,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"{api}/health", 180, procs[-1])
        run_id = latest_flow_run(api, args.flow)
        shoot(f"http://127.0.0.1:{pport}/runs/flow-run/{run_id}", out / "prefect_flow_run.png", (1500, 1100))
        shoot(reports[-1].as_uri(), out / "evidently_drift_report.png", (1400, 1600))
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()

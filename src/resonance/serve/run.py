"""Starting the service: who may connect, load the model triple, run uvicorn.

A loopback bind (127.0.0.0/8, ::1, localhost) serves this machine only and needs no key. Any other bind address
refuses to start unless the environment variable named by `serve.api_key_env` holds a key; whenever a key is set
(on any bind) every request but /healthz must carry it. The model, index and calibration are loaded before the
port opens, so a missing or mismatched part stops `resonance serve` with one line (exit code 2).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from resonance.config.embedding import EmbeddingParams
from resonance.config.serve import ServeParams
from resonance.errors import ResonanceError

log = logging.getLogger("resonance.serve")


class ServeConfigError(ResonanceError):
    """The service cannot start as configured (a public bind without an API key, a bad address)."""


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP addresses (127.0.0.0/8, ::1); False for any other address or name."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_key(p: ServeParams, host: str) -> str | None:
    """The API key from the environment (None when unset on a loopback bind); ServeConfigError when a
    non-loopback bind has none."""
    key = os.environ.get(p.api_key_env)
    if key is not None and not key.strip():
        raise ServeConfigError(f"{p.api_key_env} is set but empty: give it a real key or unset it")
    if key is None and not is_loopback(host):
        raise ServeConfigError(f"refusing to listen on {host}: a non-loopback address is reachable from other "
                               f"machines, so it needs an API key: export {p.api_key_env}=<secret> (clients send "
                               f"it as the X-API-Key header), or bind 127.0.0.1")
    return key


def build_service(p: ServeParams, params: EmbeddingParams, watch: bool = True) -> tuple[Any, Any]:
    """(app, holder): the API key checked, torch threads set, the model triple loaded (ResonanceError when it
    cannot be), and the FastAPI app around it."""
    import torch

    from resonance.serve.app import create_app
    from resonance.serve.holder import RecognizerHolder, load_served

    key = api_key(p, p.host)
    torch.set_num_threads(p.torch_threads)
    served = load_served(p, params)
    holder = RecognizerHolder(served)
    log.warning("serve: model %s (%s), index %s with %d tracks", served.ref.version or served.ref.load,
                served.ref.kind, served.index_build_id, len(served.method.index.tracks))
    return create_app(holder, p, params, key, watch=watch), holder


def uvicorn_config(app: Any, p: ServeParams, log_level: str) -> Any:
    """The uvicorn Config of the service (WebSocket messages capped at max_upload_bytes)."""
    import uvicorn

    return uvicorn.Config(app, host=p.host, port=p.port, log_level=log_level, ws_max_size=p.max_upload_bytes,
                          timeout_graceful_shutdown=10, access_log=log_level in ("info", "debug"))


def serve(p: ServeParams, params: EmbeddingParams, log_level: str) -> None:
    """Load, then serve until interrupted (uvicorn handles SIGINT/SIGTERM: requests in flight finish)."""
    import uvicorn

    api_key(p, p.host)  # refuse a public bind before any slow load
    app, _ = build_service(p, params)
    print(f"resonance serve: http://{p.host}:{p.port} (docs at /docs); Ctrl-C stops", flush=True)
    uvicorn.Server(uvicorn_config(app, p, log_level)).run()

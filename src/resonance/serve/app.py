"""The FastAPI app: routes, the API key, JSON errors, and the watcher's lifetime.

Every recognition reads `holder.current` once and answers from that (model, index, calibration) triple, with
`resonance.index.stage.result_row`'s fields (the same as `resonance identify --json`) plus latency_ms,
model_version and index_build_id. At most `serve.max_concurrent` recognitions (decode + embed + search + decide)
run at once in worker threads; the others wait their turn, none is refused for load.
"""

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

from resonance.config.embedding import EmbeddingParams
from resonance.config.serve import ServeParams
from resonance.serve.errors import ApiError, error_body, install_handlers
from resonance.serve.holder import RecognizerHolder, Served, Watcher

API_KEY_HEADER = "X-API-Key"
OPEN_PATHS = ("/healthz",)
AUDIO_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "audio/*": {"schema": {"type": "string", "format": "binary"}}}}}


class ApiKeyMiddleware:
    """ASGI middleware: with a key configured, every HTTP request and WebSocket but OPEN_PATHS must carry it in
    the X-API-Key header (401 JSON for HTTP; a WebSocket is refused with close code 1008)."""

    def __init__(self, app: Any, key: str | None) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.key is None or scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers

        given = Headers(scope=scope).get(API_KEY_HEADER, "")
        if hmac.compare_digest(given.encode(), self.key.encode()):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong X-API-Key"})
            return
        from starlette.responses import JSONResponse

        response = JSONResponse(error_body("unauthorized", f"missing or wrong {API_KEY_HEADER} header"),
                                status_code=401)
        await response(scope, receive, send)


def _answer(served: Served, found: Any, duration_s: float, t0: float, extra: dict[str, Any]) -> dict[str, Any]:
    from resonance.index.stage import result_row

    return {**extra, **result_row(found, duration_s), "latency_ms": round((time.perf_counter() - t0) * 1000.0, 1),
            "model_version": served.ref.version, "index_build_id": served.index_build_id}


def create_app(holder: RecognizerHolder, p: ServeParams, params: EmbeddingParams, api_key: str | None,
               watch: bool = True) -> Any:
    """The service around an already loaded holder; `watch` starts the hot-swap watcher with the app."""
    from fastapi import FastAPI, Request, WebSocket
    from starlette.concurrency import run_in_threadpool

    from resonance.serve import embeddings, listen, upload

    limiter = asyncio.Semaphore(p.max_concurrent)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        watcher = Watcher(holder, p, params) if watch else None
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                await run_in_threadpool(watcher.stop)

    app = FastAPI(title="resonance", summary="Song recognition for live-concert audio", lifespan=lifespan,
                  description="Name the song in a few seconds of concert audio: POST /identify (audio), POST "
                              "/identify/embeddings (window embeddings made on the device), WS /listen "
                              f"(streaming). With an API key configured, send it as `{API_KEY_HEADER}`.")
    install_handlers(app)
    app.add_middleware(ApiKeyMiddleware, key=api_key)

    async def compute(fn: Any, *args: Any) -> Any:
        async with limiter:
            return await run_in_threadpool(fn, *args)

    @app.get("/healthz", summary="liveness (never needs the API key)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "tracks": len(holder.current.method.index.tracks)}

    @app.get("/version", summary="the served model (version, alias, sha256), index build id, catalog size")
    async def version() -> dict[str, Any]:
        return {**holder.current.version(), "swaps": holder.swaps, "last_reload_error": holder.last_error}

    @app.post("/identify", summary="name the song in an audio upload (any format FFmpeg reads)",
              openapi_extra=AUDIO_BODY)
    async def identify(request: Request) -> dict[str, Any]:
        t0 = time.perf_counter()
        body = await upload.read_body(request.stream(), request.headers.get("content-length"), p.max_upload_bytes)
        item = await upload.take_upload(request.headers, body, p.max_upload_bytes)
        served = holder.current

        def work() -> tuple[Any, float]:
            sr = served.method.embedder.sr
            audio = upload.decode_upload(item.data, sr, p)
            return served.method.recognize(audio, sr), audio.size / sr

        found, duration_s = await compute(work)
        return _answer(served, found, duration_s, t0, {"file": item.filename})

    @app.post("/identify/embeddings", summary="name the song from window embeddings computed on the device",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": embeddings.EmbeddingsRequest.model_json_schema()}}}})
    async def identify_embeddings(request: Request) -> dict[str, Any]:
        t0 = time.perf_counter()
        kind = upload.media_type(request.headers.get("content-type"))
        if kind != "application/json":
            raise ApiError(415, "unsupported_media_type", f"content type {kind or 'none'!r}: send "
                                                          f"application/json")
        body = await upload.read_body(request.stream(), request.headers.get("content-length"), p.max_upload_bytes)
        req = embeddings.parse(body)
        served = holder.current
        queries, usable, length_s = embeddings.check(req, served.method, p)
        found = await compute(embeddings.decide, served.method, queries, usable, length_s)
        return _answer(served, found, length_s, t0, {})

    @app.websocket("/listen")
    async def listen_ws(ws: WebSocket) -> None:
        await ws.accept()
        await listen.session(ws, lambda: holder.current, p.listen, limiter)

    return app

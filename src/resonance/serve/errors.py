"""Every error the service answers is JSON: {"error": short code, "detail": what was wrong and how to fix it}.

Bad requests are 4xx (`ApiError` raised anywhere below a route, FastAPI's request validation, unknown routes and
methods); anything unexpected is logged with its traceback and answered 500 with the same JSON shape, so a
client never has to parse an HTML or plain-text error page.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("resonance.serve")


class ApiError(Exception):
    """A request the service refuses: HTTP `status` (4xx), a short machine-readable `error` code and a `detail`
    sentence for people."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


def install_handlers(app: Any) -> None:
    """Exception handlers of `app` (a FastAPI app) that turn every failure into the JSON error body."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, exc: ApiError) -> JSONResponse:
        log.info("%s %s -> %d %s: %s", request.method, request.url.path, exc.status, exc.error, exc.detail)
        return JSONResponse(error_body(exc.error, exc.detail), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Any, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()[:5]]
        return JSONResponse(error_body("invalid_request", "; ".join(problems) or "malformed request"),
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Any, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}
        return JSONResponse(error_body(codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Any, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", f"unexpected {type(exc).__name__}; the server log has the "
                                                   f"details"), status_code=500)

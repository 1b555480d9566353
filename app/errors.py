"""The one error type the BFF raises, and the one handler that renders it.

    BFFError(status, code)
     ├── 400 invalid_request, invalid_json, invalid_return_to, invalid_state, ...
     ├── 401 not_authenticated, session_expired
     ├── 403 csrf_failed, origin_not_allowed
     ├── 413 body_too_large
     ├── 502 upstream_error, token_endpoint_error, discovery_failed
     ├── 503 session_store_unavailable, token_endpoint_unavailable
     └── 504 upstream_timeout, token_endpoint_timeout

Every response body is `{"error": code, "detail": text}`; nothing upstream sends is echoed, since it may
carry tokens.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger("bff.errors")

NO_STORE = {"Cache-Control": "no-store"}


class BFFError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


class SessionStoreUnavailable(BFFError):
    """Redis did not answer; the session is intact, the customer must not be logged out."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "session_store_unavailable",
            "The session store is temporarily unavailable; retry shortly.",
            headers={"Retry-After": "1"},
        )


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "detail": detail}, status, headers={**NO_STORE, **(headers or {})})


async def _bff_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BFFError)
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.count_rejection(exc.code)
    if exc.status >= 500:
        log.warning("request failed: %s %s", exc.status, exc.code)
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
    return error_response(400, "invalid_request", f"Invalid or missing parameters: {fields}")


async def _unexpected(_: Request, exc: Exception) -> Response:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BFFError, _bff_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)

"""Structured logs: JSON lines (or readable console lines in development), one per request plus events.

Every line of a request carries its `request_id` (an incoming `X-Request-ID` when it is sane, else a new
one, echoed back in the response). Only the path is logged, never the query string (it carries OAuth
codes and state), headers, cookies or bodies, so no token or secret can reach the logs.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import sys
import time
from typing import Any, TextIO

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HANDLER_NAME = "bff-structured"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# The per-request line skips the stdlib logging machinery, which cost about three times as much per line
# (bench/results.md) on a path that runs for every request. It writes to the same stream as the rest.
_request_log: Any = structlog.get_logger("bff.request")
# Whether the access line is logged at the configured level: below it, the line's fields are not even built.
_access_log_on = True


def use_colour(stream: TextIO) -> bool:
    """Console lines are coloured only on a terminal, and never with NO_COLOR set (no-color.org): a log
    file or a pipe gets no escape codes."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Route stdlib and structlog output through one handler; safe to call again (it replaces itself)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    out = stream or sys.stdout
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=use_colour(out))
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    global _request_log, _access_log_on
    _access_log_on = _LEVELS[level.lower()] <= logging.INFO
    _request_log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.lower()]),
        processors=[*shared[:1], structlog.processors.add_log_level, *shared[3:], renderer],
        cache_logger_on_first_use=True,
    ).bind(logger="bff.request")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # We log every request ourselves, with less in it; uvicorn's access line and httpx's request
    # lines would log full URLs, query strings included.
    logging.getLogger("uvicorn.access").disabled = True
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


class RequestLog:
    """Pure ASGI middleware: binds a request id, echoes it as X-Request-ID, logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Unique ids without a syscall per request (uuid4 reads os.urandom): a random prefix per
        # process and a counter.
        self._prefix = secrets.token_hex(6) + "-"
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else f"{self._prefix}{next(self._counter):x}"
        echoed = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echoed]
            await send(message)

        # bind + reset by token rather than structlog's bound_contextvars, which copies the whole context
        # twice per request to restore it; the token restores exactly what was there.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            try:
                if _access_log_on:
                    _request_log.info(
                        "request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                        client=scope["client"][0] if scope.get("client") else None,
                    )
            finally:
                structlog.contextvars.reset_contextvars(**tokens)

"""The signed-in customer's own sessions: `GET /auth/sessions` and `POST /auth/sessions/{handle}/end`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from app.deps import (
    CartsAtLogout,
    Cookies,
    CurrentSession,
    MetricsDep,
    Sessions,
    SettingsDep,
    require,
    session_from_cookie,
)
from app.errors import SessionNotFound
from app.security import check_csrf
from app.store.sessions import session_handle

router = APIRouter(prefix="/auth", tags=["auth"])

# "Last used" is read off the sliding TTL, exact to a minute at best; shown rounded to one.
COARSE = 60


def _coarse(when: float | None, *, not_before: float) -> int | None:
    return None if when is None else max(int(not_before), int(when // COARSE * COARSE))


@router.get("/sessions", summary="The signed-in customer's sessions (devices)")
async def list_sessions(current: CurrentSession, sessions: Sessions) -> Response:
    """Each of the customer's live sessions: an opaque handle (never the session id), when it was created and
    last used (to the minute), what device it is, and which one is this browser's."""
    mine = await sessions.sessions_of(current.sub)
    listed: list[dict[str, Any]] = [
        {
            "handle": session_handle(s.sid),
            "created_at": int(s.created_at),
            "last_used_at": _coarse(sessions.last_used(s), not_before=s.created_at),
            "device": s.user_agent or "Unknown device",
            "current": s.sid == current.sid,
        }
        for s in sorted(mine, key=lambda s: s.created_at, reverse=True)
    ]
    return JSONResponse({"sessions": listed})


@router.post("/sessions/{handle}/end", summary="End one of the signed-in customer's sessions")
async def end_session(
    handle: Annotated[str, Path(max_length=64)],
    request: Request,
    settings: SettingsDep,
    cookies: Cookies,
    sessions: Sessions,
    carts: CartsAtLogout,
    metrics: MetricsDep,
) -> Response:
    """CSRF-protected like logout (and checked first, before the session is even read). Only the customer's
    own sessions are looked at, so another customer's handle is simply not found."""
    check_csrf(request.headers.get("origin"), request.headers.get("x-csrf"), settings.trusted_origins, allow_form=True)
    current = require(await session_from_cookie(request.headers.get("cookie"), cookies, sessions))
    for sid in await sessions.session_ids_of(current.sub):
        if session_handle(sid) == handle:
            ended = current if sid == current.sid else await sessions.peek(sid)
            linked = await carts.linked(ended, everywhere=False) if ended is not None else ()
            await sessions.delete(sid, sub=current.sub)
            await carts.release(linked)  # as at logout: that device's carts no longer check out as this customer
            metrics.sessions_ended.labels("ended_by_customer").inc()
            this_browser = sid == current.sid
            response = JSONResponse({"ended": handle, "current": this_browser})
            if this_browser:
                response.raw_headers.append(cookies.clear_session())
            return response
    raise SessionNotFound()

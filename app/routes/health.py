"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from app.errors import BFFError
from app.services import Deps

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis and the shop's discovery documents are reachable")
async def readyz(deps: Deps) -> Response:
    checks: dict[str, str] = {}
    try:
        await deps.store.ping()
        checks["redis"] = "ok"
    except BFFError as exc:
        checks["redis"] = exc.code
    try:
        await deps.discovery.endpoints()
        checks["discovery"] = "ok"
    except BFFError as exc:
        checks["discovery"] = exc.code
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store", **({} if ready else {"Retry-After": "1"})},
    )

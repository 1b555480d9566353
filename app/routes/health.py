"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from app.deps import MetricsDep, OAuth, Sessions, SettingsDep, ShopDiscovery
from app.errors import BFFError, NotFound
from app.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis takes writes and the shop's discovery documents are reachable")
async def readyz(sessions: Sessions, discovery: ShopDiscovery, oauth: OAuth) -> Response:
    checks: dict[str, str] = {}
    try:
        await sessions.ping()
        checks["redis"] = "ok"
    except BFFError as exc:
        checks["redis"] = exc.code
    try:
        await discovery.endpoints()
        checks["discovery"] = "ok"
    except BFFError as exc:
        checks["discovery"] = exc.code
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    health = oauth.health
    if health.problem is not None:
        # Told, not counted against readiness: a refused credential fails on every instance alike, and
        # taking them all out of rotation would also stop the sessions whose tokens still work.
        body["token_endpoint"] = {"last_error": health.problem, **({"reason": health.reason} if health.reason else {})}
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "1"},
    )


@router.get("/metrics", summary="Prometheus metrics (when BFF_METRICS_LISTENER=public)")
async def metrics(settings: SettingsDep, metrics: MetricsDep) -> Response:
    if settings.bff_metrics_listener != "public":
        raise NotFound("Not Found")
    return Response(metrics.render(), media_type=CONTENT_TYPE)

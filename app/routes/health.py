"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from app.deps import Deployment, Services
from app.errors import BFFError, NotFound
from app.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis takes writes and the shop's discovery documents are reachable")
async def readyz(deployment: Deployment) -> Response:
    checks: dict[str, object] = {}
    try:
        await deployment[0].sessions.ping()  # one Redis for every shop
        checks["redis"] = "ok"
    except BFFError as exc:
        checks["redis"] = exc.code
    body: dict[str, object] = {"checks": checks}
    if len(deployment) == 1 and deployment[0].settings.shop_id is None:
        shop = await _shop_checks(deployment[0])
        checks["discovery"] = shop.pop("discovery")
        body.update(shop)
        ready = all(v == "ok" for v in checks.values())
    else:
        # Several shops: told per shop, not counted against readiness. Every instance sees a shop's outage
        # alike, and taking them out of rotation would take every other shop down with it.
        body["shops"] = {s.settings.shop_id: await _shop_checks(s) for s in deployment}
        ready = checks["redis"] == "ok"
    body = {"status": "ready" if ready else "unavailable", **body}
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "1"},
    )


async def _shop_checks(shop: Services) -> dict[str, object]:
    found: dict[str, object] = {}
    try:
        await shop.discovery.endpoints()
        found["discovery"] = "ok"
    except BFFError as exc:
        found["discovery"] = exc.code
    health = shop.oauth.health
    if health.problem is not None:
        # Told, not counted against readiness: a refused credential fails on every instance alike, and
        # taking them all out of rotation would also stop the sessions whose tokens still work.
        found["token_endpoint"] = {"last_error": health.problem, **({"reason": health.reason} if health.reason else {})}
    return found


@router.get("/metrics", summary="Prometheus metrics (when BFF_METRICS_LISTENER=public)")
async def metrics(deployment: Deployment) -> Response:
    first = deployment[0]  # every shop's metrics are in one registry
    if first.settings.bff_metrics_listener != "public":
        raise NotFound("Not Found")
    return Response(first.metrics.render(), media_type=CONTENT_TYPE)

"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.deps import Deployment, Services
from app.errors import BFFError, NotFound
from app.metrics import CONTENT_TYPE
from app.shop_routing import SHOP

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis takes writes and the shop's discovery documents are reachable")
async def readyz(request: Request, deployment: Deployment) -> Response:
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
        checking: dict[str, ShopCheck] = request.app.state.shop_checks  # the lifespan's (main.py)
        # Only the asking host's shop is told: the list of shops is nobody's business on another host.
        asked: str | None = request.scope.get(SHOP)
        mine = next((s for s in deployment if asked and s.settings.shop_id == asked), None)
        body["shops"] = {asked: await checking[asked].report(mine)} if asked and mine is not None else {}
        ready = checks["redis"] == "ok"
    body = {"status": "ready" if ready else "unavailable", **body}
    return JSONResponse(
        body,
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "1"},
    )


class ShopCheck:
    """One shop's checks for a multi-shop /readyz, which never waits on a shop: a hung shop's discovery fetch
    takes its whole deadline (BFF_UPSTREAM_*_TIMEOUT, 25 s by default), longer than any probe waits (3 s in
    deploy/kubernetes), and a probe timing out takes the instance, so every shop, out of rotation. So the
    checks run as a task of their own and each probe tells the last verdict, "pending" before the first."""

    def __init__(self) -> None:
        self._running: asyncio.Task[dict[str, object]] | None = None
        self._last: dict[str, object] = {"discovery": "pending"}

    async def aclose(self) -> None:
        """Stop a check still running (the lifespan, before the shop's clients close)."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.wait([self._running])

    async def report(self, shop: Services) -> dict[str, object]:
        if self._running is None:
            self._running = asyncio.create_task(_shop_checks(shop), name=f"readyz {shop.settings.shop_id}")
            # One turn of the loop: checks that need no request to the shop (a cached copy) finish in it.
            await asyncio.sleep(0)
        if self._running.done():
            task, self._running = self._running, None
            if not task.cancelled():  # cancelled: the lifespan is closing
                self._last = task.result()
        return self._last


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

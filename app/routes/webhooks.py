"""`POST /webhooks/shopify`: Shopify's customer webhooks end that customer's sessions."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.bodies import read_body
from app.deps import MetricsDep, Sessions, SettingsDep
from app.errors import WebhooksDisabled
from app.webhooks import ACKNOWLEDGED_TOPICS, read_delivery, verify

log = logging.getLogger("bff.webhooks")
router = APIRouter(tags=["webhooks"])

# Shopify's customer payloads are a few hundred bytes; anything near this is not one of them.
MAX_WEBHOOK_BYTES = 64 * 1024


@router.post("/webhooks/shopify", summary="Shopify's customer webhooks (customers/delete, customers/redact)")
async def shopify_webhook(request: Request, settings: SettingsDep, sessions: Sessions, metrics: MetricsDep) -> Response:
    secrets = settings.webhook_secrets
    if not secrets:
        raise WebhooksDisabled("Set SHOPIFY_WEBHOOK_SECRET to receive Shopify's webhooks.")
    # Bounded and verified before anything is parsed: an unsigned request costs a capped read and an HMAC.
    body = await read_body(
        request.receive,
        request.headers.get("content-length"),
        limit=MAX_WEBHOOK_BYTES,
        deadline=settings.bff_body_read_timeout,
        what="A webhook body",
    )
    verify(body, request.headers.get("x-shopify-hmac-sha256"), secrets)
    delivery = read_delivery(body, request.headers.get("x-shopify-topic"), request.headers.get("x-shopify-webhook-id"))
    if delivery.customer_id is None:
        known = delivery.topic in ACKNOWLEDGED_TOPICS
        log.info(
            "webhook %s acknowledged%s", delivery.topic if known else "(other topic)", "" if known else ", ignored"
        )
        metrics.webhooks.labels("acknowledged" if known else "ignored").inc()
        return JSONResponse({"ok": True})
    # One round trip: ends every session of the customer and remembers the delivery id, atomically.
    ended = await sessions.end_customer(delivery.customer_id, webhook_id=delivery.webhook_id)
    if ended is None:
        log.info("webhook %s replayed; already done", delivery.topic)
        metrics.webhooks.labels("replayed").inc()
        return JSONResponse({"ok": True, "replayed": True})
    log.info("webhook %s ended %d session(s)", delivery.topic, ended)
    metrics.webhooks.labels(delivery.topic.replace("/", "_")).inc()
    metrics.sessions_ended.labels("webhook").inc(ended)
    return JSONResponse({"ok": True, "sessions_ended": ended})

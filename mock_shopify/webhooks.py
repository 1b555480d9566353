"""Shopify's customer webhooks: a subscription, and signed deliveries retried like Shopify retries them.

An admin action (`POST /_mock/customers/delete` or `/_mock/customers/redact`, body `{"email": ...}`) changes the
customer and delivers `customers/delete` or `customers/redact` to the subscribed URL: a JSON body signed with
`X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body with the app's secret), `X-Shopify-Topic`,
`X-Shopify-Webhook-Id` (the same on every retry, so receivers can deduplicate), `X-Shopify-Triggered-At`,
`X-Shopify-Shop-Domain` and `X-Shopify-API-Version`. A non-2xx answer, a timeout or a refused connection is
retried (Shopify: up to 8 times over 4 hours; here `attempts` times, `backoff` seconds apart, for tests). The
knob answers once the delivery succeeded or ran out of attempts, with every attempt's status.

Knobs: `POST /_mock/webhooks` `{"url", "secret", "attempts"?, "backoff"?, "timeout"?, "wrong_secret"?}`
subscribes (`{"url": null}` unsubscribes), and `POST /_mock/webhooks/replay` sends the last delivery again,
same id and all. `GET /_mock/stats` lists the deliveries.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import uuid
from dataclasses import asdict
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_shopify.customers import customer_number
from mock_shopify.knobs import Delivery, Subscription
from mock_shopify.state import Store


def signature(body: bytes, secret: str) -> str:
    """What Shopify puts in X-Shopify-Hmac-Sha256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class BadRequest(Exception):
    pass


class WebhookEndpoints:
    """The admin actions that trigger deliveries, and the subscription knobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        return [
            Route("/_mock/webhooks", self._knob(self.subscribe), methods=["POST"]),
            Route("/_mock/webhooks/replay", self._knob(self.replay), methods=["POST"]),
            Route("/_mock/customers/delete", self._knob(self.delete_customer), methods=["POST"]),
            Route("/_mock/customers/redact", self._knob(self.redact_customer), methods=["POST"]),
        ]

    @staticmethod
    def _knob(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                return JSONResponse({"ok": True, **(await handler(body))})
            except (BadRequest, ValueError) as exc:
                return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)

        return endpoint

    async def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        url = body.get("url")
        if url is None:
            self.store.knobs.webhooks = None
            return {"subscribed": False}
        secret = body.get("secret")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest("url must be an http(s) URL")
        if not isinstance(secret, str) or not secret:
            raise BadRequest("secret must be a non-empty string")
        attempts, backoff, timeout = body.get("attempts", 3), body.get("backoff", 0.05), body.get("timeout", 5.0)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
            raise BadRequest("attempts must be an integer from 1 to 20")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in (backoff, timeout)):
            raise BadRequest("backoff and timeout must be numbers >= 0")
        wrong = body.get("wrong_secret", False)
        if not isinstance(wrong, bool):
            raise BadRequest("wrong_secret must be a boolean")
        self.store.knobs.webhooks = Subscription(url, secret, attempts, float(backoff), float(timeout), wrong)
        return {"subscribed": True}

    def _email(self, body: dict[str, Any]) -> str:
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise BadRequest("email must be an email address")
        return email.lower()

    def _end_customer(self, email: str) -> None:
        """What deleting or redacting does at Shopify: the customer's tokens and login sessions are gone."""
        for token in self.store.access_tokens.values():
            if token.email == email:
                token.revoked = True
        for refresh in self.store.refresh_tokens.values():
            if refresh.email == email:
                refresh.live = False
        for sid in [sid for sid, s in self.store.sessions.items() if s.email == email]:
            del self.store.sessions[sid]
        self.store.customers.pop(email, None)

    async def delete_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        email = self._email(body)
        self._end_customer(email)
        return await self._deliver("customers/delete", {"id": customer_number(email)})

    async def redact_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        email = self._email(body)
        self._end_customer(email)
        config = self.store.config
        payload = {
            "shop_id": int(config.shop_id),
            "shop_domain": config.base_url.split("://", 1)[1],
            "customer": {"id": customer_number(email), "email": email, "phone": None},
            "orders_to_redact": [],
        }
        return await self._deliver("customers/redact", payload)

    async def replay(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.store.stats.webhook_deliveries:
            raise BadRequest("nothing delivered yet")
        last = self.store.stats.webhook_deliveries[-1]
        again = Delivery(last.topic, last.webhook_id, last.body)
        return await self._send(again)

    async def _deliver(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        delivery = Delivery(topic, str(uuid.uuid4()), json.dumps(payload, separators=(",", ":")))
        return await self._send(delivery)

    async def _send(self, delivery: Delivery) -> dict[str, Any]:
        subscription = self.store.knobs.webhooks
        self.store.stats.webhook_deliveries.append(delivery)
        if subscription is None:
            return {"delivery": asdict(delivery), "delivered": False}
        raw = delivery.body.encode()
        secret = "not-the-apps-secret" if subscription.wrong_secret else subscription.secret
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": signature(raw, secret),
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Triggered-At": datetime.datetime.now(datetime.UTC).isoformat(),
            "X-Shopify-Shop-Domain": self.store.config.base_url.split("://", 1)[1],
            "X-Shopify-API-Version": self.store.config.api_version,
        }
        async with httpx.AsyncClient(timeout=subscription.timeout) as http:
            for attempt in range(subscription.attempts):
                if attempt:
                    await asyncio.sleep(subscription.backoff * attempt)  # Shopify's retries back off too
                try:
                    status: int | str = (await http.post(subscription.url, content=raw, headers=headers)).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                delivery.statuses.append(status)
                if delivery.delivered:
                    break
        return {"delivery": asdict(delivery), "delivered": delivery.delivered}

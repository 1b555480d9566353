"""Shopify's webhook deliveries: the signature check and what each customer topic asks of the sessions.

Shopify signs each delivery with `X-Shopify-Hmac-Sha256`: the base64 HMAC-SHA256 of the raw body under the
app's webhook secret. Every configured secret is tried (newest first, for a rotation) with a constant-time
comparison, before the body is parsed at all. Only two topics change anything, and both end every session
of the customer they name: `customers/delete` (`{"id": <n>}`) and `customers/redact` (a privacy request:
`{"customer": {"id": <n>, ...}}`), since their records hold the customer's email and tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidJSON, InvalidRequest, InvalidSignature

ENDING_TOPICS = ("customers/delete", "customers/redact")
ACKNOWLEDGED_TOPICS = ("customer_account_settings/update",)
_GID = re.compile(r"^gid://shopify/Customer/([1-9][0-9]{0,19})$")
_NUMBER = re.compile(r"^[1-9][0-9]{0,19}$")
_WEBHOOK_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def customer_gid(value: object) -> str | None:
    """`gid://shopify/Customer/<n>` from the gid itself or the bare number `<n>` (an int or digits)."""
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int | str) else ""
    if found := _GID.match(text):
        return f"gid://shopify/Customer/{found[1]}"
    return f"gid://shopify/Customer/{text}" if _NUMBER.match(text) else None


def verify(body: bytes, signature: str | None, secrets: tuple[bytes, ...]) -> None:
    """Raise 401 `invalid_signature` unless one of `secrets` signed `body`."""
    if not signature or len(signature) > 100:
        raise InvalidSignature()
    given = signature.strip().encode()
    # Every secret is tried, so the time taken does not say which came close.
    matched = False
    for secret in secrets:
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise InvalidSignature()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery: its topic, its id (for deduplication) and the customer it names, if it ends one."""

    topic: str
    webhook_id: str
    customer_id: str | None


def read_delivery(body: bytes, topic: str | None, webhook_id: str | None) -> Delivery:
    """The delivery a verified body and its headers describe; 400 when an ending topic names no customer."""
    if not topic or len(topic) > 100:
        raise InvalidRequest("X-Shopify-Topic is missing.")
    if not webhook_id or not _WEBHOOK_ID.match(webhook_id):
        raise InvalidRequest("X-Shopify-Webhook-Id is missing or malformed.")
    if topic not in ENDING_TOPICS:
        return Delivery(topic, webhook_id, None)
    try:
        payload: Any = json.loads(body)
    except ValueError:
        raise InvalidJSON("The webhook body is not JSON.") from None
    if topic == "customers/redact":
        payload = payload.get("customer") if isinstance(payload, dict) else None
    customer_id = customer_gid(payload.get("id")) if isinstance(payload, dict) else None
    if customer_id is None:
        raise InvalidRequest(f"The {topic} payload names no customer id.")
    return Delivery(topic, webhook_id, customer_id)

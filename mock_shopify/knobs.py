"""What the test knobs set: injected failures, delays, drips and redirects, settings, fidelity switches,
the webhook subscription."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mock_shopify.fidelity import Fidelity


@dataclass
class Failure:
    """An injected failure: the next `count` requests answer `status`."""

    count: int
    status: int
    retry_after: int | None = None
    # Which 401 the token endpoint sends (TOKEN_401_KINDS in admin.py); None for other statuses and endpoints.
    error: str | None = None


@dataclass
class Delay:
    count: int
    seconds: float


@dataclass
class Drip:
    """The next `count` answers send their body one byte every `interval` seconds."""

    count: int
    interval: float


@dataclass
class Redirect:
    """Both well-known documents answer `status` with `Location: {to}/.well-known/<name>`."""

    to: str
    status: int


@dataclass
class Subscription:
    url: str
    secret: str = field(repr=False)
    attempts: int = 3
    backoff: float = 0.05
    timeout: float = 5.0  # Shopify waits 5 seconds for an answer
    wrong_secret: bool = False  # sign with another secret: the receiver must refuse every attempt


@dataclass
class Delivery:
    topic: str
    webhook_id: str
    body: str
    statuses: list[int | str] = field(default_factory=list)  # an HTTP status, or the transport error's name

    @property
    def delivered(self) -> bool:
        return any(isinstance(s, int) and 200 <= s < 300 for s in self.statuses)


@dataclass
class Knobs:
    access_token_ttl: int
    code_ttl: int
    id_token_ttl: int
    customer_requests_per_minute: int = 3000
    fail_token: Failure | None = None
    fail_graphql: Failure | None = None
    delay_token: Delay | None = None
    delay_graphql: Delay | None = None
    drip_token: Drip | None = None
    drip_graphql: Drip | None = None
    tamper_next_id_token: str | None = None
    fail_discovery: Failure | None = None
    # Discovery documents wait while this is set, until the hold is released (or the stand-in reset).
    hold_discovery: asyncio.Event | None = None
    # Overrides for fields of the discovery documents (a tampered or custom-domain shop).
    discovery_fields: dict[str, str] = field(default_factory=dict)
    discovery_redirect: Redirect | None = None
    fidelity: Fidelity = field(default_factory=Fidelity)
    webhooks: Subscription | None = None


def take_failure(failure: Failure | None) -> Failure | None:
    """Consume one injected failure, returning it when it applies to this request."""
    if failure is None or failure.count <= 0:
        return None
    failure.count -= 1
    return failure


def take_delay(delay: Delay | None) -> float:
    """Consume one injected delay, returning the seconds to sleep."""
    if delay is None or delay.count <= 0:
        return 0.0
    delay.count -= 1
    return delay.seconds


def take_drip(drip: Drip | None) -> float:
    """Consume one injected drip, returning the seconds between bytes (0: answer at once)."""
    if drip is None or drip.count <= 0:
        return 0.0
    drip.count -= 1
    return drip.interval

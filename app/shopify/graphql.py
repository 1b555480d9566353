"""The Customer Account API's GraphQL endpoint, called with a customer's access token (the hot path).

One pooled aiohttp session per process, set up once: the raw token as `Authorization` (Shopify wants no
"Bearer"), JSON in and out, `Accept-Encoding: identity` (the body is passed to the browser as bytes, so
gzip would arrive labelled as JSON), the BFF's User-Agent, no cookie jar (nothing may carry over between
customers). Shopify's own `x-request-id` comes back as `X-Shopify-Request-Id`, since `X-Request-ID` is
ours. Transport failures map to 502 `upstream_unavailable` and 504 `upstream_timeout`.

aiohttp's connect and read timeouts bound each wait, not the call: an answer that drip-feeds its body
resets the read timeout with every byte. `total_timeout` bounds the whole exchange (connect, send, the
whole body), so one call never holds a request longer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import aiohttp
from prometheus_client import Counter

from app.errors import BFFError, UpstreamTimeout, UpstreamUnavailable
from app.metrics import Metrics

log = logging.getLogger("bff.graphql")

_CUSTOMER_ID_QUERY = b'{"query":"query BffCustomerId { customer { id } }"}'
_CUSTOMER_GID = re.compile(r"^gid://shopify/Customer/[1-9][0-9]{0,19}$")

# Shopify's response headers the browser may see, under the names it sees them.
_PASSED = {"retry-after": b"retry-after", "x-request-id": b"x-shopify-request-id"}


@dataclass(frozen=True, slots=True)
class GraphQLReply:
    """Shopify's answer, passed through as is: status, body bytes and the allowed headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class CustomerAccountAPI:
    """POSTs GraphQL bodies to the shop's Customer Account API; open with `async with`."""

    def __init__(
        self,
        *,
        user_agent: str,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float | None = None,
        metrics: Metrics,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        """`total_timeout` bounds each whole call; unset, it is one connect plus one read timeout.
        `trace_configs`: tracing's (tracing.py) when on; none, the hot path pays for no signal."""
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": user_agent,
        }
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        self._total_timeout = total_timeout if total_timeout is not None else connect_timeout + read_timeout
        self._metrics = metrics
        # The labelled children, looked up once: `.labels()` takes a lock and builds a key on every call.
        self._latency = metrics.upstream_latency.labels("graphql")
        self._proxied: dict[int, Counter] = {}
        self._trace_configs = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CustomerAccountAPI:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=self._trace_configs or None,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def post(self, url: str, body: bytes, *, token: str, accept_language: str | None) -> Awaitable[GraphQLReply]:
        """A browser's GraphQL request, passed through (counted in `bff_graphql_requests_total`)."""
        # `_send`'s coroutine itself, not one that awaits it: a frame fewer resumed on each wakeup.
        return self._send(url, body, token=token, accept_language=accept_language, counted=True)

    async def _send(
        self, url: str, body: bytes, *, token: str, accept_language: str | None, counted: bool = False
    ) -> GraphQLReply:
        assert self._session is not None, "use CustomerAccountAPI inside `async with`"
        started = time.perf_counter()
        headers = {**self._headers, "Authorization": token}
        if accept_language:
            headers["Accept-Language"] = accept_language
        try:
            async with (
                asyncio.timeout(self._total_timeout),
                self._session.post(url, data=body, headers=headers) as upstream,
            ):
                payload = await upstream.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout("The Customer Account API timed out.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable("The Customer Account API is unreachable.") from exc
        status = upstream.status
        if counted:
            self._latency.observe(time.perf_counter() - started)
            counter = self._proxied.get(status)
            if counter is None:  # one child per status code seen: a few dozen at most
                counter = self._proxied[status] = self._metrics.proxied.labels(str(status))
            counter.inc()
        got = upstream.headers
        passed = [(ours, got[theirs].encode("latin-1")) for theirs, ours in _PASSED.items() if theirs in got]
        passed.append((b"content-type", got.get("content-type", "application/json").encode("latin-1")))
        return GraphQLReply(status, payload, passed)

    async def customer_id(self, url: str, *, token: str) -> str | None:
        """The signed-in customer's `gid://shopify/Customer/<n>` (login keeps it: webhooks name customers by
        it); None when Shopify does not say, so the login goes on without it."""
        try:
            reply = await self._send(url, _CUSTOMER_ID_QUERY, token=token, accept_language=None)
            found = json.loads(reply.body)["data"]["customer"]["id"] if reply.status == 200 else None
        except (BFFError, ValueError, KeyError, TypeError) as exc:
            log.warning("the customer's id could not be fetched at login (%s)", type(exc).__name__)
            return None
        if not isinstance(found, str) or not _CUSTOMER_GID.match(found):
            log.warning("the customer's id could not be fetched at login (HTTP %d)", reply.status)
            return None
        return found

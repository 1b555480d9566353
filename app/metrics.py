"""Prometheus metrics, one registry per app so several apps in one process (tests) stay apart.

Several workers in one container (BFF_WORKERS > 1) each count in their own process, and a scrape reaches one
of them. So `python -m app serve` then sets PROMETHEUS_MULTIPROC_DIR (app/__main__.py), which puts
prometheus_client in its multiprocess mode: every process writes its values to files in that directory, and
whichever worker answers a scrape reads them all and adds them up. Counters and histograms add up as they
should; a Gauge added here must say how (`multiprocess_mode="livesum"` for a count of things in progress,
`"max"` or `"mostrecent"` for one value every process sees the same), as the default lists one series per pid.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Every metric the BFF exports, named `bff_*`. `registry` is what a scrape reads: this process's
    metrics, or in multiprocess mode (PROMETHEUS_MULTIPROC_DIR set) the sum over every process."""

    def __init__(self) -> None:
        r = CollectorRegistry(auto_describe=True)
        self.registry = r
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.multiprocess = bool(directory)
        if directory:
            # prometheus_client's rule: the registry a scrape reads holds the collector only, or this process's
            # values would be listed beside the sum that already holds them.
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        self.logins = Counter("bff_logins_total", "Logins started, by outcome.", ["outcome"], registry=r)
        self.callbacks = Counter("bff_callbacks_total", "Login callbacks, by outcome.", ["outcome"], registry=r)
        self.refreshes = Counter("bff_refreshes_total", "Token refreshes, by outcome.", ["outcome"], registry=r)
        self.refresh_waits = Counter(
            "bff_refresh_lock_waits_total", "Requests that waited for another process's refresh.", registry=r
        )
        self.proxied = Counter(
            "bff_graphql_requests_total", "Proxied GraphQL requests, by upstream status.", ["status"], registry=r
        )
        self.upstream_latency = Histogram(
            "bff_upstream_latency_seconds",
            "Latency of calls to Shopify, by endpoint.",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.cart_updates = Counter(
            "bff_cart_buyer_identity_updates_total",
            "Cart buyer-identity updates sent to the Storefront API, by purpose and outcome.",
            ["purpose", "outcome"],
            registry=r,
        )
        self.redis_errors = Counter("bff_redis_errors_total", "Redis calls that failed.", registry=r)
        self.sessions_created = Counter("bff_sessions_created_total", "Sessions created at login.", registry=r)
        self.sessions_ended = Counter("bff_sessions_ended_total", "Sessions ended, by reason.", ["reason"], registry=r)
        self.previous_credential = Counter(
            "bff_previous_credential_uses_total",
            "Token calls made with the previous Shopify credential; revoke it once this stops moving.",
            registry=r,
        )
        self.token_misconfigured = Counter(
            "bff_token_endpoint_misconfigured_total",
            "Token calls Shopify refused because of the BFF's settings, by Shopify's reason "
            "(invalid_client, unauthorized_client, invalid_token).",
            ["reason"],
            registry=r,
        )
        self.webhooks = Counter(
            "bff_webhooks_total",
            "Shopify webhook deliveries, by what they did (customers_delete, customers_redact, replayed, "
            "acknowledged, ignored).",
            ["outcome"],
            registry=r,
        )
        self.records_reencrypted = Counter(
            "bff_records_reencrypted_total",
            "Session records read under an older token encryption key and rewritten under the first.",
            registry=r,
        )
        self.rejected = Counter(
            "bff_requests_rejected_total", "Requests refused before reaching Shopify, by code.", ["code"], registry=r
        )

    def count_rejection(self, code: str) -> None:
        """One error answered to a client, by its stable code; Redis outages are also counted apart."""
        self.rejected.labels(code).inc()
        if code == "session_store_unavailable":
            self.redis_errors.inc()

    def render(self) -> bytes:
        """The text a scrape gets, from `registry`."""
        return generate_latest(self.registry)

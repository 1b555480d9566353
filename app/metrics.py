"""Prometheus metrics, one registry per app so several apps in one process (tests) stay apart.

Several workers in one container (BFF_WORKERS > 1) each count in their own process, and a scrape reaches one
of them. So `python -m app serve` then sets PROMETHEUS_MULTIPROC_DIR (app/__main__.py), which puts
prometheus_client in its multiprocess mode: every process writes its values to files in that directory, and
whichever worker answers a scrape reads them all and adds them up. Counters and histograms add up as they
should; a Gauge added here must say how (`multiprocess_mode="livesum"` for a count of things in progress,
`"max"` or `"mostrecent"` for one value every process sees the same), as the default lists one series per pid.

A deployment serving several shops builds its metrics with `Metrics.for_shops(shop_ids)`: one registry whose
families all lead with a `shop` label (a family with no labels of its own is labelled by shop only), and one view
per configured shop that writes that shop's series only, so the call sites are the same in both modes and a
`shop` value is never anything but a configured id. `bff_unknown_shop_requests_total`, for requests whose host
names no configured shop, has no `shop` label and is the same counter in every view. A single-shop deployment
keeps `Metrics()`: the same names and labels as before shops existed, no `shop` anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_Child = TypeVar("_Child", Counter, Histogram)
_Child_co = TypeVar("_Child_co", covariant=True)


class Family(Protocol[_Child_co]):
    """A labelled family as the call sites use it: a prometheus family itself, or one shop's part of one."""

    def labels(self, *labelvalues: str) -> _Child_co: ...


class ShopFamily(Generic[_Child]):
    """One shop's part of a family labelled (shop, ...): `labels(*rest)` is the real child for (shop, *rest),
    which a caller may keep and count on directly."""

    __slots__ = ("_children", "_family", "_shop")

    def __init__(self, family: _Child, shop: str) -> None:
        self._family: _Child = family
        self._shop: str = shop
        # The family's own lookup validates and locks each time; the few label values a call site uses are
        # resolved once here, so a shop view's `.labels(...)` costs no more than a single-shop one.
        self._children: dict[tuple[str, ...], _Child] = {}

    def labels(self, *labelvalues: str) -> _Child:
        """The child counting (this shop, *labelvalues)."""
        child = self._children.get(labelvalues)
        if child is None:
            child = self._children[labelvalues] = self._family.labels(self._shop, *labelvalues)
        return child


class _Families:
    """Every `bff_*` family once, in `registry`, each led by `lead` labels (`["shop"]` or none)."""

    def __init__(self, registry: CollectorRegistry, lead: list[str]) -> None:
        r = registry
        self.logins = Counter("bff_logins_total", "Logins started, by outcome.", [*lead, "outcome"], registry=r)
        self.callbacks = Counter("bff_callbacks_total", "Login callbacks, by outcome.", [*lead, "outcome"], registry=r)
        self.refreshes = Counter("bff_refreshes_total", "Token refreshes, by outcome.", [*lead, "outcome"], registry=r)
        self.refresh_waits = Counter(
            "bff_refresh_lock_waits_total", "Requests that waited for another process's refresh.", lead, registry=r
        )
        self.proxied = Counter(
            "bff_graphql_requests_total",
            "Proxied GraphQL requests, by upstream status.",
            [*lead, "status"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "bff_upstream_latency_seconds",
            "Latency of calls to Shopify, by endpoint.",
            [*lead, "endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.cart_updates = Counter(
            "bff_cart_buyer_identity_updates_total",
            "Cart buyer-identity updates sent to the Storefront API, by purpose and outcome.",
            [*lead, "purpose", "outcome"],
            registry=r,
        )
        self.redis_errors = Counter("bff_redis_errors_total", "Redis calls that failed.", lead, registry=r)
        self.sessions_created = Counter("bff_sessions_created_total", "Sessions created at login.", lead, registry=r)
        self.sessions_ended = Counter(
            "bff_sessions_ended_total", "Sessions ended, by reason.", [*lead, "reason"], registry=r
        )
        self.previous_credential = Counter(
            "bff_previous_credential_uses_total",
            "Token calls made with the previous Shopify credential; revoke it once this stops moving.",
            lead,
            registry=r,
        )
        self.token_misconfigured = Counter(
            "bff_token_endpoint_misconfigured_total",
            "Token calls Shopify refused because of the BFF's settings, by Shopify's reason "
            "(invalid_client, unauthorized_client, invalid_token).",
            [*lead, "reason"],
            registry=r,
        )
        self.webhooks = Counter(
            "bff_webhooks_total",
            "Shopify webhook deliveries, by what they did (customers_delete, customers_redact, replayed, "
            "acknowledged, ignored).",
            [*lead, "outcome"],
            registry=r,
        )
        self.records_reencrypted = Counter(
            "bff_records_reencrypted_total",
            "Session records read under an older token encryption key and rewritten under the first.",
            lead,
            registry=r,
        )
        self.rejected = Counter(
            "bff_requests_rejected_total",
            "Requests refused before reaching Shopify, by code.",
            [*lead, "code"],
            registry=r,
        )
        # Deployment-level whatever `lead` is: an unknown host names no shop to label it with.
        self.unknown_shop_requests = Counter(
            "bff_unknown_shop_requests_total", "Requests whose host names no configured shop.", registry=r
        )


def _registries() -> tuple[CollectorRegistry, CollectorRegistry, bool]:
    """(where the families live, what a scrape reads, whether in multiprocess mode)."""
    families = CollectorRegistry(auto_describe=True)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return families, families, False
    # prometheus_client's rule: the registry a scrape reads holds the collector only, or this process's values
    # would be listed beside the sum that already holds them.
    scraped = CollectorRegistry()
    MultiProcessCollector(scraped, path=directory)  # type: ignore[no-untyped-call]
    return families, scraped, True


def _part(family: _Child, shop: str | None) -> Family[_Child]:
    """A labelled family, or `shop`'s part of it."""
    return family if shop is None else ShopFamily(family, shop)


def _own(counter: Counter, shop: str | None) -> Counter:
    """A counter with no labels of its own, or `shop`'s child of it: made now, so every shop's series is listed
    (at 0) from the first scrape, as an unlabelled counter is."""
    return counter if shop is None else counter.labels(shop)


class Metrics:
    """Every metric the BFF exports, named `bff_*`. `registry` is what a scrape reads: this process's
    metrics, or in multiprocess mode (PROMETHEUS_MULTIPROC_DIR set) the sum over every process.

    `Metrics()` is a single-shop deployment's (no `shop` label, `shop` None); `Metrics.for_shops(ids)` gives a
    multi-shop deployment's, one view per shop that writes its `shop` id on every series it counts."""

    registry: CollectorRegistry
    multiprocess: bool
    shop: str | None
    logins: Family[Counter]
    callbacks: Family[Counter]
    refreshes: Family[Counter]
    refresh_waits: Counter
    proxied: Family[Counter]
    upstream_latency: Family[Histogram]
    cart_updates: Family[Counter]
    redis_errors: Counter
    sessions_created: Counter
    sessions_ended: Family[Counter]
    previous_credential: Counter
    token_misconfigured: Family[Counter]
    webhooks: Family[Counter]
    records_reencrypted: Counter
    rejected: Family[Counter]
    unknown_shop_requests: Counter

    def __init__(self) -> None:
        families, registry, multiprocess = _registries()
        self._bind(_Families(families, []), None, registry, multiprocess)

    @classmethod
    def for_shops(cls, shop_ids: Sequence[str]) -> dict[str, Metrics]:
        """A multi-shop deployment's metrics: one registry, every family led by a `shop` label, and for each
        id the view that writes that shop's series. Every view's `registry` and `render()` are the whole
        deployment's."""
        if not shop_ids:
            raise ValueError("Metrics.for_shops needs at least one shop id")
        if len(set(shop_ids)) != len(shop_ids):
            raise ValueError(f"Metrics.for_shops got a shop id twice: {list(shop_ids)}")
        families, registry, multiprocess = _registries()
        shared = _Families(families, ["shop"])
        views = {}
        for shop in shop_ids:
            view = cls.__new__(cls)  # not __init__, which builds a single-shop set of families of its own
            view._bind(shared, shop, registry, multiprocess)
            views[shop] = view
        return views

    def _bind(self, f: _Families, shop: str | None, registry: CollectorRegistry, multiprocess: bool) -> None:
        """Write to `f` as is (`shop` None, `f` unlabelled by shop) or to `shop`'s series of it."""
        self.registry, self.multiprocess, self.shop = registry, multiprocess, shop
        self.logins = _part(f.logins, shop)
        self.callbacks = _part(f.callbacks, shop)
        self.refreshes = _part(f.refreshes, shop)
        self.refresh_waits = _own(f.refresh_waits, shop)
        self.proxied = _part(f.proxied, shop)
        self.upstream_latency = _part(f.upstream_latency, shop)
        self.cart_updates = _part(f.cart_updates, shop)
        self.redis_errors = _own(f.redis_errors, shop)
        self.sessions_created = _own(f.sessions_created, shop)
        self.sessions_ended = _part(f.sessions_ended, shop)
        self.previous_credential = _own(f.previous_credential, shop)
        self.token_misconfigured = _part(f.token_misconfigured, shop)
        self.webhooks = _part(f.webhooks, shop)
        self.records_reencrypted = _own(f.records_reencrypted, shop)
        self.rejected = _part(f.rejected, shop)
        self.unknown_shop_requests = f.unknown_shop_requests

    def count_rejection(self, code: str) -> None:
        """One error answered to a client, by its stable code; Redis outages are also counted apart."""
        self.rejected.labels(code).inc()
        if code == "session_store_unavailable":
            self.redis_errors.inc()

    def render(self) -> bytes:
        """The text a scrape gets, from `registry`."""
        return generate_latest(self.registry)

"""Metrics of a multi-shop deployment (`Metrics.for_shops`): every series carries its shop, one shop's counts
never show under another, and a single-shop `Metrics()` renders as it did before shops existed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import Metrics
from tests.helpers import python, run

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Today's single-shop families (app/metrics.py before issue 17), each sample name with its label names, plus
# the deployment-level unknown-shop counter issue 17 adds (it has no labels, so adds no `shop`).
SINGLE_SHOP_SAMPLES: dict[str, frozenset[str]] = {
    "bff_logins_total": frozenset({"outcome"}),
    "bff_callbacks_total": frozenset({"outcome"}),
    "bff_refreshes_total": frozenset({"outcome"}),
    "bff_refresh_lock_waits_total": frozenset(),
    "bff_graphql_requests_total": frozenset({"status"}),
    "bff_upstream_latency_seconds_bucket": frozenset({"endpoint", "le"}),
    "bff_upstream_latency_seconds_count": frozenset({"endpoint"}),
    "bff_upstream_latency_seconds_sum": frozenset({"endpoint"}),
    "bff_cart_buyer_identity_updates_total": frozenset({"purpose", "outcome"}),
    "bff_redis_errors_total": frozenset(),
    "bff_sessions_created_total": frozenset(),
    "bff_sessions_ended_total": frozenset({"reason"}),
    "bff_previous_credential_uses_total": frozenset(),
    "bff_token_endpoint_misconfigured_total": frozenset({"reason"}),
    "bff_webhooks_total": frozenset({"outcome"}),
    "bff_records_reencrypted_total": frozenset(),
    "bff_requests_rejected_total": frozenset({"code"}),
    "bff_unknown_shop_requests_total": frozenset(),
}


def count_everything(metrics: Metrics) -> None:
    """Move every family once, through the calls app/ makes (a kept child included)."""
    metrics.logins.labels("ok").inc()
    metrics.callbacks.labels("ok").inc()
    metrics.refreshes.labels("ok").inc()
    metrics.refresh_waits.inc()
    metrics.proxied.labels("200").inc()
    latency = metrics.upstream_latency.labels("graphql")  # app/shopify/graphql.py keeps it
    latency.observe(0.02)
    metrics.cart_updates.labels("login", "ok").inc()
    metrics.sessions_created.inc()
    metrics.sessions_ended.labels("logout_everywhere").inc(3)
    metrics.previous_credential.inc()
    metrics.token_misconfigured.labels("invalid_client").inc()
    metrics.webhooks.labels("replayed").inc()
    metrics.records_reencrypted.inc()
    metrics.count_rejection("session_store_unavailable")  # also a Redis error


def series(text: str) -> Series:
    """Every sample of a scrape but the `_created` timestamps: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def shop_of(labels: frozenset[tuple[str, str]]) -> str | None:
    return dict(labels).get("shop")


def test_single_shop_metrics_render_with_the_names_and_labels_of_before() -> None:
    metrics = Metrics()
    count_everything(metrics)
    scraped = series(metrics.render().decode())
    found: dict[str, frozenset[str]] = {}
    for name, labels in scraped:
        found.setdefault(name, frozenset(key for key, _ in labels))
        assert found[name] == frozenset(key for key, _ in labels), name
    assert found == SINGLE_SHOP_SAMPLES


def test_every_series_of_a_shop_view_carries_its_shop() -> None:
    views = Metrics.for_shops(["alpha", "beta"])
    count_everything(views["alpha"])
    scraped = series(views["alpha"].render().decode())
    for name, labels in scraped:
        if name != "bff_unknown_shop_requests_total":
            assert shop_of(labels) in {"alpha", "beta"}, (name, labels)
    # Each family moved once in alpha's series, with the labels of a single shop's plus `shop`.
    moved = {(name, frozenset(key for key, _ in labels)) for (name, labels), value in scraped.items() if value}
    expected = {
        (name, keys | {"shop"})
        for name, keys in SINGLE_SHOP_SAMPLES.items()
        if name != "bff_unknown_shop_requests_total"
    }
    assert moved == expected


def test_a_shops_counts_never_appear_under_another_shop() -> None:
    views = Metrics.for_shops(["alpha", "beta", "gamma"])
    count_everything(views["beta"])
    scraped = series(views["gamma"].render().decode())
    elsewhere = {key: value for key, value in scraped.items() if value and shop_of(key[1]) != "beta"}
    assert elsewhere == {}


def test_each_shop_counts_its_own_series_of_one_family() -> None:
    views = Metrics.for_shops(["alpha", "beta"])
    views["alpha"].logins.labels("redirected").inc()
    views["beta"].logins.labels("redirected").inc(2)
    views["beta"].redis_errors.inc(5)
    scraped = series(views["alpha"].render().decode())
    assert {
        shop: (
            scraped[("bff_logins_total", frozenset({("shop", shop), ("outcome", "redirected")}))],
            scraped[("bff_redis_errors_total", frozenset({("shop", shop)}))],
        )
        for shop in ("alpha", "beta")
    } == {"alpha": (1.0, 0.0), "beta": (2.0, 5.0)}


def test_every_view_renders_the_whole_deployment() -> None:
    views = Metrics.for_shops(["alpha", "beta"])
    views["alpha"].logins.labels("ok").inc()
    views["beta"].webhooks.labels("ignored").inc()
    assert views["alpha"].render() == views["beta"].render()


def test_unknown_shop_requests_are_one_deployment_counter_without_a_shop() -> None:
    views = Metrics.for_shops(["alpha", "beta"])
    views["alpha"].unknown_shop_requests.inc()
    views["beta"].unknown_shop_requests.inc()
    scraped = series(views["alpha"].render().decode())
    assert {key: value for key, value in scraped.items() if key[0] == "bff_unknown_shop_requests_total"} == {
        ("bff_unknown_shop_requests_total", frozenset()): 2.0
    }


def test_a_single_shop_deployment_counts_unknown_shop_requests_too() -> None:
    metrics = Metrics()
    metrics.unknown_shop_requests.inc()
    assert series(metrics.render().decode())[("bff_unknown_shop_requests_total", frozenset())] == 1.0


@pytest.mark.parametrize("shop_ids", [[], ["alpha", "beta", "alpha"]], ids=["none", "twice"])
def test_a_shop_set_must_be_nonempty_and_distinct(shop_ids: list[str]) -> None:
    with pytest.raises(ValueError, match=r"Metrics\.for_shops"):
        Metrics.for_shops(shop_ids)


# One process of a multiprocess deployment: counts for a shop, or renders what every process counted.
WORKER = textwrap.dedent(
    """
    import sys
    from app.metrics import Metrics

    views = Metrics.for_shops(["alpha", "beta"])
    if sys.argv[1] == "scrape":
        sys.stdout.write(views["alpha"].render().decode())
    else:
        views[sys.argv[1]].logins.labels("ok").inc()
        views[sys.argv[1]].redis_errors.inc()
        views[sys.argv[1]].unknown_shop_requests.inc()
    """
)


def test_shop_series_add_up_over_processes_in_multiprocess_mode(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for shop in ("alpha", "beta", "beta"):
        counted = run(python("-c", WORKER, shop), cwd=tmp_path, env=env)
        assert counted.returncode == 0, counted.stderr
    scrape = run(python("-c", WORKER, "scrape"), cwd=tmp_path, env=env)
    assert scrape.returncode == 0, scrape.stderr
    scraped = series(scrape.stdout)
    assert {
        "logins": {
            shop: scraped[("bff_logins_total", frozenset({("shop", shop), ("outcome", "ok")}))]
            for shop in ("alpha", "beta")
        },
        "redis_errors": {
            shop: scraped[("bff_redis_errors_total", frozenset({("shop", shop)}))] for shop in ("alpha", "beta")
        },
        "unknown": scraped[("bff_unknown_shop_requests_total", frozenset())],
    } == {"logins": {"alpha": 1.0, "beta": 2.0}, "redis_errors": {"alpha": 1.0, "beta": 2.0}, "unknown": 3.0}

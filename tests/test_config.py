"""Settings refuse unsafe or broken values with a message that names the variable."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.helpers import ROOT, ConfigError, Settings, configure_logging, create_app, load_settings, python, run

GOOD = {
    "shopify_shop_domain": "shop.example.com",
    "shopify_client_id": "client",
    "shopify_client_secret": "a-real-looking-client-secret",
    "bff_public_url": "https://bff.example.com",
    "bff_allowed_origins": "https://www.example.com, https://example.com",
    "bff_post_logout_redirect_url": "https://www.example.com/",
    "bff_session_secret": "Zq3v9LwX1pT7mN4bR8cY2dK6hF0jG5sA",
}


def test_good_settings_load() -> None:
    settings = load_settings(**GOOD)
    assert settings.shop_origin == "https://shop.example.com"
    assert settings.redirect_uri == "https://bff.example.com/auth/callback"
    assert settings.secure_cookies
    assert settings.bff_allowed_origins == ("https://www.example.com", "https://example.com")
    assert "Zq3v9" not in repr(settings)


def test_no_secret_reaches_the_settings_repr() -> None:
    settings = load_settings(**GOOD, redis_url="redis://:hunter2-redis-password@redis.internal:6379/0")
    assert "hunter2" not in repr(settings) and "a-real-looking" not in repr(settings)


def test_an_upper_case_https_public_url_still_gets_secure_cookies() -> None:
    assert load_settings(**{**GOOD, "bff_public_url": "HTTPS://bff.example.com"}).secure_cookies


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"bff_session_secret": "short"}, "BFF_SESSION_SECRET"),
        ({"bff_session_secret": "changethis-changethis-changethis-1"}, "BFF_SESSION_SECRET"),
        ({"bff_public_url": "http://bff.example.com"}, "BFF_PUBLIC_URL"),
        ({"bff_public_url": "bff.example.com"}, "BFF_PUBLIC_URL"),
        ({"bff_allowed_origins": "*"}, "BFF_ALLOWED_ORIGINS"),
        ({"bff_allowed_origins": "http://www.example.com"}, "BFF_ALLOWED_ORIGINS"),
        ({"bff_allowed_origins": "https://www.example.com/path"}, "BFF_ALLOWED_ORIGINS"),
        ({"bff_post_logout_redirect_url": "javascript:alert(1)"}, "BFF_POST_LOGOUT_REDIRECT_URL"),
        ({"shopify_shop_domain": "http://shop.example.com"}, "SHOPIFY_SHOP_DOMAIN"),
        ({"shopify_shop_domain": "not a domain"}, "SHOPIFY_SHOP_DOMAIN"),
        ({"shopify_api_version": "latest"}, "SHOPIFY_API_VERSION"),
        ({"shopify_scopes": "email"}, "SHOPIFY_SCOPES"),
        ({"shopify_client_secret": ""}, "SHOPIFY_CLIENT_SECRET"),
        ({"bff_session_idle_timeout": "10"}, "BFF_SESSION_IDLE_TIMEOUT"),
        ({"bff_session_secret": "Zq3v9LwX1pT7mN4bR8cY2dK6hF0jG5sA,short"}, "BFF_SESSION_SECRET"),
        ({"bff_token_encryption_keys": "not-base64-32-bytes"}, "BFF_TOKEN_ENCRYPTION_KEYS"),
        ({"bff_rate_limit_login": "lots"}, "BFF_RATE_LIMIT_LOGIN"),
        ({"bff_rate_limit_graphql": "10 per fortnight"}, "BFF_RATE_LIMIT_GRAPHQL"),
        ({"bff_rate_limit_graphql_customer": "lots"}, "BFF_RATE_LIMIT_GRAPHQL_CUSTOMER"),
        ({"bff_discovery_ttl": "0"}, "BFF_DISCOVERY_TTL"),
        ({"bff_trusted_proxies": "10.0.0.0/8,proxy.internal"}, "BFF_TRUSTED_PROXIES"),
        ({"shopify_previous_client_id": "old-client"}, "SHOPIFY_PREVIOUS_CLIENT_SECRET"),
        ({"bff_metrics_listener": "everywhere"}, "BFF_METRICS_LISTENER"),
        ({"bff_metrics_listener": "127.0.0.1:99999"}, "BFF_METRICS_LISTENER"),
        ({"shopify_client_secret": "s3cret with spaces"}, "SHOPIFY_CLIENT_SECRET"),
        ({"shopify_client_id": "client:id"}, "SHOPIFY_CLIENT_ID"),
        ({"shopify_client_secret": "sécret-sécret"}, "SHOPIFY_CLIENT_SECRET"),
        ({"bff_session_secret": "abcdefgh" * 4}, "BFF_SESSION_SECRET"),
        ({"bff_session_secret": "12345678" * 5}, "BFF_SESSION_SECRET"),
        ({"bff_session_secret": "abcdefghijklmnopqrstuvwxyz012345"}, "BFF_SESSION_SECRET"),
        ({"bff_session_secret": "a" * 24 + "bcdefgh2"}, "BFF_SESSION_SECRET"),
        ({"bff_token_encryption_keys": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "BFF_TOKEN_ENCRYPTION_KEYS"),
    ],
)
def test_bad_settings_name_the_variable(override: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**{**GOOD, **override})
    assert variable in str(info.value)


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(ConfigError) as info:
        load_settings(shopify_client_id="x")
    message = str(info.value)
    for variable in ("SHOPIFY_SHOP_DOMAIN", "BFF_PUBLIC_URL", "BFF_SESSION_SECRET", "SHOPIFY_CLIENT_SECRET"):
        assert variable in message


def test_loopback_http_is_allowed_for_development() -> None:
    settings = load_settings(
        **{
            **GOOD,
            "shopify_shop_domain": "http://127.0.0.1:9000",
            "bff_public_url": "http://localhost:8000",
            "bff_allowed_origins": "http://localhost:3000,http://[::1]:3000",
        }
    )
    assert settings.shop_origin == "http://127.0.0.1:9000"
    assert not settings.secure_cookies


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_random_secrets_of_the_minimum_length_are_accepted() -> None:
    # The weak-secret checks must never refuse what `openssl rand -hex 16` or `token_urlsafe` produce.
    for _ in range(300):
        for secret in (secrets.token_hex(16), secrets.token_urlsafe(24)):
            load_settings(**{**GOOD, "bff_session_secret": secret})


def test_doctor_never_prints_a_redis_password(tmp_path: Path) -> None:
    env = {
        **{name.upper(): value for name, value in GOOD.items()},
        "SHOPIFY_SHOP_DOMAIN": "http://127.0.0.1:9",  # nothing listens: doctor reports it and goes on
        "REDIS_URL": "redis://:userinfo-pw-123@127.0.0.1:9/0?password=query-pw-456",
    }
    done = run(python("-m", "app", "doctor"), cwd=tmp_path, env=env, inherit_env=False)
    assert "Redis" in done.stdout and "REDIS_URL" in done.stdout
    assert "userinfo-pw-123" not in done.stdout + done.stderr
    assert "query-pw-456" not in done.stdout + done.stderr


def test_dev_mode_says_so_loudly_at_startup(capsys: pytest.CaptureFixture[str]) -> None:
    create_app(load_settings(**{**GOOD, "bff_dev_mode": True}))
    assert "BFF_DEV_MODE is on" in capsys.readouterr().out
    configure_logging("warning", "json")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BFF_SESSION_IDLE_TIMEOUT": "9", "SHOPIFY_CLIENT_ID": ""}, ("BFF_SESSION_IDLE_TIMEOUT", "SHOPIFY_CLIENT_ID")),
        ({"BFF_SESSION_SECRET": "changeme"}, ("BFF_SESSION_SECRET",)),
        ({"BFF_PORT": "eighty"}, ("BFF_PORT",)),
        ({"BFF_WORKERS": "-2"}, ("BFF_WORKERS",)),
    ],
)
def test_serve_with_bad_settings_prints_only_the_problems_and_exits_2(
    tmp_path: Path, env: dict[str, str], named: tuple[str, ...]
) -> None:
    settings = {name.upper(): value for name, value in GOOD.items()}
    done = run(python("-m", "app", "serve"), cwd=tmp_path, env={**settings, **env}, inherit_env=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("invalid configuration:")
    assert all(name in done.stderr for name in named)

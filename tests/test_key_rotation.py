"""Key rotation without logouts: a session that is only read during the overlap is rewritten under the new
token encryption key, so dropping the old key afterwards ends nobody's session; the metric and `doctor`
say when nothing is left under the old key; the rewrite never undoes a logout or a refresh."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import redis

from app.crypto import TokenCipher
from app.store.sessions import Session, SessionStore, new_session_id, session_key
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    LOGOUT_URL,
    STOREFRONT,
    Clock,
    RedisConnections,
    Shop,
    gql,
    login,
    make_settings,
    python,
    run,
    running_bff,
)


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@asynccontextmanager
async def deployment(
    shop: Shop, redis_url: str, cookie: str | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """One BFF 'deployment' with these settings, /metrics public; a browser holding `cookie`, if given."""
    settings = make_settings(shop.url, redis_url, bff_metrics_listener="public", **overrides)
    async with running_bff(settings, clock=Clock()) as client:
        if cookie is not None:
            client.cookies.set("bff_session", cookie, domain="127.0.0.1", path="/")
        yield client


async def only_read(client: httpx.AsyncClient) -> None:
    """Use the session the way most of an overlap does: reads, with a healthy token (no refresh)."""
    assert (await client.get("/auth/session")).json()["authenticated"] is True
    assert (await gql(client)).status_code == 200
    assert (await client.get("/auth/session")).json()["authenticated"] is True


def reencrypted(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("bff_records_reencrypted_total "):
            return float(line.split()[-1])
    return 0.0


async def test_a_session_only_read_survives_dropping_the_old_encryption_key(shop: Shop, redis_url: str) -> None:
    k1, k2 = _key(), _key()
    async with deployment(shop, redis_url, bff_token_encryption_keys=k1) as first:
        await login(first)
        cookie = first.cookies["bff_session"]
    async with deployment(shop, redis_url, cookie, bff_token_encryption_keys=f"{k2},{k1}") as rotating:
        await only_read(rotating)
        rewrites = reencrypted((await rotating.get("/metrics")).text)
    assert (await shop.stats())["grants"]["refresh_token"] == 0  # nothing but reads rewrote it
    async with deployment(shop, redis_url, cookie, bff_token_encryption_keys=k2) as second:
        assert (await second.get("/auth/session")).json()["authenticated"] is True
        assert (await gql(second)).status_code == 200
    assert rewrites == 1  # at the first read; later reads found it under the first key


async def test_a_session_only_read_survives_rotating_the_session_secret(shop: Shop, redis_url: str) -> None:
    # The default: no BFF_TOKEN_ENCRYPTION_KEYS, so the encryption keys derive from BFF_SESSION_SECRET.
    s1, s2 = secrets.token_hex(32), secrets.token_hex(32)
    derived: dict[str, Any] = {"bff_token_encryption_keys": None}
    async with deployment(shop, redis_url, bff_session_secret=s1, **derived) as first:
        await login(first)
        cookie = first.cookies["bff_session"]
    async with deployment(shop, redis_url, cookie, bff_session_secret=f"{s2},{s1}", **derived) as rotating:
        await only_read(rotating)
        rewrites = reencrypted((await rotating.get("/metrics")).text)
        cookie = rotating.cookies["bff_session"]  # re-signed with s2 at the first read
    assert (await shop.stats())["grants"]["refresh_token"] == 0
    async with deployment(shop, redis_url, cookie, bff_session_secret=s2, **derived) as second:
        assert (await second.get("/auth/session")).json()["authenticated"] is True
        assert (await gql(second)).status_code == 200
    assert rewrites == 1  # at the first read; later reads found it under the first key


def doctor(shop: Shop, redis_url: str, keys: str, cwd: Path) -> str:
    env = {
        "SHOPIFY_SHOP_DOMAIN": shop.url,
        "SHOPIFY_CLIENT_ID": CLIENT_ID,
        "SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_PUBLIC_URL": BFF_URL,
        "BFF_ALLOWED_ORIGINS": STOREFRONT,
        "BFF_POST_LOGOUT_REDIRECT_URL": LOGOUT_URL,
        "BFF_SESSION_SECRET": secrets.token_hex(32),
        "BFF_TOKEN_ENCRYPTION_KEYS": keys,
        "REDIS_URL": redis_url,
    }
    return run(python("-m", "app", "doctor"), cwd=cwd, env=env).stdout  # this checkout's app, no other settings


async def test_doctor_says_when_no_record_is_left_under_the_old_key(shop: Shop, redis_url: str, tmp_path: Path) -> None:
    k1, k2 = _key(), _key()
    async with deployment(shop, redis_url, bff_token_encryption_keys=k1) as first:
        await login(first)
        cookie = first.cookies["bff_session"]
    # Other tests' sessions share this Redis, under keys listed here neither: only this one is "older".
    before = doctor(shop, redis_url, f"{k2},{k1}", tmp_path)
    assert "wait  1 of " in before and "under an older token encryption key" in before, before
    async with deployment(shop, redis_url, cookie, bff_token_encryption_keys=f"{k2},{k1}") as rotating:
        await only_read(rotating)
    after = doctor(shop, redis_url, f"{k2},{k1}", tmp_path)
    assert "none under an older token encryption key" in after, after


# --- The rewrite is a compare-and-set: a concurrent logout or refresh wins ------------------------------


class Meanwhile(TokenCipher):
    """A cipher that lets another instance act at the one moment a record read under an older key is
    being re-encrypted: after the read, before the rewrite."""

    def __init__(self, keys: list[bytes], act: Callable[[], object]) -> None:
        super().__init__(keys)
        self._act: Callable[[], object] | None = act
        self.acted = False

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        if self._act is not None:
            self._act()
            self._act, self.acted = None, True
        return super().encrypt(plaintext, associated_data)


def _session() -> Session:
    sub = f"gid://shopify/Customer/{secrets.randbelow(10**9)}"
    return Session(
        sid=new_session_id(sub),
        sub=sub,
        claims={},
        access_token="shcat_old",
        access_expires_at=0,
        access_lifetime=3600,
        refresh_token="shcrt_old",
        id_token="",
        credential="",
        created_at=0,
    )


def _refreshed(session: Session) -> Session:
    return replace(session, access_token="shcat_new", refresh_token="shcrt_new")


@asynccontextmanager
async def stores(redis_url: str, *ciphers: TokenCipher) -> AsyncIterator[list[SessionStore]]:
    """One session store per cipher ('instances' with different keys) on one Redis."""
    connections = RedisConnections(redis_url, max_connections=4)
    try:
        yield [SessionStore(connections, c, idle_timeout=3600, absolute_lifetime=7200, prefix="bff:") for c in ciphers]
    finally:
        await connections.aclose()


async def test_a_rewrite_never_brings_back_a_logged_out_session(redis_url: str) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    session = _session()
    key = session_key(session.sid)
    with redis.Redis.from_url(redis_url) as other_instance:
        cipher = Meanwhile([k2, k1], act=lambda: other_instance.delete(key))  # the customer logs out
        async with stores(redis_url, TokenCipher([k1]), cipher) as (old, rotating):
            await old.create(session)
            assert (await rotating.load(session.sid)) is not None  # read just before the logout
            assert cipher.acted
            assert other_instance.get(key) is None  # not re-created by the rewrite
            assert (await rotating.load(session.sid)) is None


async def test_a_rewrite_never_overwrites_a_refresh(redis_url: str) -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    session = _session()
    key = session_key(session.sid)
    with redis.Redis.from_url(redis_url) as other_instance:
        async with stores(redis_url, TokenCipher([k1])) as (old,):
            await old.create(session)
            read = other_instance.get(key)
            # Another instance's refresh, made for real, then set aside to land at the chosen moment.
            assert await old.replace_if_current(_refreshed(session)) is not None
            refreshed = other_instance.get(key)
            other_instance.set(key, read, keepttl=True)

        cipher = Meanwhile([k2, k1], act=lambda: other_instance.set(key, refreshed, keepttl=True))
        async with stores(redis_url, cipher) as (rotating,):
            stale = await rotating.load(session.sid)
            assert stale is not None and stale.access_token == "shcat_old"  # read before the refresh landed
            assert cipher.acted
            assert other_instance.get(key) == refreshed  # the refresh stands
            current = await rotating.load(session.sid)
            assert current is not None and current.access_token == "shcat_new"


async def test_a_refresh_still_lands_after_a_rewrite(redis_url: str) -> None:
    # The other order: a read rewrites the record, then a refresh that began before it completes.
    k1, k2 = os.urandom(32), os.urandom(32)
    session = _session()
    async with stores(redis_url, TokenCipher([k1]), TokenCipher([k2, k1]), TokenCipher([k2])) as (old, rotating, new):
        await old.create(session)
        loaded = await rotating.load(session.sid)  # rewritten under k2; same contents, same generation
        assert loaded is not None
        assert (await new.load(session.sid)) is not None
        assert await rotating.replace_if_current(_refreshed(loaded)) is not None
        current = await new.load(session.sid)
        assert current is not None and current.access_token == "shcat_new"

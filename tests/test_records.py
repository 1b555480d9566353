"""Session records in their compact form (app/store/records.py): every field comes back as it went in, records
written the old way (JSON) still load so a deploy logs nobody out, a damaged record is a logged-out browser and
never a 500, and a session as a real login makes it fits the Redis budget."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from redis import asyncio as aioredis

from app.crypto import TokenCipher
from app.store import records
from app.store.sessions import Session, SessionStore, session_key
from bench.bff import fake_id_token, fake_session
from bench.redis_usage import session_memory
from devkit.redis_server import start_redis
from tests.helpers import EMAIL, RedisConnections, Shop, gql, login, make_settings, running_bff

# What a record held before the compact form, in its order: today's deployments have these in Redis.
OLD_FIELDS = (
    "sub", "claims", "access_token", "access_expires_at", "access_lifetime", "refresh_token", "id_token",
    "credential", "created_at", "customer_id", "user_agent", "carts",
)  # fmt: skip
# The budget: MEMORY USAGE of every key one session makes (record, both customer indexes, both rate-limit
# counters), and the stored value alone. The value's jemalloc size class is the step that matters: today's
# 650 bytes are in the 768-byte class; 762 bytes would still be.
BYTES_PER_SESSION = 1500
RECORD_BYTES = 762


def _full() -> Session:
    """A session with every field set to something other than its default."""
    session = fake_session()
    return dataclasses.replace(
        session,
        claims={**session.claims, "email": "zoë.ångström@example.com"},
        user_agent="Mobile Safari on iOS ✓",
        carts=("gid://shopify/Cart/c1?key=abc", "gid://shopify/Cart/c2?key=def"),
        generation=7,
        ttl_ms=1234,
    )


VARIANTS: dict[str, Callable[[Session], Session]] = {
    "every field set": lambda s: s,
    "defaults left as they are": lambda s: dataclasses.replace(s, customer_id="", user_agent="", carts=()),
    "claims without sub": lambda s: dataclasses.replace(s, claims={"email": EMAIL}),
    "claims with another sub": lambda s: dataclasses.replace(s, claims={"sub": "someone else", "email": EMAIL}),
    "claims with sub not first": lambda s: dataclasses.replace(s, claims={"email": EMAIL, "sub": s.sub}),
    "an ID token not in canonical base64url": lambda s: dataclasses.replace(s, id_token=s.id_token + "="),
    "an ID token that is not a JWT": lambda s: dataclasses.replace(s, id_token="opaque-id-token"),
    "an ID token with a padded segment": lambda s: dataclasses.replace(s, id_token="eyJ9.e30=.AA"),
}


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_every_session_field_survives_the_round_trip(variant: str) -> None:
    session = VARIANTS[variant](_full())
    back = Session(sid=session.sid, generation=7, ttl_ms=1234, **records.decode(records.encode(session)))
    assert back == session
    assert back.claims == session.claims and list(back.claims) == list(session.claims)  # order too
    assert back.carts == session.carts and isinstance(back.carts, tuple)


def test_a_realistic_record_is_compact() -> None:
    session = fake_session()
    assert len(records.encode(session)) < len(_old_record(session)) / 2
    assert fake_id_token(session.sub, "a@example.com").count(".") == 2  # the fake is a JWT, as Shopify's is


def _old_record(session: Session) -> bytes:
    """A record exactly as the BFF wrote it before the compact form."""
    return json.dumps({name: getattr(session, name) for name in OLD_FIELDS}, separators=(",", ":")).encode()


async def _stored(redis_client: aioredis.Redis, sid: str) -> tuple[bytes, bytes, bytes]:
    value = await redis_client.get(session_key(sid))
    assert isinstance(value, bytes)
    deadline, generation, blob = value.split(b":", 2)
    return deadline, generation, blob


async def test_a_session_stored_in_the_old_json_form_stays_logged_in(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(shop.url, redis_url)
    cipher = TokenCipher(settings.token_keys)
    async with running_bff(settings) as client:
        await login(client)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        before = (await client.get("/auth/session")).json()
        deadline, generation, blob = await _stored(redis_client, sid)
        plain = cipher.decrypt(blob, sid.encode())
        assert plain is not None and plain[:1] == bytes([records.VERSION_1])
        # What the previous release left in Redis for this very session.
        old = _old_record(Session(sid=sid, **records.decode(plain)))
        value = b"%s:%s:%s" % (deadline, generation, cipher.encrypt(old, sid.encode()))
        await redis_client.set(session_key(sid), value, keepttl=True)

        after = (await client.get("/auth/session")).json()
        assert before["authenticated"] is True and before["customer"]["email"] == EMAIL
        assert after["authenticated"] is True and after["customer"] == before["customer"]  # the same customer
        assert (await gql(client)).status_code == 200


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "a flipped byte": lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),
    "cut in half": lambda blob: blob[: len(blob) // 2],
    "only the key id": lambda blob: blob[:4],
    "empty": lambda blob: b"",
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
async def test_a_damaged_record_is_a_logged_out_browser_not_a_500(
    damage: str, shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login(client)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        deadline, generation, blob = await _stored(redis_client, sid)
        value = b"%s:%s:%s" % (deadline, generation, DAMAGE[damage](blob))
        await redis_client.set(session_key(sid), value, keepttl=True)

        assert (await client.get("/auth/session")).json() == {"authenticated": False}
        response = await gql(client)
        assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


@asynccontextmanager
async def _private_store() -> AsyncIterator[tuple[SessionStore, aioredis.Redis]]:
    """A store on a Redis of its own: the measurement counts, then flushes, every key in its database."""
    server = start_redis()
    connections = RedisConnections(server.url, max_connections=8)
    try:
        cipher = TokenCipher([os.urandom(32)])
        yield (
            SessionStore(connections, cipher, idle_timeout=7200, absolute_lifetime=30 * 86400, prefix="bff:"),
            (connections.client),
        )
    finally:
        await connections.aclose()
        server.cleanup()


async def test_a_realistic_session_takes_under_1500_bytes_of_redis() -> None:
    async with _private_store() as (store, redis):
        memory = await session_memory(store, redis, sessions=200)
    assert "bff:cid" in memory.by_prefix  # a real login's session: tagged by its customer id, indexed by it
    assert memory.record_bytes <= RECORD_BYTES, memory
    assert memory.bytes_per_session < BYTES_PER_SESSION, memory


async def test_a_record_from_a_newer_release_is_a_logged_out_browser_after_a_rollback(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(shop.url, redis_url)
    cipher = TokenCipher(settings.token_keys)
    async with running_bff(settings) as client:
        await login(client)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        deadline, generation, blob = await _stored(redis_client, sid)
        plain = cipher.decrypt(blob, sid.encode())
        assert plain is not None
        newer = b"\x02" + plain[1:]  # a version this release has never heard of, properly encrypted
        value = b"%s:%s:%s" % (deadline, generation, cipher.encrypt(newer, sid.encode()))
        await redis_client.set(session_key(sid), value, keepttl=True)

        assert (await client.get("/auth/session")).json() == {"authenticated": False}
        response = await gql(client)
        assert response.status_code == 401 and response.json()["error"] == "not_authenticated"
    with pytest.raises(ValueError, match="unknown session record version"):
        records.decode(newer)


async def test_records_decode_what_they_encode_for_the_store(redis_url: str) -> None:
    connections = RedisConnections(redis_url, max_connections=4)
    try:
        store = SessionStore(
            connections, TokenCipher([os.urandom(32)]), idle_timeout=60, absolute_lifetime=600, prefix="bff:"
        )
        session = _full()
        created = await store.create(session)
        loaded = await store.load(session.sid)
        assert loaded == dataclasses.replace(created, generation=0)
        peeked = await store.peek(session.sid)
        assert peeked is not None and peeked.carts == session.carts and peeked.user_agent == session.user_agent
    finally:
        await connections.aclose()

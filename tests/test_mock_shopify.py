"""The Shopify stand-in: as strict as the real shop on OAuth, OIDC and GraphQL, and its knobs work."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette

from devkit.redis_server import free_port
from mock_shopify import MockConfig, create_app
from mock_shopify.__main__ import parse_args
from mock_shopify.customers import customer_number
from mock_shopify.keys import KeyRing
from tests.helpers import Clock, Process, ServerThread, Shop, python, redirect_query

BASE = "https://account.shop.example"
SHOP_ID = "9876543210"
ISSUER = f"https://shopify.com/authentication/{SHOP_ID}"
AUTH = f"/authentication/{SHOP_ID}"
CLIENT_ID = "0d1f9c9e-test-client"
SECRET = "test-secret-one"
REDIRECT = "https://bff.example/auth/callback"
LOGOUT = "https://app.example/"
UA = {"User-Agent": "bff-tests/1.0"}
EMAIL = "ada.lovelace@example.com"
GRAPHQL = "/customer/api/2026-10/graphql"


@pytest.fixture
def mock_config() -> MockConfig:
    return MockConfig(
        base_url=BASE,
        shop_id=SHOP_ID,
        credentials=[(CLIENT_ID, SECRET)],
        redirect_uris=[REDIRECT],
        logout_uris=[LOGOUT, "https://app.example/goodbye"],
    )


@pytest.fixture(scope="module")
def mock_signing_key() -> RSAKey:
    # One RSA key for the module: generating one per test would dominate the run time.
    return KeyRing.generate_key()


@pytest.fixture
def mock_app(mock_config: MockConfig, mock_signing_key: RSAKey) -> Starlette:
    return create_app(mock_config, signing_key=mock_signing_key)


@pytest.fixture
async def mock_client(mock_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mock_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str | None = None, **overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid email customer-account-api:full",
        "state": "state-123",
        "nonce": "nonce-456",
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return {k: v for k, v in (params | overrides).items() if v != ""}


async def login(client: httpx.AsyncClient, email: str = EMAIL, **overrides: str) -> tuple[str, str]:
    """Sign in on the hosted page; returns (code, verifier)."""
    verifier, challenge = pkce()
    response = await client.post(
        f"{AUTH}/oauth/authorize", data={**authorize_params(challenge, **overrides), "email": email}
    )
    return redirect_query(response)["code"], verifier


async def exchange(
    client: httpx.AsyncClient,
    code: str,
    verifier: str | None,
    *,
    redirect_uri: str = REDIRECT,
    secret: str = SECRET,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return await client.post(f"{AUTH}/oauth/token", data=data, auth=(CLIENT_ID, secret), headers=UA)


async def tokens(client: httpx.AsyncClient, email: str = EMAIL) -> dict[str, Any]:
    code, verifier = await login(client, email)
    response = await exchange(client, code, verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx.AsyncClient, refresh_token: str, *, secret: str = SECRET) -> httpx.Response:
    data = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": refresh_token}
    return await client.post(f"{AUTH}/oauth/token", data=data, auth=(CLIENT_ID, secret), headers=UA)


async def gql(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"query": query, "variables": variables or {}}
    return await client.post(GRAPHQL, json=body, headers={"Authorization": token, **UA})


async def gql_data(
    client: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = (await gql(client, token, query, variables)).json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def default_address_id(client: httpx.AsyncClient, token: str) -> str:
    data = await gql_data(client, token, "{ customer { defaultAddress { id } } }")
    return str(data["customer"]["defaultAddress"]["id"])


async def verify_id_token(client: httpx.AsyncClient, id_token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set((await client.get(f"{AUTH}/.well-known/jwks.json")).json())
    claims: dict[str, Any] = dict(jwt.decode(id_token, jwks, algorithms=["RS256"]).claims)
    return claims


# Discovery --------------------------------------------------------------------------------------------------


async def test_discovery_documents(mock_client: httpx.AsyncClient) -> None:
    oidc = (await mock_client.get("/.well-known/openid-configuration")).json()
    assert oidc["issuer"] == ISSUER
    assert oidc["authorization_endpoint"] == f"{BASE}{AUTH}/oauth/authorize"
    assert oidc["token_endpoint"] == f"{BASE}{AUTH}/oauth/token"
    assert oidc["end_session_endpoint"] == f"{BASE}{AUTH}/logout"
    assert oidc["jwks_uri"] == f"{BASE}{AUTH}/.well-known/jwks.json"
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert oidc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    api = (await mock_client.get("/.well-known/customer-account-api")).json()
    assert api == {"graphql_api": f"{BASE}/customer/api/2026-10/graphql"}
    keys = (await mock_client.get(f"{AUTH}/.well-known/jwks.json")).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
    assert "d" not in keys[0]


async def test_mcp_api_is_advertised_only_when_a_test_sets_it(mock_client: httpx.AsyncClient) -> None:
    # The stand-in serves no MCP endpoint, so it does not advertise one unless a test asks it to.
    assert "mcp_api" not in (await mock_client.get("/.well-known/customer-account-api")).json()
    await Shop(mock_client).knob("discovery_fields", mcp_api=f"{BASE}/customer/api/mcp")
    api = (await mock_client.get("/.well-known/customer-account-api")).json()
    assert api["mcp_api"] == f"{BASE}/customer/api/mcp"


@pytest.mark.parametrize(
    ("shape", "path"),
    [("customer", "/customer/api/2026-10/graphql"), ("account", "/account/customer/api/2026-10/graphql")],
)
async def test_graphql_shape_picks_the_advertised_url_and_it_answers(
    mock_client: httpx.AsyncClient, shape: str, path: str
) -> None:
    await Shop(mock_client).knob("fidelity", graphql_shape=shape)
    url = (await mock_client.get("/.well-known/customer-account-api")).json()["graphql_api"]
    assert url == f"{BASE}{path}"
    token = (await tokens(mock_client))["access_token"]
    response = await mock_client.post(path, json={"query": "{ shop { id } }"}, headers={"Authorization": token, **UA})
    assert response.json()["data"]["shop"]["id"] == f"gid://shopify/Shop/{SHOP_ID}"


async def test_custom_domain_auth_layout_runs_a_whole_login_on_the_advertised_endpoints(
    mock_client: httpx.AsyncClient,
) -> None:
    await Shop(mock_client).knob("fidelity", auth_layout="custom_domain")
    oidc = (await mock_client.get("/.well-known/openid-configuration")).json()
    assert oidc["issuer"] == ISSUER  # the issuer keeps the shop id; only the endpoints move
    assert oidc["authorization_endpoint"] == f"{BASE}/authentication/oauth/authorize"
    page = await mock_client.get(oidc["authorization_endpoint"], params=authorize_params())
    assert 'action="/authentication/oauth/authorize"' in page.text
    signed_in = await mock_client.post(oidc["authorization_endpoint"], data={**authorize_params(), "email": EMAIL})
    data = {"grant_type": "authorization_code", "code": redirect_query(signed_in)["code"], "redirect_uri": REDIRECT}
    body = (await mock_client.post(oidc["token_endpoint"], data=data, auth=(CLIENT_ID, SECRET), headers=UA)).json()
    jwks = KeySet.import_key_set((await mock_client.get(oidc["jwks_uri"])).json())
    assert jwt.decode(body["id_token"], jwks, algorithms=["RS256"]).claims["iss"] == ISSUER
    logout = await mock_client.get(oidc["end_session_endpoint"], params={"id_token_hint": body["id_token"]})
    assert (logout.status_code, logout.headers["location"]) == (302, LOGOUT)


async def test_fidelity_knob_echoes_and_resets(mock_client: httpx.AsyncClient) -> None:
    shop = Shop(mock_client)
    defaults = (await shop.stats())["fidelity"]
    assert defaults == {
        "graphql_shape": "customer",
        "auth_layout": "shop_id",
        "confidential_pkce": "accepted",
        "reject_bearer": True,
        "unauthorized_body": "Not a valid access token",
        "single_use_refresh_tokens": True,
        "refresh_survives_secret_revocation": True,
    }
    changed = await shop.knob("fidelity", auth_layout="custom_domain", reject_bearer=False)
    assert changed["fidelity"] == {**defaults, "auth_layout": "custom_domain", "reject_bearer": False}
    assert (await shop.knob("fidelity", reset=True, graphql_shape="account"))["fidelity"] == {
        **defaults,
        "graphql_shape": "account",
    }
    await shop.knob("reset")
    assert (await shop.stats())["fidelity"] == defaults


@pytest.mark.parametrize(
    ("name", "status"), [("openid-configuration", 301), ("customer-account-api", 308), ("openid-configuration", 302)]
)
async def test_discovery_redirect_points_at_the_same_document_elsewhere(
    mock_client: httpx.AsyncClient, name: str, status: int
) -> None:
    direct = (await mock_client.get(f"/.well-known/{name}")).json()
    await Shop(mock_client).knob("discovery_redirect", to=f"{BASE}/_moved", status=status)
    response = await mock_client.get(f"/.well-known/{name}")
    assert (response.status_code, response.headers["location"]) == (status, f"{BASE}/_moved/.well-known/{name}")
    assert (await mock_client.get(response.headers["location"])).json() == direct


@pytest.mark.parametrize("off", ["to-null", "reset"])
async def test_discovery_redirect_turns_off(mock_client: httpx.AsyncClient, off: str) -> None:
    shop = Shop(mock_client)
    await shop.knob("discovery_redirect", to="http://localhost:9/_moved", status=307)
    await (shop.knob("reset") if off == "reset" else shop.knob("discovery_redirect", to=None))
    statuses = [
        (await mock_client.get(f"/.well-known/{n}")).status_code
        for n in ("openid-configuration", "customer-account-api")
    ]
    assert statuses == [200, 200]


async def test_unknown_route_is_json_404(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.get("/nope")
    assert (response.status_code, response.json()) == (404, {"errors": "Not Found"})


# Authorize --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, '"redirect_uri" mismatch'),
        ({"redirect_uri": ""}, '"redirect_uri" mismatch'),
        ({"client_id": "someone-else"}, '"client_id" is invalid'),
    ],
)
async def test_authorize_never_redirects_to_an_unregistered_uri(
    mock_client: httpx.AsyncClient, overrides: dict[str, str], text: str
) -> None:
    response = await mock_client.get(f"{AUTH}/oauth/authorize", params=authorize_params(**overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert f"The error was: {text}" in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": "a" * 43 + "="}, "invalid_request"),
        ({"code_challenge": "abc+/def"}, "invalid_request"),
        ({"state": ""}, "invalid_request"),
        ({"scope": "email customer-account-api:full"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
async def test_authorize_errors_redirect_back(
    mock_client: httpx.AsyncClient, overrides: dict[str, str], error: str
) -> None:
    params = authorize_params(pkce()[1], **overrides)
    query = redirect_query(await mock_client.get(f"{AUTH}/oauth/authorize", params=params))
    assert query["error"] == error
    assert query.get("state") == params.get("state")


async def test_login_page_then_code(mock_client: httpx.AsyncClient) -> None:
    params = authorize_params(pkce()[1], locale="fr-CA", login_hint="grace@example.com", region_country="CA")
    page = await mock_client.get(f"{AUTH}/oauth/authorize", params=params)
    assert page.status_code == 200
    assert '<html lang="fr-CA">' in page.text
    assert 'id="email" name="email" value="grace@example.com"' in page.text
    assert 'id="login-submit">Continue</button>' in page.text
    assert 'name="nonce" value="nonce-456"' in page.text
    response = await mock_client.post(f"{AUTH}/oauth/authorize", data={**params, "email": "grace@example.com"})
    query = redirect_query(response)
    assert response.headers["location"].startswith(REDIRECT + "?")
    assert query["state"] == "state-123" and query["code"]
    assert "httponly" in response.headers["set-cookie"].lower()


async def test_login_rejects_a_bad_email(mock_client: httpx.AsyncClient) -> None:
    response = await mock_client.post(f"{AUTH}/oauth/authorize", data={**authorize_params(), "email": "nope"})
    assert response.status_code == 400
    assert "Enter a valid email address." in response.text


async def test_prompt_none(mock_client: httpx.AsyncClient) -> None:
    url = f"{AUTH}/oauth/authorize"
    query = redirect_query(await mock_client.get(url, params=authorize_params(prompt="none")))
    assert query == {
        "error": "login_required",
        "error_description": "End-User authentication required.",
        "state": "state-123",
    }
    await login(mock_client)
    assert "code" in redirect_query(await mock_client.get(url, params=authorize_params(prompt="none")))


async def test_login_hint_mode_submit_skips_the_form(mock_client: httpx.AsyncClient) -> None:
    params = authorize_params(login_hint="grace@example.com", login_hint_mode="submit")
    assert "code" in redirect_query(await mock_client.get(f"{AUTH}/oauth/authorize", params=params))


async def test_login_page_shows_the_provider_acr_values_asked_for(mock_client: httpx.AsyncClient) -> None:
    params = authorize_params(acr_values="provider:google")
    page = await mock_client.get(f"{AUTH}/oauth/authorize", params=params)
    assert 'provider <span id="provider">google</span>' in page.text


async def test_stats_record_the_last_authorize_params(mock_client: httpx.AsyncClient) -> None:
    params = authorize_params(pkce()[1], acr_values="provider:google", locale="zh-CN", login_hint_mode="submit")
    await mock_client.get(f"{AUTH}/oauth/authorize", params=params)
    assert (await Shop(mock_client).stats())["last_authorize_params"] == params


def test_cli_reads_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_SHOPIFY_CLIENT_ID", "env-client")
    monkeypatch.setenv("MOCK_SHOPIFY_LOGOUT_URI", "http://a.example/ http://b.example/")
    args, config = parse_args(["--port", "9001", "--redirect-uri", REDIRECT, "--access-token-ttl", "5"])
    assert args.port == 9001
    assert config.base_url == "http://127.0.0.1:9001"
    assert config.credentials == (("env-client", "dev-client-secret-not-for-production"),)
    assert config.redirect_uris == (REDIRECT,)
    assert config.logout_uris == ("http://a.example/", "http://b.example/")
    assert config.access_token_ttl == 5
    assert config.api_version == "2026-10"
    assert "secret" not in repr(config)


# Token ------------------------------------------------------------------------------------------------------


async def test_code_exchange_with_basic_auth(mock_client: httpx.AsyncClient) -> None:
    code, verifier = await login(mock_client)
    response = await exchange(mock_client, code, verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["access_token"].startswith("shcat_") and body["refresh_token"].startswith("shcrt_")
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    stats = (await mock_client.get("/_mock/stats")).json()
    assert stats["grants"] == {"authorization_code": 1, "refresh_token": 0}
    assert stats["last_token_request"] == {
        "user_agent": "bff-tests/1.0",
        "auth_method": "client_secret_basic",
        "client_id": CLIENT_ID,
    }


async def test_code_exchange_with_client_secret_post(mock_client: httpx.AsyncClient) -> None:
    code, verifier = await login(mock_client)
    data = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    response = await mock_client.post(f"{AUTH}/oauth/token", data=data, headers=UA)
    assert response.status_code == 200
    stats = (await mock_client.get("/_mock/stats")).json()
    assert stats["last_token_request"]["auth_method"] == "client_secret_post"


@pytest.mark.parametrize(
    ("auth", "form_client_id"),
    [
        ((CLIENT_ID, "wrong-secret"), CLIENT_ID),
        (("unknown-client", SECRET), "unknown-client"),
        (None, CLIENT_ID),
        ((CLIENT_ID, SECRET), "another-client"),
    ],
)
async def test_client_authentication_failures(
    mock_client: httpx.AsyncClient, auth: tuple[str, str] | None, form_client_id: str
) -> None:
    code, verifier = await login(mock_client)
    data = {
        "grant_type": "authorization_code",
        "client_id": form_client_id,
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    # httpx has no typed spelling for "no auth on this request", so leave the argument out.
    client_auth: dict[str, Any] = {"auth": auth} if auth else {}
    response = await mock_client.post(f"{AUTH}/oauth/token", data=data, headers=UA, **client_auth)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert (await mock_client.get("/_mock/stats")).json()["grants"]["authorization_code"] == 0


async def test_missing_user_agent_is_403(mock_client: httpx.AsyncClient) -> None:
    code, _ = await login(mock_client)
    response = await mock_client.post(
        f"{AUTH}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, SECRET),
        headers={"User-Agent": ""},
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "You do not have permission to access this website" in response.text


async def test_code_replay_is_rejected_and_revokes_its_tokens(mock_client: httpx.AsyncClient) -> None:
    code, verifier = await login(mock_client)
    first = (await exchange(mock_client, code, verifier)).json()
    replay = await exchange(mock_client, code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert (await gql(mock_client, first["access_token"], "{ shop { id } }")).status_code == 401
    assert (await refresh(mock_client, first["refresh_token"])).json()["error"] == "invalid_grant"


async def test_code_expires(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("settings", code_ttl=0)
    code, verifier = await login(mock_client)
    response = await exchange(mock_client, code, verifier)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("case", ["wrong_redirect_uri", "wrong_verifier", "missing_verifier", "unknown_code"])
async def test_code_grant_failures(mock_client: httpx.AsyncClient, case: str) -> None:
    code, verifier = await login(mock_client)
    redirect_uri = "https://bff.example/other" if case == "wrong_redirect_uri" else REDIRECT
    sent_verifier = {"wrong_verifier": pkce()[0], "missing_verifier": None}.get(case, verifier)
    sent_code = "not-a-code" if case == "unknown_code" else code
    response = await exchange(mock_client, sent_code, sent_verifier, redirect_uri=redirect_uri)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    # A failed attempt does not burn the code.
    assert (await exchange(mock_client, code, verifier)).status_code == 200


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
async def test_token_request_errors(mock_client: httpx.AsyncClient, data: dict[str, str], error: str) -> None:
    response = await mock_client.post(f"{AUTH}/oauth/token", data=data, auth=(CLIENT_ID, SECRET), headers=UA)
    assert (response.status_code, response.json()["error"]) == (400, error)


async def test_refresh_rotates(mock_client: httpx.AsyncClient) -> None:
    first = await tokens(mock_client)
    response = await refresh(mock_client, first["refresh_token"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token"}
    assert body["refresh_token"] != first["refresh_token"]
    old = await refresh(mock_client, first["refresh_token"])
    assert (old.status_code, old.json()["error"]) == (400, "invalid_grant")
    assert (await refresh(mock_client, body["refresh_token"])).status_code == 200
    assert (await gql(mock_client, body["access_token"], "{ shop { id } }")).status_code == 200


async def test_credential_rotation(mock_client: httpx.AsyncClient) -> None:
    first = await tokens(mock_client)
    await Shop(mock_client).knob("credentials", add={"client_id": CLIENT_ID, "client_secret": "second-secret"})
    assert (await refresh(mock_client, first["refresh_token"], secret=SECRET)).status_code == 200
    result = await Shop(mock_client).knob("credentials", revoke_secret=SECRET)
    assert result["credentials"] == [
        {"client_id": CLIENT_ID, "revoked": True},
        {"client_id": CLIENT_ID, "revoked": False},
    ]
    code, verifier = await login(mock_client)
    assert (await exchange(mock_client, code, verifier, secret=SECRET)).status_code == 401
    assert (await exchange(mock_client, code, verifier, secret="second-secret")).status_code == 200


async def test_confidential_pkce_refused(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("fidelity", confidential_pkce="refused")
    code, verifier = await login(mock_client)
    response = await exchange(mock_client, code, verifier)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_request", "error_description": "code_verifier is not allowed for confidential clients"},
    )


async def test_refresh_tokens_that_are_not_single_use_refresh_twice(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("fidelity", single_use_refresh_tokens=False)
    first = await tokens(mock_client)
    statuses = [(await refresh(mock_client, first["refresh_token"])).status_code for _ in range(2)]
    assert statuses == [200, 200]


@pytest.mark.parametrize(("refreshed_under_new_secret", "status"), [(False, 400), (True, 200)])
async def test_refresh_after_the_issuing_secret_is_revoked(
    mock_client: httpx.AsyncClient, refreshed_under_new_secret: bool, status: int
) -> None:
    # Each refresh token remembers the secret of the grant that issued it; a refresh under the new secret
    # before the old one is revoked moves the session over.
    shop = Shop(mock_client)
    await shop.knob("fidelity", refresh_survives_secret_revocation=False)
    refresh_token = (await tokens(mock_client))["refresh_token"]
    await shop.knob("credentials", add={"client_id": CLIENT_ID, "client_secret": "second-secret"})
    if refreshed_under_new_secret:
        refresh_token = (await refresh(mock_client, refresh_token, secret="second-secret")).json()["refresh_token"]
    await shop.knob("credentials", revoke_secret=SECRET)
    assert (await refresh(mock_client, refresh_token, secret="second-secret")).status_code == status


# ID token ---------------------------------------------------------------------------------------------------


async def test_id_token_verifies_against_the_jwks(mock_client: httpx.AsyncClient) -> None:
    body = await tokens(mock_client)
    claims = await verify_id_token(mock_client, body["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == CLIENT_ID
    assert claims["nonce"] == "nonce-456"
    assert claims["email"] == EMAIL and claims["email_verified"] is True
    assert claims["sub"].startswith("gid://shopify/Customer/") and claims["sid"]
    assert claims["iat"] <= time.time() < claims["exp"]
    again = await tokens(mock_client)
    assert (await verify_id_token(mock_client, again["id_token"]))["sub"] == claims["sub"]


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("bad_signature", "signature"),
        ("unknown_kid", "kid"),
        ("wrong_iss", "iss"),
        ("wrong_aud", "aud"),
        ("wrong_nonce", "nonce"),
        ("expired", "exp"),
    ],
)
async def test_tampered_id_tokens(mock_client: httpx.AsyncClient, kind: str, check: str) -> None:
    await Shop(mock_client).knob("tamper_next_id_token", kind=kind)
    id_token = (await tokens(mock_client))["id_token"]
    if check in ("signature", "kid"):
        with pytest.raises(BadSignatureError if check == "signature" else InvalidKeyIdError):
            await verify_id_token(mock_client, id_token)
        return
    claims = await verify_id_token(mock_client, id_token)
    expected = {"iss": ISSUER, "aud": CLIENT_ID, "nonce": "nonce-456"}
    if check == "exp":
        assert claims["exp"] < time.time()
    else:
        assert claims[check] != expected[check]
    # Only the next code grant is affected.
    assert (await verify_id_token(mock_client, (await tokens(mock_client))["id_token"]))["iss"] == ISSUER


async def test_signing_key_rotation(mock_client: httpx.AsyncClient) -> None:
    old_token = (await tokens(mock_client))["id_token"]
    kid = (await Shop(mock_client).knob("rotate_signing_key"))["kid"]
    new_token = (await tokens(mock_client))["id_token"]
    jwks = KeySet.import_key_set((await mock_client.get(f"{AUTH}/.well-known/jwks.json")).json())
    assert jwt.decode(new_token, jwks).header["kid"] == kid
    await verify_id_token(mock_client, old_token)
    await Shop(mock_client).knob("rotate_signing_key", drop_old=True)
    with pytest.raises(InvalidKeyIdError):
        await verify_id_token(mock_client, old_token)


# Logout -----------------------------------------------------------------------------------------------------


async def test_logout_redirects_and_ends_the_login_session(mock_client: httpx.AsyncClient) -> None:
    id_token = (await tokens(mock_client))["id_token"]
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": "https://app.example/goodbye",
        "state": "s1",
    }
    response = await mock_client.get(f"{AUTH}/logout", params=params)
    assert response.status_code == 302
    assert response.headers["location"] == "https://app.example/goodbye"  # state is not echoed
    assert 'mock_shopify_login=""' in response.headers["set-cookie"]
    silent = await mock_client.get(f"{AUTH}/oauth/authorize", params=authorize_params(prompt="none"))
    assert redirect_query(silent)["error"] == "login_required"
    assert (await mock_client.get("/_mock/stats")).json()["logouts"] == 1


async def test_logout_defaults_to_the_first_logout_uri_and_accepts_expired_hints(
    mock_client: httpx.AsyncClient,
) -> None:
    await Shop(mock_client).knob("tamper_next_id_token", kind="expired")
    id_token = (await tokens(mock_client))["id_token"]
    response = await mock_client.get(f"{AUTH}/logout", params={"id_token_hint": id_token})
    assert (response.status_code, response.headers["location"]) == (302, LOGOUT)


async def test_logout_sends_an_unregistered_uri_to_the_default_logout_uri(mock_client: httpx.AsyncClient) -> None:
    params = {
        "id_token_hint": (await tokens(mock_client))["id_token"],
        "post_logout_redirect_uri": "https://evil.example/",
    }
    response = await mock_client.get(f"{AUTH}/logout", params=params)
    assert (response.status_code, response.headers["location"]) == (302, LOGOUT)


@pytest.mark.parametrize("case", ["missing_hint", "forged_hint", "wrong_aud_hint"])
async def test_logout_rejections(mock_client: httpx.AsyncClient, case: str) -> None:
    if case == "wrong_aud_hint":
        await Shop(mock_client).knob("tamper_next_id_token", kind="wrong_aud")
    if case == "forged_hint":
        await Shop(mock_client).knob("tamper_next_id_token", kind="bad_signature")
    params = {"id_token_hint": (await tokens(mock_client))["id_token"], "post_logout_redirect_uri": LOGOUT}
    if case == "missing_hint":
        del params["id_token_hint"]
    response = await mock_client.get(f"{AUTH}/logout", params=params)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


# GraphQL ----------------------------------------------------------------------------------------------------

CUSTOMER_QUERY = """
query Account($first: Int!) {
  customer {
    id firstName lastName displayName emailAddress { emailAddress marketingState }
    defaultAddress { id city territoryCode zoneCode formatted(withName: true) }
    addresses(first: 5) { nodes { id } }
    orders(first: $first, sortKey: PROCESSED_AT, reverse: true) {
      nodes {
        id name number processedAt financialStatus fulfillmentStatus
        totalPrice { amount currencyCode }
        lineItems(first: 10) { nodes { title quantity price { amount currencyCode } } }
        fulfillments(first: 1) { nodes { status trackingInformation { company number url } } }
      }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


@pytest.mark.parametrize("header", [None, "Bearer {token}", "shcat_unknown", "{token} ", "bearer {token}"], ids=str)
async def test_graphql_needs_the_raw_access_token(mock_client: httpx.AsyncClient, header: str | None) -> None:
    token = (await tokens(mock_client))["access_token"]
    headers = {**UA, **({"Authorization": header.format(token=token)} if header else {})}
    response = await mock_client.post(GRAPHQL, json={"query": "{ shop { id } }"}, headers=headers)
    assert (response.status_code, response.json()) == (401, {"errors": "Not a valid access token"})


async def test_bearer_tokens_when_not_rejected(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("fidelity", reject_bearer=False)
    token = (await tokens(mock_client))["access_token"]
    headers = {"Authorization": f"Bearer {token}", **UA}
    assert (await mock_client.post(GRAPHQL, json={"query": "{ shop { id } }"}, headers=headers)).status_code == 200


async def test_unauthorized_body_is_a_knob(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("fidelity", unauthorized_body="User does not have access")
    response = await gql(mock_client, "shcat_unknown", "{ shop { id } }")
    assert (response.status_code, response.json()) == (401, {"errors": "User does not have access"})


async def test_graphql_http_errors(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    headers = {"Authorization": token, **UA}
    bad_version = await mock_client.post(
        "/customer/api/2026-4/graphql", json={"query": "{ shop { id } }"}, headers=headers
    )
    assert (bad_version.status_code, bad_version.json()) == (404, {"errors": "Not Found"})
    bodies: list[dict[str, Any]] = [{"variables": {}}, {"query": 1}]
    for body in bodies:
        response = await mock_client.post(GRAPHQL, json=body, headers=headers)
        assert response.status_code == 400
        assert response.json() == {"errors": {"query": "Required parameter missing or invalid"}}
    unstable = await mock_client.post(
        "/customer/api/unstable/graphql", json={"query": "{ shop { id } }"}, headers=headers
    )
    assert unstable.status_code == 200


async def test_per_customer_request_limit_is_shared_by_the_customers_sessions(
    mock_app: Starlette, mock_client: httpx.AsyncClient
) -> None:
    mock_app.state.store.clock = clock = Clock()
    clock.advance(15.5)
    await Shop(mock_client).knob("settings", customer_requests_per_minute=2)
    first, second = (await tokens(mock_client))["access_token"], (await tokens(mock_client))["access_token"]
    statuses = [(await gql(mock_client, token, "{ shop { id } }")).status_code for token in (first, second)]
    throttled = await gql(mock_client, first, "{ shop { id } }")
    assert statuses == [200, 200]
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "45")
    assert throttled.json() == {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}


@pytest.mark.parametrize("then", ["another_customer", "next_minute"])
async def test_per_customer_request_limit_counts_per_customer_and_minute(
    mock_app: Starlette, mock_client: httpx.AsyncClient, then: str
) -> None:
    mock_app.state.store.clock = clock = Clock()
    await Shop(mock_client).knob("settings", customer_requests_per_minute=1)
    token = (await tokens(mock_client))["access_token"]
    statuses = [(await gql(mock_client, token, "{ shop { id } }")).status_code for _ in range(2)]
    if then == "another_customer":
        token = (await tokens(mock_client, "grace.hopper@example.com"))["access_token"]
    else:
        clock.advance(60)
    statuses.append((await gql(mock_client, token, "{ shop { id } }")).status_code)
    assert statuses == [200, 429, 200]


async def test_customer_and_orders_query(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    response = await gql(mock_client, token, CUSTOMER_QUERY, {"first": 2})
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    customer = body["data"]["customer"]
    assert (customer["firstName"], customer["lastName"], customer["displayName"]) == (
        "Ada",
        "Lovelace",
        "Ada Lovelace",
    )
    assert customer["emailAddress"] == {"emailAddress": EMAIL, "marketingState": "NOT_SUBSCRIBED"}
    assert (customer["defaultAddress"]["territoryCode"], customer["defaultAddress"]["zoneCode"]) == (
        "CA",
        "ON",
    )
    assert customer["defaultAddress"]["formatted"][0] == "Ada Lovelace"
    orders = customer["orders"]["nodes"]
    assert len(orders) == 2
    dates = [o["processedAt"] for o in orders]
    assert dates == sorted(dates, reverse=True)
    for order in orders:
        assert order["name"] == f"#{order['number']}"
        assert order["totalPrice"]["currencyCode"] == "CAD"
        assert isinstance(order["totalPrice"]["amount"], str)
        assert order["lineItems"]["nodes"]
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 70
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    # Another customer sees only their own data.
    other = (await tokens(mock_client, "grace.hopper@example.com"))["access_token"]
    theirs = (await gql(mock_client, other, CUSTOMER_QUERY, {"first": 1})).json()["data"]["customer"]
    assert theirs["firstName"] == "Grace" and theirs["id"] != customer["id"]
    own_order = orders[0]["id"]
    lookup = await gql(mock_client, other, "query($id: ID!) { order(id: $id) { id } }", {"id": own_order})
    assert lookup.json()["data"] == {"order": None}


async def test_pagination(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    query = """query($after: String) {
      customer { orders(first: 1, after: $after) { nodes { id name } pageInfo { hasNextPage endCursor } } }
    }"""
    page1 = (await gql(mock_client, token, query)).json()["data"]["customer"]["orders"]
    assert page1["pageInfo"]["hasNextPage"] is True
    page2 = (await gql(mock_client, token, query, {"after": page1["pageInfo"]["endCursor"]})).json()
    assert page2["data"]["customer"]["orders"]["nodes"][0]["id"] != page1["nodes"][0]["id"]
    by_name = "query($q: String) { customer { orders(first: 5, query: $q) { nodes { id name } } } }"
    name = page1["nodes"][0]["name"]
    found = (await gql_data(mock_client, token, by_name, {"q": f"name:{name}"}))["customer"]["orders"]["nodes"]
    assert [o["name"] for o in found] == [name]
    unbounded = (await gql(mock_client, token, "{ customer { orders { nodes { id } } } }")).json()
    assert unbounded["errors"][0]["message"] == "you must provide one of first or last"


@pytest.mark.parametrize(
    "query",
    ["{ customer { password } }", "{ customer { id ", "{ __schema { types { name } } }"],
    ids=["unknown-field", "syntax", "introspection"],
)
async def test_graphql_errors_are_200_with_an_errors_array(mock_client: httpx.AsyncClient, query: str) -> None:
    token = (await tokens(mock_client))["access_token"]
    response = await gql(mock_client, token, query)
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"]


ADDRESS_UPDATE = """
mutation($id: ID!, $address: CustomerAddressInput, $default: Boolean) {
  customerAddressUpdate(addressId: $id, address: $address, defaultAddress: $default) {
    customerAddress { id address1 city zoneCode phoneNumber }
    userErrors { field code message }
  }
}
"""


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ({"address1": ""}, "ADDRESS1_MISSING"),
        ({"territoryCode": "ZZ"}, "INVALID_TERRITORY_CODE"),
        ({"phoneNumber": "555-1234"}, "PHONE_NUMBER_NOT_VALID"),
        ({"city": "<b>Toronto</b>"}, "CONTAINS_HTML_TAGS"),
        ({"company": "x" * 256}, "TOO_LONG"),
        ({"zoneCode": "XX"}, "INVALID_FOR_COUNTRY"),
    ],
)
async def test_address_update_user_errors(mock_client: httpx.AsyncClient, address: dict[str, str], code: str) -> None:
    token = (await tokens(mock_client))["access_token"]
    variables = {"id": await default_address_id(mock_client, token), "address": address}
    result = (await gql_data(mock_client, token, ADDRESS_UPDATE, variables))["customerAddressUpdate"]
    assert result["customerAddress"] is None
    assert [e["code"] for e in result["userErrors"]] == [code]


async def test_address_lifecycle(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    default_id = await default_address_id(mock_client, token)
    change = {"address1": "1 Main St", "phoneNumber": "+16135551111"}
    updated = (await gql_data(mock_client, token, ADDRESS_UPDATE, {"id": default_id, "address": change}))[
        "customerAddressUpdate"
    ]
    assert updated["userErrors"] == []
    assert updated["customerAddress"]["address1"] == "1 Main St"
    create = """mutation($a: CustomerAddressInput!) {
      customerAddressCreate(address: $a, defaultAddress: false) {
        customerAddress { id country province } userErrors { code }
      }
    }"""
    new_address = {"address1": "10 Rue de Rivoli", "city": "Paris", "territoryCode": "FR", "zip": "75001"}
    created = (await gql_data(mock_client, token, create, {"a": new_address}))["customerAddressCreate"]
    assert created["userErrors"] == [] and created["customerAddress"]["country"] == "France"
    delete = """mutation($id: ID!) {
      customerAddressDelete(addressId: $id) { deletedAddressId userErrors { code } }
    }"""
    refused = (await gql_data(mock_client, token, delete, {"id": default_id}))["customerAddressDelete"]
    assert refused["userErrors"] == [{"code": "DELETING_CUSTOMER_DEFAULT_ADDRESS_NOT_ALLOWED"}]
    new_id = created["customerAddress"]["id"]
    deleted = (await gql_data(mock_client, token, delete, {"id": new_id}))["customerAddressDelete"]
    assert deleted == {"deletedAddressId": new_id, "userErrors": []}
    missing = (await gql_data(mock_client, token, delete, {"id": new_id}))["customerAddressDelete"]
    assert missing["userErrors"] == [{"code": "ADDRESS_ID_DOES_NOT_EXIST"}]
    stored = (await mock_client.get(f"/_mock/customers/{EMAIL}")).json()
    assert [a["address1"] for a in stored["addresses"]] == ["1 Main St"]


async def test_customer_update(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    mutation = """mutation($input: CustomerUpdateInput!) { customerUpdate(input: $input) {
      customer { firstName lastName displayName } userErrors { field code } } }"""
    bad = (await gql(mock_client, token, mutation, {"input": {"firstName": "<script>"}})).json()
    assert bad["data"]["customerUpdate"]["userErrors"] == [
        {"field": ["input", "firstName"], "code": "CONTAINS_HTML_TAGS"}
    ]
    good = (await gql(mock_client, token, mutation, {"input": {"firstName": "Augusta"}})).json()
    assert good["data"]["customerUpdate"]["customer"]["displayName"] == "Augusta Lovelace"
    assert good["extensions"]["cost"]["requestedQueryCost"] == 12  # 10 for the mutation, 1 per object


# Knobs ------------------------------------------------------------------------------------------------------


async def test_fail_token_shapes_and_counters(mock_client: httpx.AsyncClient) -> None:
    first = await tokens(mock_client)
    await Shop(mock_client).knob("fail_token", count=1, status=429, retry_after=7)
    throttled = await refresh(mock_client, first["refresh_token"])
    assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "7")
    await Shop(mock_client).knob("fail_token", count=1, status=401)
    transient = await refresh(mock_client, first["refresh_token"])
    assert (transient.status_code, transient.json()) == (
        401,
        {"error": "", "error_description": "Access token request error."},
    )
    await Shop(mock_client).knob("fail_token", count=2, status=503)
    for _ in range(2):
        unavailable = await refresh(mock_client, first["refresh_token"])
        assert unavailable.status_code == 503 and unavailable.headers["content-type"].startswith("text/html")
    # The failures did not consume the refresh token.
    assert (await refresh(mock_client, first["refresh_token"])).status_code == 200
    stats = (await mock_client.get("/_mock/stats")).json()
    assert stats["token_failures_injected"] == 4
    assert stats["token_requests"] == 6
    assert stats["grants"] == {"authorization_code": 1, "refresh_token": 1}


@pytest.mark.parametrize(
    ("error", "body", "challenge"),
    [
        ("invalid_client", {"error": "invalid_client", "error_description": "Client authentication failed."}, None),
        (
            "unauthorized_client",
            {
                "error": "unauthorized_client",
                "error_description": "The authenticated client is not authorized to use this authorization grant type.",
            },
            None,
        ),
        ("invalid_token", None, 'Bearer error="invalid_token"'),
    ],
)
async def test_fail_token_401_kinds(
    mock_client: httpx.AsyncClient, error: str, body: dict[str, str] | None, challenge: str | None
) -> None:
    refresh_token = (await tokens(mock_client))["refresh_token"]
    await Shop(mock_client).knob("fail_token", status=401, error=error)
    response = await refresh(mock_client, refresh_token)
    assert response.status_code == 401
    assert (response.json() if body else response.content) == (body or b"")
    if challenge:
        assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize(
    ("status", "errors"),
    [
        (402, "This shop's plan does not have access to this feature"),
        (403, "User does not have access"),
        (423, "This shop is unavailable"),
    ],
)
async def test_fail_graphql_shop_states(mock_client: httpx.AsyncClient, status: int, errors: str) -> None:
    token = (await tokens(mock_client))["access_token"]
    await Shop(mock_client).knob("fail_graphql", status=status)
    response = await gql(mock_client, token, "{ shop { id } }")
    assert (response.status_code, response.json()) == (status, {"errors": errors})


async def test_fail_and_delay_graphql(mock_client: httpx.AsyncClient) -> None:
    token = (await tokens(mock_client))["access_token"]
    await Shop(mock_client).knob("fail_graphql", count=1, status=429, retry_after=2)
    throttled = await gql(mock_client, token, "{ shop { id } }")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    assert throttled.json() == {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    await Shop(mock_client).knob("fail_graphql", count=1, status=500)
    assert (await gql(mock_client, token, "{ shop { id } }")).json() == {"errors": "An unexpected error occurred"}
    await Shop(mock_client).knob("delay_graphql", count=1, seconds=0.05)
    started = time.perf_counter()
    assert (await gql(mock_client, token, "{ shop { id } }")).status_code == 200
    assert time.perf_counter() - started >= 0.05
    stats = (await mock_client.get("/_mock/stats")).json()
    assert stats["graphql_requests"] == 3
    assert stats["last_graphql_request"]["authorization"] == token
    assert stats["last_graphql_request"]["headers"]["user-agent"] == "bff-tests/1.0"
    assert "authorization" not in stats["last_graphql_request"]["headers"]


async def test_expire_and_revoke_knobs(mock_client: httpx.AsyncClient) -> None:
    body = await tokens(mock_client)
    await Shop(mock_client).knob("expire_access_tokens")
    assert (await gql(mock_client, body["access_token"], "{ shop { id } }")).status_code == 401
    await Shop(mock_client).knob("revoke_refresh_tokens")
    assert (await refresh(mock_client, body["refresh_token"])).json()["error"] == "invalid_grant"


async def test_settings_and_reset(mock_client: httpx.AsyncClient) -> None:
    await Shop(mock_client).knob("settings", access_token_ttl=5)
    assert (await tokens(mock_client))["expires_in"] == 5
    await Shop(mock_client).knob("reset")
    assert (await tokens(mock_client))["expires_in"] == 3600
    assert (await mock_client.get("/_mock/stats")).json()["grants"]["authorization_code"] == 1


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("fail_token", {"count": 1, "status": 404}),
        ("fail_token", {"status": 401, "error": "invalid_grant"}),
        ("fail_token", {"status": 503, "error": "invalid_client"}),
        ("fail_graphql", {"status": 401, "error": "invalid_client"}),
        ("settings", {"code_ttl": "soon"}),
        ("tamper_next_id_token", {"kind": "bogus"}),
        ("credentials", {}),
        ("fidelity", {"graphql_shape": "hydrogen"}),
        ("fidelity", {"reject_bearer": "no"}),
        ("fidelity", {"unauthorized_body": 401}),
        ("fidelity", {"shape": "account"}),
        ("discovery_redirect", {}),
        ("discovery_redirect", {"to": "ftp://files.example"}),
        ("discovery_redirect", {"to": f"{BASE}?x=1"}),
        ("discovery_redirect", {"to": BASE, "status": 303}),
    ],
)
async def test_bad_knob_bodies_are_400(mock_client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> None:
    response = await mock_client.post(f"/_mock/{name}", json=body)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"


async def test_the_cli_access_log_has_paths_but_no_query_strings(tmp_path: Path) -> None:
    # `make dev` and compose's dev profile run the stand-in this way; its URLs carry codes, state and hints.
    port = free_port()
    args = python("-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(port))
    with Process("stand-in", args, port=port, workdir=tmp_path) as standin:
        standin.wait_ok("/.well-known/openid-configuration")
        logout = "/authentication/1234567890/logout"
        query = {"state": "SECRET-STATE", "code": "SECRET-CODE", "id_token_hint": "SECRET-HINT"}
        async with httpx.AsyncClient(base_url=standin.url, headers=UA) as client:
            response = await client.get(logout, params=query)
        await standin.wait_for_output(f"GET {logout}")
        output = standin.output()
    assert "SECRET" not in output, output
    assert f"GET {logout} {response.status_code}" in output, output


# --- customer webhooks -------------------------------------------------------------------------------


def hmac_of(body: bytes, secret: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


class Receiver:
    """A webhook endpoint on a real port that answers with the statuses it is given, and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.got: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.got.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_a_deleted_customer_is_delivered_signed_and_retried(mock_client: httpx.AsyncClient) -> None:
    receiver = Receiver([500, 200])
    server = ServerThread(receiver).start()
    try:
        subscribed = await mock_client.post("/_mock/webhooks", json={"url": f"{server.url}/hook", "secret": "s3"})
        assert subscribed.status_code == 200
        done = (await mock_client.post("/_mock/customers/delete", json={"email": "gone@example.com"})).json()
        assert done["delivered"] is True and done["delivery"]["statuses"] == [500, 200]
        (first, body), (second, again) = receiver.got
        assert body == again and json.loads(body) == {"id": customer_number("gone@example.com")}
        assert first["x-shopify-topic"] == "customers/delete"
        assert first["x-shopify-webhook-id"] == second["x-shopify-webhook-id"]  # a retry is the same delivery
        expected = base64.b64encode(hmac.new(b"s3", body, hashlib.sha256).digest()).decode()
        assert first["x-shopify-hmac-sha256"] == expected

        await mock_client.post(
            "/_mock/webhooks", json={"url": f"{server.url}/hook", "secret": "s3", "wrong_secret": True}
        )
        await mock_client.post("/_mock/customers/redact", json={"email": "gone@example.com"})
        headers, body = receiver.got[-1]
        assert json.loads(body)["customer"]["email"] == "gone@example.com"
        assert (
            headers["x-shopify-hmac-sha256"]
            != base64.b64encode(hmac.new(b"s3", body, hashlib.sha256).digest()).decode()
        )
    finally:
        server.stop()


async def test_webhook_knobs_refuse_nonsense(mock_client: httpx.AsyncClient) -> None:
    assert (await mock_client.post("/_mock/webhooks", json={"url": "ftp://x", "secret": "s"})).status_code == 400
    assert (await mock_client.post("/_mock/customers/delete", json={"email": "nope"})).status_code == 400
    assert (await mock_client.post("/_mock/webhooks/replay")).status_code == 400

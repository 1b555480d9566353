"""`POST /oauth/token`: client authentication, the code and refresh grants, ID tokens."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mock_shopify.customers import customer_number
from mock_shopify.drip import drip
from mock_shopify.forms import FormError, read_form
from mock_shopify.knobs import take_delay, take_drip, take_failure
from mock_shopify.oauth_errors import NO_STORE, OAuthError, injected_failure
from mock_shopify.state import AuthCode, Credential, Store

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge for a verifier: base64url(SHA-256), no padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """(auth_method, client_id, client_secret) as presented; raises OAuthError if malformed."""
    header = request.headers.get("authorization")
    if header is None:
        if "client_secret" in form:
            return "client_secret_post", form.get("client_id"), form["client_secret"]
        return None, form.get("client_id"), None
    scheme, _, encoded = header.partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        if not sep:
            raise ValueError("no colon")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "Client authentication failed.", basic=True) from None
    # RFC 6749 §2.3.1 form-encodes both parts before joining them.
    client_id, secret = unquote(user), unquote(password)
    if "client_secret" in form:
        raise OAuthError(400, "invalid_request", "Use only one client authentication method.")
    if form.get("client_id", client_id) != client_id:
        raise OAuthError(401, "invalid_client", "client_id does not match the credentials.", basic=True)
    return "client_secret_basic", client_id, secret


class TokenEndpoint:
    """The token endpoint, as strict as Shopify's (and RFC 6749 where Shopify is silent)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        paths = self.store.config.auth_paths.values()
        return [Route(f"{path}/oauth/token", self.token, methods=["POST"]) for path in paths]

    async def token(self, request: Request) -> Response:
        response = await self._answer(request)
        if interval := take_drip(self.store.knobs.drip_token):
            return drip(response, interval)
        return response

    async def _answer(self, request: Request) -> Response:
        store = self.store
        store.stats.token_requests += 1
        if seconds := take_delay(store.knobs.delay_token):
            await asyncio.sleep(seconds)
        form_error: FormError | None = None
        try:
            form = await read_form(request)
        except FormError as exc:
            form, form_error = {}, exc
        user_agent = request.headers.get("user-agent", "").strip()
        auth_error: OAuthError | None = None
        try:
            method, client_id, secret = _credentials(request, form)
        except OAuthError as exc:
            method, client_id, secret, auth_error = None, None, None, exc
        store.stats.last_token_request = {
            "user_agent": user_agent,
            "auth_method": method,
            "client_id": client_id,
        }
        store.stats.last_token_traceparent = request.headers.get("traceparent")  # when the BFF traces
        if not user_agent:
            return HTMLResponse("You do not have permission to access this website", status_code=403)
        if failure := take_failure(store.knobs.fail_token):
            store.stats.token_failures_injected += 1
            return injected_failure(failure)
        try:
            if form_error is not None:
                raise OAuthError(400, "invalid_request", str(form_error))
            if auth_error is not None:
                raise auth_error
            basic = method == "client_secret_basic"
            credential = store.authenticate(client_id, secret) if client_id is not None and secret is not None else None
            if credential is None:
                raise OAuthError(401, "invalid_client", "Client authentication failed.", basic=basic)
            if "code_verifier" in form and store.knobs.fidelity.confidential_pkce == "refused":
                # Unconfirmed (mock_shopify/fidelity.py): every client here authenticates with a secret.
                raise OAuthError(400, "invalid_request", "code_verifier is not allowed for confidential clients")
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                body = self._code_grant(credential, form)
            elif grant_type == "refresh_token":
                body = self._refresh_grant(credential, form)
            elif not grant_type:
                raise OAuthError(400, "invalid_request", "grant_type is required.")
            else:
                raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant_type: {grant_type}")
        except OAuthError as exc:
            return exc.response()
        store.stats.grants[str(grant_type)] += 1
        return JSONResponse(body, headers=NO_STORE)

    def _code_grant(self, credential: Credential, form: dict[str, str]) -> dict[str, Any]:
        store, client_id = self.store, credential.client_id
        value, redirect_uri = form.get("code"), form.get("redirect_uri")
        if not value or not redirect_uri:
            raise OAuthError(400, "invalid_request", "code and redirect_uri are required.")
        code = store.codes.get(value)
        if code is None:
            raise OAuthError(400, "invalid_grant", "The authorization code is invalid.")
        if code.used:
            # RFC 6749 §4.1.2: a replayed code may have been stolen, so revoke what it already bought.
            store.revoke_family(code.value)
            raise OAuthError(400, "invalid_grant", "The authorization code has already been used.")
        if time.time() >= code.expires_at:
            raise OAuthError(400, "invalid_grant", "The authorization code has expired.")
        if not hmac.compare_digest(code.client_id, client_id):
            raise OAuthError(400, "invalid_grant", "The authorization code was issued to another client.")
        if redirect_uri != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorization request.")
        verifier = form.get("code_verifier")
        if code.code_challenge is not None:
            if verifier is None or not _VERIFIER.fullmatch(verifier):
                raise OAuthError(400, "invalid_grant", "code_verifier is missing or malformed.")
            if not hmac.compare_digest(s256(verifier), code.code_challenge):
                raise OAuthError(400, "invalid_grant", "code_verifier does not match the code_challenge.")
        elif verifier is not None:
            raise OAuthError(400, "invalid_grant", "code_verifier sent but no code_challenge was.")
        code.used = True
        access, refresh = store.issue_tokens(
            email=code.email, client_id=client_id, scope=code.scope, family=code.value, issued_under=credential
        )
        return {
            "access_token": access,
            "expires_in": store.knobs.access_token_ttl,
            "id_token": self._id_token(code),
            "refresh_token": refresh,
            "token_type": "Bearer",
            "scope": code.scope,
        }

    def _refresh_grant(self, credential: Credential, form: dict[str, str]) -> dict[str, Any]:
        store, fidelity = self.store, self.store.knobs.fidelity
        value = form.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", "refresh_token is required.")
        token = store.refresh_tokens.get(value)
        # Any live credential of the app may refresh, so a rotated secret keeps existing sessions alive.
        if token is None or not token.live or token.client_id not in store.app_client_ids():
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid.")
        if token.issued_under.revoked and not fidelity.refresh_survives_secret_revocation:
            # Unconfirmed (mock_shopify/fidelity.py): tokens bound to the secret that was used when they were issued.
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid.")
        # Unconfirmed rotation (mock_shopify/fidelity.py); when off, the old token stays live beside the new one.
        if fidelity.single_use_refresh_tokens:
            token.live = False
        access, refresh = store.issue_tokens(
            email=token.email,
            client_id=token.client_id,
            scope=token.scope,
            family=token.family,
            issued_under=credential,
        )
        # Shopify sends no id_token on refresh; clients keep the original for logout.
        return {"access_token": access, "expires_in": store.knobs.access_token_ttl, "refresh_token": refresh}

    def _id_token(self, code: AuthCode) -> str:
        store, now = self.store, int(time.time())
        tamper, store.knobs.tamper_next_id_token = store.knobs.tamper_next_id_token, None
        claims: dict[str, Any] = {
            "iss": store.config.issuer,
            "sub": f"gid://shopify/Customer/{customer_number(code.email)}",
            "aud": code.client_id,
            "iat": now,
            "exp": now + store.knobs.id_token_ttl,
            "sid": code.sid,
            "email": code.email,
            "email_verified": True,
        }
        if code.nonce is not None:
            claims["nonce"] = code.nonce
        if tamper == "wrong_iss":
            claims["iss"] = "https://evil.example/authentication/1"
        elif tamper == "wrong_aud":
            claims["aud"] = "some-other-client"
        elif tamper == "wrong_nonce":
            claims["nonce"] = secrets.token_urlsafe(16)
        elif tamper == "expired":
            claims["iat"], claims["exp"] = now - 2 * store.knobs.id_token_ttl - 60, now - 60
        return store.keys.sign(claims, tamper=tamper)

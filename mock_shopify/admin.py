"""The test knobs under `/_mock/`: plain JSON, no auth, for a dev/test stand-in only."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_shopify.discovery import API_FIELDS, OIDC_FIELDS
from mock_shopify.knobs import Delay, Drip, Failure, Redirect
from mock_shopify.state import Credential, Store

TOKEN_FAILURES = (500, 502, 503, 429, 401)
# "empty" is the transient failure; the others mean misconfiguration (invalid_token: a public client's Origin).
TOKEN_401_KINDS = ("empty", "invalid_client", "unauthorized_client", "invalid_token")
GRAPHQL_FAILURES = (429, 500, 502, 503, 401, 402, 403, 423)
DISCOVERY_FAILURES = (404, 500, 502, 503)
DISCOVERY_FIELDS = (*OIDC_FIELDS, *API_FIELDS)
TAMPER_KINDS = ("bad_signature", "wrong_iss", "wrong_aud", "wrong_nonce", "expired", "unknown_kid")
REDIRECT_STATUSES = (301, 302, 307, 308)
_URL_BASE = re.compile(r"https?://[^/?#\s]+(/[^?#\s]*)?")
SETTINGS = ("access_token_ttl", "code_ttl", "id_token_ttl", "customer_requests_per_minute")


class BadKnob(Exception):
    """A knob body that does not make sense; answered with 400."""


def _int(body: dict[str, Any], name: str, *, minimum: int = 0, default: int | None = None) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise BadKnob(f"{name} must be an integer >= {minimum}")
    return value


def _failure(body: dict[str, Any], allowed: tuple[int, ...]) -> Failure:
    status = _int(body, "status")
    if status not in allowed:
        raise BadKnob(f"status must be one of {list(allowed)}")
    if "error" in body:
        raise BadKnob("error applies to fail_token only")
    retry_after = body.get("retry_after")
    if retry_after is not None:
        retry_after = _int(body, "retry_after")
    return Failure(count=_int(body, "count", default=1), status=status, retry_after=retry_after)


def _token_failure(body: dict[str, Any]) -> Failure:
    """`_failure` plus, for status 401, which one: `"error": "empty"` (the default) or a misconfiguration."""
    failure = _failure({k: v for k, v in body.items() if k != "error"}, TOKEN_FAILURES)
    if failure.status == 401:
        failure.error = body.get("error", "empty")
        if failure.error not in TOKEN_401_KINDS:
            raise BadKnob(f"error must be one of {list(TOKEN_401_KINDS)}")
    elif "error" in body:
        raise BadKnob("error applies to status 401 only")
    return failure


def _delay(body: dict[str, Any]) -> Delay:
    seconds = body.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise BadKnob("seconds must be a number >= 0")
    return Delay(count=_int(body, "count", default=1), seconds=float(seconds))


def _drip(body: dict[str, Any]) -> Drip:
    interval = body.get("interval")
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        raise BadKnob("interval must be a number > 0")
    return Drip(count=_int(body, "count", default=1), interval=float(interval))


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class AdminEndpoints:
    """`GET /_mock/stats`, `POST /_mock/<knob>` and `GET /_mock/customers/{email}`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        knobs: dict[str, Handler] = {
            "reset": self.reset,
            "settings": self.settings,
            "fail_token": lambda b: self._set("fail_token", _token_failure(b)),
            "fail_graphql": lambda b: self._set("fail_graphql", _failure(b, GRAPHQL_FAILURES)),
            "fail_discovery": lambda b: self._set("fail_discovery", _failure(b, DISCOVERY_FAILURES)),
            "hold_discovery": self.hold_discovery,
            "discovery_fields": self.discovery_fields,
            "discovery_redirect": self.discovery_redirect,
            "delay_token": lambda b: self._set("delay_token", _delay(b)),
            "delay_graphql": lambda b: self._set("delay_graphql", _delay(b)),
            "drip_token": lambda b: self._set("drip_token", _drip(b)),
            "drip_graphql": lambda b: self._set("drip_graphql", _drip(b)),
            "expire_access_tokens": self.expire_access_tokens,
            "revoke_refresh_tokens": self.revoke_refresh_tokens,
            "rotate_signing_key": self.rotate_signing_key,
            "tamper_next_id_token": self.tamper_next_id_token,
            "credentials": self.credentials,
            "fidelity": self.fidelity,
        }
        routes = [Route(f"/_mock/{name}", self._wrap(fn), methods=["POST"]) for name, fn in knobs.items()]
        return [
            *routes,
            Route("/_mock/stats", self.stats, methods=["GET"]),
            Route("/_mock/customers/{email}", self.customer, methods=["GET"]),
        ]

    @staticmethod
    def _wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise BadKnob("the body must be a JSON object")
                return JSONResponse({"ok": True, **handler(body)})
            except (BadKnob, ValueError) as exc:
                return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)

        return endpoint

    def _set(self, name: str, value: Failure | Delay | Drip) -> dict[str, Any]:
        setattr(self.store.knobs, name, value)
        return {name: asdict(value)}

    async def stats(self, request: Request) -> Response:
        # The fidelity switches ride along, so a failing test's stats say which shop it was talking to.
        return JSONResponse({**asdict(self.store.stats), "fidelity": asdict(self.store.knobs.fidelity)})

    async def customer(self, request: Request) -> Response:
        email = request.path_params["email"].lower()
        if email not in self.store.customers:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        # default=str renders datetimes and Decimals the way a test would write them.
        return JSONResponse(json.loads(json.dumps(asdict(self.store.customers[email]), default=str)))

    def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        self.store.reset()
        return {}

    def settings(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - set(SETTINGS)
        if unknown:
            raise BadKnob(f"unknown settings: {sorted(unknown)}")
        for name in body:
            setattr(self.store.knobs, name, _int(body, name))
        return {name: getattr(self.store.knobs, name) for name in SETTINGS}

    def expire_access_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        for token in self.store.access_tokens.values():
            token.expires_at = 0.0
        return {"expired": len(self.store.access_tokens)}

    def revoke_refresh_tokens(self, body: dict[str, Any]) -> dict[str, Any]:
        for token in self.store.refresh_tokens.values():
            token.live = False
        return {"revoked": len(self.store.refresh_tokens)}

    def rotate_signing_key(self, body: dict[str, Any]) -> dict[str, Any]:
        drop_old = body.get("drop_old", False)
        if not isinstance(drop_old, bool):
            raise BadKnob("drop_old must be a boolean")
        return {"kid": self.store.keys.rotate(drop_old=drop_old)}

    def tamper_next_id_token(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("kind")
        if kind not in TAMPER_KINDS:
            raise BadKnob(f"kind must be one of {list(TAMPER_KINDS)}")
        self.store.knobs.tamper_next_id_token = kind
        return {"kind": kind}

    def hold_discovery(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"hold": true}`: discovery documents wait until `{"hold": false}` (or a reset) releases them."""
        hold = body.get("hold")
        if not isinstance(hold, bool):
            raise BadKnob("hold must be a boolean")
        knobs = self.store.knobs
        if knobs.hold_discovery is not None:
            knobs.hold_discovery.set()
        # Made here, in the serving loop, so the event belongs to the loop the documents wait in.
        knobs.hold_discovery = asyncio.Event() if hold else None
        return {"hold": hold}

    def discovery_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"token_endpoint": "http://203.0.113.7/steal", ...}`: served in place of the real values."""
        unknown = set(body) - set(DISCOVERY_FIELDS)
        if unknown:
            raise BadKnob(f"unknown discovery fields: {sorted(unknown)}")
        if not all(isinstance(v, str) for v in body.values()):
            raise BadKnob("discovery field values must be strings")
        self.store.knobs.discovery_fields.update(body)
        return {"discovery_fields": self.store.knobs.discovery_fields}

    def fidelity(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"auth_layout": "custom_domain", ...}`: see mock_shopify/fidelity.py; the answer is every current value."""
        knobs = self.store.knobs
        knobs.fidelity = knobs.fidelity.updated(body)
        return {"fidelity": asdict(knobs.fidelity)}

    def discovery_redirect(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"to": "http://127.0.0.1:9000/_moved", "status": 301}`: both documents redirect; `{"to": null}` stops."""
        if "to" not in body or set(body) - {"to", "status"}:
            raise BadKnob('send "to" (a URL base, or null) and optionally "status"')
        to, status = body["to"], body.get("status", 301)
        if to is not None and not (isinstance(to, str) and _URL_BASE.fullmatch(to)):
            raise BadKnob("to must be an http(s) URL base with no query or fragment, or null")
        if status not in REDIRECT_STATUSES:
            raise BadKnob(f"status must be one of {list(REDIRECT_STATUSES)}")
        redirect = None if to is None else Redirect(to=to.rstrip("/"), status=status)
        self.store.knobs.discovery_redirect = redirect
        return {"discovery_redirect": None if redirect is None else asdict(redirect)}

    def credentials(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"add": {"client_id", "client_secret"}}` and/or `{"revoke_secret": "<secret>"}`."""
        if not {"add", "revoke_secret"} & set(body):
            raise BadKnob('send "add" and/or "revoke_secret"')
        if "add" in body:
            add = body["add"]
            if not isinstance(add, dict) or not all(
                isinstance(add.get(k), str) and add[k] for k in ("client_id", "client_secret")
            ):
                raise BadKnob("add needs non-empty client_id and client_secret strings")
            self.store.credentials.append(Credential(add["client_id"], add["client_secret"]))
        if "revoke_secret" in body:
            matches = [c for c in self.store.credentials if c.client_secret == body["revoke_secret"]]
            if not matches:
                raise BadKnob("no credential has that secret")
            for cred in matches:
                cred.revoked = True
        # Secrets are never echoed back.
        return {"credentials": [{"client_id": c.client_id, "revoked": c.revoked} for c in self.store.credentials]}

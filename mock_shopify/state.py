"""In-memory state: credentials, customers, login sessions, codes, tokens, counters, and the knobs' current values."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mock_shopify.config import MockConfig
from mock_shopify.customers import Customer, seed_customer
from mock_shopify.keys import KeyRing
from mock_shopify.knobs import Delivery, Knobs, Subscription
from mock_shopify.request_limit import RequestWindows


@dataclass
class Credential:
    client_id: str
    client_secret: str = field(repr=False)
    revoked: bool = False


@dataclass
class LoginSession:
    sid: str
    email: str


@dataclass
class AuthCode:
    value: str
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    email: str
    sid: str
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    email: str
    client_id: str
    expires_at: float
    # The code the token descends from, so a replayed code can revoke its whole family.
    family: str
    revoked: bool = False


@dataclass
class RefreshToken:
    email: str
    client_id: str
    scope: str
    family: str
    # The credential that authenticated the grant which issued this token (see refresh_survives_secret_revocation).
    issued_under: Credential
    live: bool = True


@dataclass
class Stats:
    grants: dict[str, int] = field(default_factory=lambda: {"authorization_code": 0, "refresh_token": 0})
    token_requests: int = 0
    token_failures_injected: int = 0
    graphql_requests: int = 0
    logouts: int = 0
    discovery_requests: int = 0  # both documents count, held, failed or redirected ones included
    discovery_redirects: int = 0
    # The query of the last GET /oauth/authorize, as sent (acr_values, login_hint_mode, locale, code_challenge...).
    last_authorize_params: dict[str, str] | None = None
    last_token_request: dict[str, Any] | None = None
    last_token_traceparent: str | None = None  # W3C trace context of the last token request
    last_graphql_request: dict[str, Any] | None = None
    user_agents: dict[str, str] = field(default_factory=dict)  # the last User-Agent per discovery document
    webhook_deliveries: list[Delivery] = field(default_factory=list)


class Store:
    """All mutable state of one stand-in instance; `reset()` returns it to a fresh start (keys survive)."""

    def __init__(self, config: MockConfig, keys: KeyRing) -> None:
        self.config = config
        self.keys = keys
        self.credentials: list[Credential] = []
        self.customers: dict[str, Customer] = {}
        self.sessions: dict[str, LoginSession] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        # Per-customer cost buckets: email -> (points available, when last topped up).
        self.buckets: dict[str, tuple[float, float]] = {}
        self.request_windows = RequestWindows()
        # The wall clock of the per-minute request windows; a test may swap in its own to be exact.
        self.clock: Callable[[], float] = time.time
        self.knobs = Knobs(config.access_token_ttl, config.code_ttl, config.id_token_ttl)
        self.stats = Stats()
        self.reset()

    def reset(self) -> None:
        """Forget every token, code, session, customer edit, knob and counter."""
        self.credentials = [Credential(cid, secret) for cid, secret in self.config.credentials]
        self.customers.clear()
        self.sessions.clear()
        self.codes.clear()
        self.access_tokens.clear()
        self.refresh_tokens.clear()
        self.buckets.clear()
        self.request_windows.clear()
        if self.knobs.hold_discovery is not None:
            self.knobs.hold_discovery.set()
        self.knobs = Knobs(self.config.access_token_ttl, self.config.code_ttl, self.config.id_token_ttl)
        if self.config.webhook_url:
            self.knobs.webhooks = Subscription(self.config.webhook_url, self.config.webhook_secret)
        self.stats = Stats()

    # Credentials -------------------------------------------------------------------------------------------

    def client_known(self, client_id: str) -> bool:
        """Whether `client_id` has at least one unrevoked credential."""
        return any(c.client_id == client_id and not c.revoked for c in self.credentials)

    def authenticate(self, client_id: str, client_secret: str) -> Credential | None:
        """The live credential of the app the pair matches, or None (constant-time on the secret)."""
        match: Credential | None = None
        for cred in self.credentials:
            # Compare every candidate so timing does not reveal which secret came close.
            same_id = hmac.compare_digest(cred.client_id.encode(), client_id.encode())
            same_secret = hmac.compare_digest(cred.client_secret.encode(), client_secret.encode())
            if same_id and same_secret and not cred.revoked:
                match = cred
        return match

    def app_client_ids(self) -> set[str]:
        """Every client_id the app has ever had, revoked or not (an old ID token still names its audience)."""
        return {c.client_id for c in self.credentials}

    # Customers and sessions --------------------------------------------------------------------------------

    def customer(self, email: str) -> Customer:
        """The customer for `email`, seeded on first sight."""
        key = email.lower()
        if key not in self.customers:
            self.customers[key] = seed_customer(key, base_url=self.config.base_url)
        return self.customers[key]

    def login(self, email: str) -> LoginSession:
        self.customer(email)
        session = LoginSession(sid=secrets.token_urlsafe(16), email=email.lower())
        self.sessions[session.sid] = session
        return session

    # Codes and tokens --------------------------------------------------------------------------------------

    def issue_code(self, **fields: Any) -> AuthCode:
        code = AuthCode(value=secrets.token_urlsafe(32), expires_at=time.time() + self.knobs.code_ttl, **fields)
        self.codes[code.value] = code
        return code

    def issue_tokens(
        self, *, email: str, client_id: str, scope: str, family: str, issued_under: Credential
    ) -> tuple[str, str]:
        """A new access token and refresh token pair, for a grant authenticated with `issued_under`."""
        access = f"shcat_{secrets.token_urlsafe(32)}"
        refresh = f"shcrt_{secrets.token_urlsafe(32)}"
        expires_at = time.time() + self.knobs.access_token_ttl
        self.access_tokens[access] = AccessToken(email, client_id, expires_at, family)
        self.refresh_tokens[refresh] = RefreshToken(email, client_id, scope, family, issued_under)
        return access, refresh

    def revoke_family(self, family: str) -> None:
        for access in self.access_tokens.values():
            if access.family == family:
                access.revoked = True
        for refresh in self.refresh_tokens.values():
            if refresh.family == family:
                refresh.live = False

    def live_access_token(self, value: str) -> AccessToken | None:
        token = self.access_tokens.get(value)
        if token is None or token.revoked or time.time() >= token.expires_at:
            return None
        return token

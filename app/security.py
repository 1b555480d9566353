"""Cookies, CSRF proof and safe redirect targets."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from itsdangerous import BadSignature, Signer
from starlette.requests import HTTPConnection
from starlette.responses import Response

from app.config import Settings, origin_of
from app.errors import BFFError

_ID = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")
MAX_RETURN_TO = 2048


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    login: str


class CookieJar:
    """Writes and reads the BFF's two cookies; both hold only a signed opaque id.

    Signing keys rotate: cookies are signed with the first of BFF_SESSION_SECRET's keys, and a cookie
    signed with any listed key is accepted (and flagged for re-signing).
    """

    def __init__(self, settings: Settings) -> None:
        keys = settings.session_secrets
        # One salt per purpose: a login-binding cookie can never pass as a session cookie.
        # itsdangerous signs with the LAST key of a list and verifies with all of them.
        self._session = Signer(keys[0], salt="bff.session")
        self._session_any = Signer(list(reversed(keys)), salt="bff.session") if len(keys) > 1 else None
        self._login = Signer(list(reversed(keys)), salt="bff.login")
        self._secure = settings.secure_cookies
        prefix = "__Host-" if self._secure else ""
        self.names = CookieNames(session=f"{prefix}bff_session", login=f"{prefix}bff_login")
        self._session_max_age = settings.bff_session_absolute_lifetime

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        # Secure only over https (browsers drop Secure cookies on http); __Host- demands Secure,
        # Path=/ and no Domain. Lax, because the callback arrives as a top-level navigation from Shopify.
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self._secure, httponly=True, samesite="lax")

    def _clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self._secure, httponly=True, samesite="lax")

    @staticmethod
    def _unsign(signer: Signer, raw: str | None) -> str | None:
        if not raw:
            return None
        try:
            value = signer.unsign(raw).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        return value if _ID.match(value) else None

    def set_session(self, response: Response, sid: str) -> None:
        self._set(response, self.names.session, self._session.sign(sid).decode(), self._session_max_age)

    def session_cookie_header(self, sid: str) -> tuple[bytes, bytes]:
        """The raw `Set-Cookie` header for a session, for the raw-ASGI hot path."""
        scratch = Response()
        self.set_session(scratch, sid)
        return next((k, v) for k, v in scratch.raw_headers if k == b"set-cookie")

    def clear_session(self, response: Response) -> None:
        self._clear(response, self.names.session)

    def session_id(self, conn: HTTPConnection) -> str | None:
        """The session id from a validly signed cookie, else None (tampered counts as absent)."""
        return self.read_session(conn)[0]

    def read_session(self, conn: HTTPConnection) -> tuple[str | None, bool]:
        """(session id, whether the cookie was signed with an older key and should be re-signed)."""
        return self.read_session_value(conn.cookies.get(self.names.session))

    def read_session_value(self, raw: str | None) -> tuple[str | None, bool]:
        sid = self._unsign(self._session, raw)
        if sid is not None or self._session_any is None:
            return sid, False
        sid = self._unsign(self._session_any, raw)
        return sid, sid is not None

    def has_session_cookie(self, conn: HTTPConnection) -> bool:
        return self.names.session in conn.cookies

    def set_login_binding(self, response: Response, binding: str) -> None:
        self._set(response, self.names.login, self._login.sign(binding).decode(), 600)

    def login_binding(self, conn: HTTPConnection) -> str | None:
        return self._unsign(self._login, conn.cookies.get(self.names.login))


def client_ip(conn: HTTPConnection, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the TCP peer, or, only when that peer is a trusted proxy, the nearest
    X-Forwarded-For entry that is not itself a trusted proxy (never the spoofable leftmost one)."""
    peer = conn.client.host if conn.client else "unknown"
    if not trusted_proxies or not _in_networks(peer, trusted_proxies):
        return peer
    forwarded = [h.strip() for h in conn.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(forwarded):
        if not _in_networks(hop, trusted_proxies):
            return hop
    return forwarded[0] if forwarded else peer


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_valid_id(value: str | None) -> bool:
    return bool(value and _ID.match(value))


def safe_return_to(raw: str | None, settings: Settings) -> str:
    """An absolute URL on a trusted origin to send the browser back to, or a 400.

    Relative paths resolve against the default origin; `//host`, `/\\host`, control characters and
    schemes other than http(s) are refused outright rather than "fixed".
    """
    if raw is None or raw == "":
        return settings.default_return_to
    if len(raw) > MAX_RETURN_TO or _CONTROL.search(raw):
        raise BFFError(400, "invalid_return_to", "return_to is too long or has forbidden characters.")
    if raw.startswith("/") and not raw.startswith("//"):
        return settings.default_return_to.rstrip("/") + raw
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and not parts.username
    except ValueError:
        valid = False
    if not valid:
        raise BFFError(400, "invalid_return_to", "return_to must be a path or a URL on an allowed origin.")
    if not is_trusted_origin(raw, settings):
        raise BFFError(400, "invalid_return_to", "return_to is not on an allowed origin (BFF_ALLOWED_ORIGINS).")
    return raw


def is_trusted_origin(origin: str, settings: Settings) -> bool:
    try:
        return origin != "null" and origin_of(origin) in settings.trusted_origins
    except ValueError:
        return False


def require_csrf_proof(conn: HTTPConnection, settings: Settings, *, allow_form: bool) -> None:
    """Reject a state-changing request that a foreign site could have sent (see `check_csrf`)."""
    check_csrf(conn.headers.get("origin"), conn.headers.get("x-csrf"), settings, allow_form=allow_form)


def check_csrf(origin: str | None, x_csrf: str | None, settings: Settings, *, allow_form: bool) -> None:
    """A present `Origin` must be trusted. Then either the custom `X-CSRF: 1` header (which forces a CORS
    preflight, so only trusted origins can send it) or, for form posts, that trusted Origin is proof."""
    if origin is not None and not is_trusted_origin(origin, settings):
        raise BFFError(403, "csrf_failed", "The request's Origin is not allowed.")
    if x_csrf == "1":
        return
    if allow_form and origin is not None:
        return
    raise BFFError(403, "csrf_failed", "Missing CSRF proof: send the header `X-CSRF: 1`.")

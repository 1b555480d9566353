"""The BFF's two cookies, written and read in one place; both hold only a signed opaque id.

`bff_session` names the server-side session; `bff_login` binds a pending login to the browser that
started it. Each is written by `_header`, with every flag spelled out: HttpOnly (no page script reads
them), SameSite=Lax (the callback arrives as a top-level navigation from Shopify), Path=/ (or a shop's
path prefix), no Domain, and on https Secure with the `__Host-` prefix (`__Secure-` under a path prefix,
which `__Host-` forbids). Under BFF_SHOPS_FILE the names end in `-<shop id>`.

Signing keys rotate: cookies are signed with the first of BFF_SESSION_SECRET's keys, and a cookie signed
with any listed key is accepted (and flagged for re-signing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, Signer
from starlette.requests import cookie_parser

if TYPE_CHECKING:
    from app.config import Settings

# Opaque ids; a session id may start with its customer's 16-hex-digit tag and a dot (store/sessions.py).
_ID = re.compile(r"^(?:[0-9a-f]{16}\.)?[A-Za-z0-9_-]{20,100}$")
LOGIN_BINDING_MAX_AGE = 600
# Session cookies already verified, remembered per jar: a browser sends the same signed value on every
# request, and the HMAC (itsdangerous derives its key again on each call) was the hot path's largest own
# cost after the Redis read. Only validly signed values are kept, so a flood of forged ones cannot fill it.
VERIFIED_KEPT = 10_000
SetCookie = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    login: str


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """What a request's session cookie says: the session id if validly signed, and whether to re-sign it."""

    sid: str | None
    resign: bool
    present: bool


def is_valid_id(value: str | None) -> bool:
    return bool(value and _ID.match(value))


class CookieJar:
    """Signs, writes and reads the session and login-binding cookies."""

    def __init__(
        self,
        *,
        signing_keys: tuple[bytes, ...],
        secure: bool,
        session_max_age: int,
        shop_id: str | None = None,
        path: str = "/",
    ) -> None:
        """`shop_id` (multi-shop) salts the signatures per shop, besides its own keys, and names the cookies
        after the shop; `path` scopes them to a shop served under a path prefix."""
        # One salt per purpose (and shop): a login-binding cookie can never pass as a session cookie.
        # itsdangerous signs with the LAST key of a list and verifies with all of them.
        scope = f".{shop_id}" if shop_id else ""
        self._session = Signer(signing_keys[0], salt=f"bff.session{scope}")
        older = list(reversed(signing_keys))
        self._session_any = Signer(older, salt=f"bff.session{scope}") if len(signing_keys) > 1 else None
        self._login = Signer(older, salt=f"bff.login{scope}")
        self._secure = secure
        self._path = path
        # __Host- requires Path=/; a cookie under a path prefix can still insist on Secure with __Secure-.
        prefix = ("__Host-" if path == "/" else "__Secure-") if secure else ""
        # A shop's own names: shops on one host whose paths nest (or a root shop beside a prefixed one) would
        # otherwise send the browser two same-named cookies, and only one of them can be read.
        suffix = f"-{shop_id}" if shop_id else ""
        self.names = CookieNames(session=f"{prefix}bff_session{suffix}", login=f"{prefix}bff_login{suffix}")
        self._session_max_age = session_max_age
        # The signing keys are fixed for the jar's lifetime, so a verdict once reached stays true.
        self._verified: dict[str, SessionCookie] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> CookieJar:
        """The jar for one shop's settings (the one shop's, without BFF_SHOPS_FILE)."""
        return cls(
            signing_keys=settings.session_keys,
            secure=settings.secure_cookies,
            session_max_age=settings.bff_session_absolute_lifetime,
            shop_id=settings.shop_id,
            # A shop's cookies stay under its path prefix; one shop keeps Path=/ whatever BFF_PUBLIC_URL's path,
            # as before BFF_SHOPS_FILE existed.
            path=(settings.public_path or "/") if settings.shop_id else "/",
        )

    def _header(self, name: str, value: str, max_age: int) -> SetCookie:
        # Secure only over https: browsers drop Secure cookies on http (local development).
        flags = f"{name}={value}; Max-Age={max_age}; Path={self._path}; HttpOnly; SameSite=lax"
        if max_age == 0:
            flags += "; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        if self._secure:
            flags += "; Secure"
        return b"set-cookie", flags.encode("latin-1")

    @staticmethod
    def _unsign(signer: Signer, raw: str | None) -> str | None:
        if not raw:
            return None
        try:
            value = signer.unsign(raw).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        return value if _ID.match(value) else None

    def session(self, cookie_header: str | None) -> SessionCookie:
        """Read the session cookie from a raw `Cookie` header; tampered counts as absent."""
        raw = cookie_parser(cookie_header).get(self.names.session) if cookie_header else None
        known = self._verified.get(raw) if raw else None
        if known is not None:
            return known
        sid = self._unsign(self._session, raw)
        resign = False
        if sid is None and self._session_any is not None:
            sid = self._unsign(self._session_any, raw)
            resign = sid is not None
        found = SessionCookie(sid=sid, resign=resign, present=raw is not None)
        if raw and sid is not None:
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.clear()  # bounded; the next requests simply verify again
            self._verified[raw] = found
        return found

    def set_session(self, sid: str) -> SetCookie:
        return self._header(self.names.session, self._session.sign(sid).decode(), self._session_max_age)

    def clear_session(self) -> SetCookie:
        return self._header(self.names.session, '""', 0)

    def login_binding(self, cookie_header: str | None) -> str | None:
        raw = cookie_parser(cookie_header).get(self.names.login) if cookie_header else None
        return self._unsign(self._login, raw)

    def set_login_binding(self, binding: str) -> SetCookie:
        return self._header(self.names.login, self._login.sign(binding).decode(), LOGIN_BINDING_MAX_AGE)

    def clear_login_binding(self) -> SetCookie:
        return self._header(self.names.login, '""', 0)

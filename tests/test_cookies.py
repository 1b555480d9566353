"""The session cookie's signature check, with verdicts remembered per jar (cookies.py)."""

from __future__ import annotations

from app.cookies import VERIFIED_KEPT, CookieJar
from app.security import new_id


def _jar(*keys: bytes) -> CookieJar:
    return CookieJar(signing_keys=keys, secure=False, session_max_age=3600)


def _cookie(jar: CookieJar, sid: str) -> str:
    _, header = jar.set_session(sid)
    return header.decode().split(";", 1)[0]


def test_a_remembered_valid_cookie_vouches_for_no_other_value() -> None:
    jar = _jar(b"k" * 32)
    sid = new_id()
    valid = _cookie(jar, sid)
    assert jar.session(valid).sid == sid
    assert jar.session(valid).sid == sid  # the second read comes from memory
    forged = valid.rsplit(".", 1)[0] + ".forgedsignature"
    assert jar.session(forged).sid is None
    assert jar.session(f"bff_session={sid}").sid is None  # unsigned
    # Another deployment's jar (other keys) never sees this jar's verdicts.
    assert _jar(b"o" * 32).session(valid).sid is None


def test_an_older_keys_cookie_is_still_flagged_for_resigning_when_remembered() -> None:
    old, new = _jar(b"o" * 32), _jar(b"n" * 32, b"o" * 32)
    sid = new_id()
    cookie = _cookie(old, sid)
    for _ in range(2):
        found = new.session(cookie)
        assert (found.sid, found.resign) == (sid, True)


def test_the_memory_of_verified_cookies_is_bounded() -> None:
    jar = _jar(b"k" * 32)
    cookies = [_cookie(jar, new_id()) for _ in range(VERIFIED_KEPT + 10)]
    for cookie in cookies:
        assert jar.session(cookie).sid is not None
    assert len(jar._verified) <= VERIFIED_KEPT

"""The error catalog is the one list of codes, and the front-end guide's table says the same."""

from __future__ import annotations

import re
from pathlib import Path

from app.errors import BFFError, _all, by_code, catalog, render

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "frontend.md"


def guide_error_table() -> dict[str, tuple[int, str]]:
    text = GUIDE.read_text()
    # From the "Error codes" heading to the next heading of any level.
    section = re.split(r"^#+ Error codes$", text, maxsplit=1, flags=re.MULTILINE)[1]
    section = re.split(r"^#", section, maxsplit=1, flags=re.MULTILINE)[0]
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \| (.+?) \|$", section, flags=re.MULTILINE)
    return {code: (int(status), meaning) for status, code, meaning in rows}


def test_the_front_end_guide_error_table_is_the_catalog() -> None:
    assert guide_error_table() == catalog()


def test_every_code_has_one_status_and_a_meaning() -> None:
    statuses: dict[str, set[int]] = {}
    for cls in _all(BFFError):
        statuses.setdefault(cls.code, set()).add(cls.status)
    assert {code: s for code, s in statuses.items() if len(s) > 1} == {}
    for code, (status, meaning) in catalog().items():
        found = by_code(code)
        assert found is not None and found.status == status, code
        assert 400 <= status < 600 and meaning.endswith("."), code


def test_render_gives_the_one_body_shape() -> None:
    cls = by_code("rate_limited")
    assert cls is not None
    status, headers, body = render(cls("Slow down.", headers={"Retry-After": "3"}))
    assert status == 429
    assert body == b'{"error": "rate_limited", "detail": "Slow down."}'
    assert headers == [(b"content-type", b"application/json"), (b"retry-after", b"3")]

"""Reading `application/x-www-form-urlencoded` bodies without python-multipart."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"


class FormError(ValueError):
    """The body is not a well-formed urlencoded form."""


async def read_form(request: Request) -> dict[str, str]:
    """The form fields; raises FormError for another content type, bad encoding or a repeated field."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise FormError(f"Content-Type must be {FORM_TYPE}")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise FormError("the form is not UTF-8") from exc
    fields = dict(pairs)
    # RFC 6749 §3.1: request parameters must not be included more than once.
    if len(fields) != len(pairs):
        raise FormError("a parameter was repeated")
    return fields

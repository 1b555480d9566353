"""The token endpoint's error answers: RFC 6749 errors, Shopify's 401 kinds, and injected failures."""

from __future__ import annotations

from starlette.responses import HTMLResponse, JSONResponse, Response

from mock_shopify.knobs import Failure

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_HTML_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class OAuthError(Exception):
    """An RFC 6749 error answer: `{"error": ..., "error_description": ...}`."""

    def __init__(self, status: int, error: str, description: str, *, basic: bool = False) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.basic = status, error, description, basic

    def response(self) -> Response:
        headers = dict(NO_STORE)
        if self.status == 401 and self.basic:
            # RFC 6749 §5.2: a failed Basic authentication names the scheme to use.
            headers["WWW-Authenticate"] = 'Basic realm="Shopify"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers=headers)


def injected_failure(failure: Failure) -> Response:
    """The answer for a `fail_token` failure: a 429, one of the 401 kinds, or an edge's HTML 5xx."""
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    if failure.status == 429:
        headers.setdefault("Retry-After", "1")
        body = {"error": "too_many_requests", "error_description": "Too many requests. Try again later."}
        return JSONResponse(body, status_code=429, headers=headers)
    if failure.status == 401:
        return _unauthorized(failure.error or "empty", headers)
    text = _HTML_ERRORS.get(failure.status, "Internal Server Error")
    html = f"<!doctype html><html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>"
    return HTMLResponse(html, status_code=failure.status, headers=headers)


def _unauthorized(kind: str, headers: dict[str, str]) -> Response:
    """The token endpoint's 401s, as Hydrogen #3916 and the docs classify them (descriptions are unconfirmed)."""
    if kind == "invalid_token":
        # What Shopify sends a public client whose Origin is missing or unlisted: only the header says why.
        # Unconfirmed: the body; an empty one is the least a client can rely on.
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return Response(b"", status_code=401, headers={**NO_STORE, **headers, **challenge})
    if kind == "invalid_client":
        error = OAuthError(401, "invalid_client", "Client authentication failed.", basic=True)
    elif kind == "unauthorized_client":
        description = "The authenticated client is not authorized to use this authorization grant type."
        error = OAuthError(401, "unauthorized_client", description)
    else:
        # Shopify's transient upstream failure: an empty error code, not invalid_client or invalid_grant.
        error = OAuthError(401, "", "Access token request error.")
    response = error.response()
    response.headers.update(headers)
    return response

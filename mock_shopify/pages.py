"""The stand-in's HTML: the hosted login page and the error pages Shopify shows instead of redirecting."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from starlette.responses import HTMLResponse

_STYLE = """
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f4f5;color:#18181b}
main{max-width:380px;margin:12vh auto;background:#fff;border-radius:12px;padding:32px;
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:1.25rem;margin:0 0 4px}p{color:#52525b;margin:0 0 20px;font-size:.9rem}
label{display:block;font-size:.85rem;margin-bottom:6px}
input[type=email]{box-sizing:border-box;width:100%;padding:10px 12px;border:1px solid #d4d4d8;
border-radius:8px;font-size:1rem}
button{margin-top:16px;width:100%;padding:11px;border:0;border-radius:8px;background:#5c6ac4;color:#fff;
font-size:1rem;cursor:pointer}
.error{color:#b91c1c;font-size:.85rem;margin:8px 0 0}.meta{margin-top:20px;font-size:.75rem;color:#a1a1aa}
"""


def _page(title: str, body: str, *, lang: str = "en", status: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    # The login page must never be cached or framed, as on the real hosted page.
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    return HTMLResponse(html, status_code=status, headers=headers)


def login_page(
    *,
    action: str,
    params: Mapping[str, str],
    email: str = "",
    error: str | None = None,
    locale: str = "en",
    region_country: str | None = None,
    provider: str | None = None,
    status: int = 200,
    shop_name: str | None = None,
) -> HTMLResponse:
    """The email sign-in form; every authorize parameter rides along in a hidden field."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items() if k != "email"
    )
    error_html = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    region = f" · region {escape(region_country)}" if region_country else ""
    # The real page hands over to the provider; the stand-in says which one was asked for and signs in by email.
    via = f' · provider <span id="provider">{escape(provider)}</span>' if provider else ""
    shop = f' · <span id="shop-name">{escape(shop_name)}</span>' if shop_name else ""
    body = (
        f"<h1>Sign in</h1><p>Mock Shopify{shop} — enter any email to continue.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<label for="email">Email</label>'
        f'<input type="email" id="email" name="email" value="{escape(email)}" autocomplete="email" autofocus>'
        f'{error_html}<button type="submit" id="login-submit">Continue</button></form>'
        f'<div class="meta">Locale: <span id="locale">{escape(locale)}</span>{region}{via}</div>'
    )
    return _page("Sign in", body, lang=locale, status=status)


def error_page(message: str, *, status: int = 400) -> HTMLResponse:
    """Shopify's hosted error page, e.g. `The error was: "redirect_uri" mismatch`."""
    body = f"<h1>Something went wrong</h1><p>The error was: {escape(message, quote=False)}</p>"
    return _page("Error", body, status=status)


def checkout_page(
    *, buyer: str | None, company: str | None, lines: list[tuple[str, int, str]], total: str
) -> HTMLResponse:
    """Shopify's checkout, as far as a test can see it: who is buying, and what."""
    who = f"Checking out as {buyer}" if buyer else "Guest checkout"
    rows = "".join(
        f'<li data-testid="checkout-line">{escape(title)} &times; {quantity} <span>{escape(price)}</span></li>'
        for title, quantity, price in lines
    )
    body = (
        f'<h1 id="checkout-identity" data-testid="checkout-identity">{escape(who)}</h1>'
        + (f'<p id="checkout-company" data-testid="checkout-company">For {escape(company)}</p>' if company else "")
        + f'<ul data-testid="checkout-lines">{rows}</ul><p>Total <strong data-testid="checkout-total">'
        f"{escape(total)}</strong></p>"
    )
    return _page("Checkout", body)

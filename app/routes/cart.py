"""`POST /cart/buyer-identity` and `POST /cart/checkout`: the signed-in customer on their cart, set here.

Both are POSTs with CSRF proof, checked before anything else (no session read, no Shopify call): a GET,
or a POST without proof, would let a foreign page put a signed-in victim's token on the attacker's cart
and check out as the victim. `/cart/buyer-identity` is a fetch (`X-CSRF: 1`); `/cart/checkout` may also
be a plain form post, whose trusted `Origin` is its proof, as for logout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.accept import HTML, JSON, preferred
from app.bodies import read_body
from app.carts import CartChoice, Checkout
from app.cookies import SetCookie
from app.deps import CartService, ClientIP, Cookies, CookieSession, Limits, Sessions, SettingsDep, require
from app.deps import session_from_cookie as read_session
from app.errors import InvalidJSON, InvalidRequest, UnsupportedMediaType
from app.security import check_csrf
from app.store.rate_limits import ip_bucket

router = APIRouter(prefix="/cart", tags=["cart"])

MAX_BODY = 4096  # a cart id and two short options: nothing legitimate comes near it
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
# Shopify's cart ids carry their key: gid://shopify/Cart/<token>?key=<key>.
CART_ID = re.compile(r"gid://shopify/Cart/[A-Za-z0-9_-]{1,200}(\?key=[A-Za-z0-9_-]{1,200})?")
LOCATION_ID = re.compile(r"gid://shopify/CompanyLocation/[0-9]{1,20}")
# Shopify's CountryCode: ISO 3166-1 alpha-2 plus AC, TA, XK and ZZ. Checked here, because Shopify's own
# refusal of a bad enum value is a top-level GraphQL error, whose message quotes the variables.
COUNTRIES = frozenset(
    "AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW "
    "BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ "
    "FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ "
    "IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH "
    "MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL "
    "PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TA TC "
    "TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW "
    "ZZ".split()
)
_TOO_MANY = "Too many signed-out checkouts from this address."


def _fields(raw: bytes, content_type: str) -> dict[str, Any]:
    if content_type == FORM_TYPE:
        try:
            pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest("The form is not well-formed UTF-8 `application/x-www-form-urlencoded`.") from exc
        if len({k for k, _ in pairs}) != len(pairs):
            raise InvalidRequest("A form field was repeated.")
        return dict(pairs)
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidJSON("The body must be JSON.") from exc
    if not isinstance(document, dict):
        raise InvalidRequest('The body must be a JSON object {"cartId": "gid://shopify/Cart/..."}.')
    return document


def _optional(fields: dict[str, Any], name: str, valid: Callable[[str], object]) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not valid(value):
        raise InvalidRequest(f"`{name}` is malformed.")
    return value


async def _choice(request: Request, settings: SettingsDep, *, forms: bool) -> CartChoice:
    """The request's cart, validated before any session is read or anything is sent to Shopify."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    accepted = (JSON_TYPE, FORM_TYPE) if forms else (JSON_TYPE,)
    if content_type not in accepted:
        raise UnsupportedMediaType(f"Send the body as {' or '.join(accepted)}.")
    raw = await read_body(
        request.receive,
        request.headers.get("content-length"),
        limit=MAX_BODY,
        deadline=settings.bff_body_read_timeout,
        what="The cart request",
    )
    fields = _fields(raw, content_type)
    cart_id = fields.get("cartId")
    if not isinstance(cart_id, str) or not CART_ID.fullmatch(cart_id):
        raise InvalidRequest("`cartId` must be a Storefront cart id: gid://shopify/Cart/<token>?key=<key>.")
    return CartChoice(
        cart_id=cart_id,
        company_location_id=_optional(fields, "companyLocationId", LOCATION_ID.fullmatch),
        country_code=_optional(fields, "countryCode", COUNTRIES.__contains__),
    )


def _cookie_upkeep(found: CookieSession, cookies: Cookies) -> list[SetCookie]:
    """A re-signed cookie for a session signed with an older key; a cleared one for a session that ended."""
    if found.session is not None:
        return [cookies.set_session(found.session.sid)] if found.resign else []
    return [cookies.clear_session()] if found.had_cookie else []


def _json(checkout: Checkout, cookies: list[SetCookie]) -> JSONResponse:
    response = JSONResponse({"cartId": checkout.cart_id, "checkoutUrl": checkout.checkout_url})
    response.raw_headers.extend(cookies)
    return response


@router.post("/buyer-identity", summary="Put the signed-in customer on a cart (server-side, with their token)")
async def buyer_identity(
    request: Request,
    settings: SettingsDep,
    carts: CartService,
    cookies: Cookies,
    sessions: Sessions,
    buyer_ip: ClientIP,
) -> Response:
    check_csrf(request.headers.get("origin"), request.headers.get("x-csrf"), settings.trusted_origins, allow_form=False)
    choice = await _choice(request, settings, forms=False)
    # Counted against the session's /graphql budget: one more call per page, in the same round trip.
    found = await read_session(request.headers.get("cookie"), cookies, sessions, rates=settings.graphql_rates)
    checkout = await carts.attach(require(found), choice, buyer_ip=buyer_ip, purpose="attach")
    return _json(checkout, _cookie_upkeep(found, cookies))


@router.post("/checkout", summary="Attach the freshest token to the cart, then go to its checkout")
async def checkout(
    request: Request,
    settings: SettingsDep,
    carts: CartService,
    cookies: Cookies,
    sessions: Sessions,
    limits: Limits,
    buyer_ip: ClientIP,
) -> Response:
    check_csrf(request.headers.get("origin"), request.headers.get("x-csrf"), settings.trusted_origins, allow_form=True)
    choice = await _choice(request, settings, forms=True)
    found = await read_session(request.headers.get("cookie"), cookies, sessions, rates=settings.graphql_rates)
    if found.session is not None:
        result = await carts.attach(found.session, choice, buyer_ip=buyer_ip, purpose="checkout")
    else:
        # Each one costs a private-token Storefront call: the same per-address budget as a login.
        await limits.hit("cart", ip_bucket(buyer_ip), settings.login_rate, detail=_TOO_MANY)
        result = await carts.as_guest(choice, buyer_ip=buyer_ip)
    upkeep = _cookie_upkeep(found, cookies)
    if preferred(request.headers.get("accept"), (HTML, JSON)) == JSON:
        return _json(result, upkeep)  # a script that cannot follow a cross-origin redirect itself
    response = RedirectResponse(result.checkout_url, status_code=303)
    response.raw_headers.extend(upkeep)
    return response

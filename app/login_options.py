"""The optional login parameters `/auth/login` passes on to Shopify's login page, checked and normalised.

Shopify documents `locale`, `region_country`, `login_hint` and `prompt=none`; its login page also takes
`acr_values` (`provider:google` starts a social login) and `login_hint_mode=submit` (submits the hinted
email at once), which Hydrogen sends (#3358, #3391). Locales are normalised the way Hydrogen does, so
`zh_CN`, `ZH_CN` and `zh-cn` all reach Shopify as `zh-CN`. Anything else is a 400 naming the parameter,
never passed through: these values end up in a URL on the shop's domain.
"""

from __future__ import annotations

import re

from app.errors import InvalidRequest

_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_ACR = re.compile(r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,190}$")


def normalize_locale(value: str) -> str:
    """`zh_CN`, `ZH_CN`, `zh-cn` → `zh-CN`; `EN` → `en`. Raises a 400 naming `locale` otherwise."""
    found = _LOCALE.match(value)
    if not found:
        raise InvalidRequest("locale must be a language with an optional region, like `en`, `fr-CA` or `zh_CN`.")
    language, region = found[1].lower(), found[2]
    return f"{language}-{region.upper()}" if region else language


def login_options(
    *,
    locale: str | None,
    region_country: str | None,
    login_hint: str | None,
    login_hint_mode: str | None,
    acr_values: str | None,
    prompt: str | None,
) -> dict[str, str]:
    """The authorization request's optional parameters, only those given, each checked."""
    options: dict[str, str] = {}
    if locale:
        options["locale"] = normalize_locale(locale)
    if region_country:
        if not _COUNTRY.match(region_country):
            raise InvalidRequest("region_country must be an ISO 3166-1 alpha-2 code like `CA`.")
        options["region_country"] = region_country.upper()
    if login_hint:
        if not _EMAIL.match(login_hint):
            raise InvalidRequest("login_hint must be an email address.")
        options["login_hint"] = login_hint
    if login_hint_mode:
        if login_hint_mode != "submit":
            raise InvalidRequest("login_hint_mode may only be `submit`.")
        if not login_hint:
            raise InvalidRequest("login_hint_mode=submit needs a login_hint.")
        options["login_hint_mode"] = login_hint_mode
    if acr_values:
        values = acr_values.split()
        if not values or len(values) > 4 or not all(_ACR.match(v) for v in values):
            raise InvalidRequest("acr_values must be like `provider:google` (space-separated, at most 4).")
        options["acr_values"] = " ".join(values)
    if prompt:
        if prompt != "none":
            raise InvalidRequest("prompt may only be `none`.")
        options["prompt"] = prompt
    return options

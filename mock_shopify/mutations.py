"""The customer and address mutations: Shopify's validation rules and userErrors codes, then the change."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from mock_shopify.customers import Address, Customer
from mock_shopify.territories import COUNTRIES, ZONES

UserError = dict[str, Any]

MAX_LENGTH = 255
_HTML = re.compile(r"<[^>]*>")
_URL = re.compile(r"https?://|www\.", re.IGNORECASE)
_PHONE = re.compile(r"\+[1-9]\d{6,14}")  # E.164
# GraphQL input name -> Address attribute.
ADDRESS_FIELDS = {
    "address1": "address1", "address2": "address2", "city": "city", "company": "company",
    "firstName": "first_name", "lastName": "last_name", "phoneNumber": "phone_number",
    "territoryCode": "territory_code", "zoneCode": "zone_code", "zip": "zip",
}  # fmt: skip


def _error(field: list[str] | None, code: str, message: str) -> UserError:
    return {"field": field, "code": code, "message": message}


def _text_errors(field: list[str], value: str) -> list[UserError]:
    if _HTML.search(value):
        return [_error(field, "CONTAINS_HTML_TAGS", f"{field[-1]} cannot contain HTML tags.")]
    if len(value) > MAX_LENGTH:
        return [_error(field, "TOO_LONG", f"{field[-1]} is too long (maximum is {MAX_LENGTH} characters).")]
    return []


def update_customer(customer: Customer, data: dict[str, Any]) -> list[UserError]:
    """customerUpdate: firstName and lastName only (email and phone are not editable, as of 2026-04's schema)."""
    if not any(data.get(name) is not None for name in ("firstName", "lastName")):
        return [_error(["input"], "CUSTOMER_INPUT_ARGUMENT_EMPTY", "At least one argument is required.")]
    errors: list[UserError] = []
    for name in ("firstName", "lastName"):
        value = data.get(name)
        if value is None:
            continue
        errors += _text_errors(["input", name], value)
        if _URL.search(value):
            errors.append(_error(["input", name], "CONTAINS_URL", f"{name} cannot contain a URL."))
    if errors:
        return errors
    if (first := data.get("firstName")) is not None:
        customer.first_name = first.strip() or None
    if (last := data.get("lastName")) is not None:
        customer.last_name = last.strip() or None
    return []


def _find(customer: Customer, address_id: str) -> Address | None:
    return next((a for a in customer.addresses if a.id == address_id), None)


def _missing(address_id: str) -> list[UserError]:
    return [_error(["addressId"], "ADDRESS_ID_DOES_NOT_EXIST", f"Address {address_id} does not exist.")]


def _apply(base: Address, data: dict[str, Any]) -> Address:
    changes: dict[str, Any] = {ADDRESS_FIELDS[k]: v.strip() or None for k, v in data.items() if isinstance(v, str)}
    return replace(base, **changes)


def _check_address(customer: Customer, data: dict[str, Any], candidate: Address) -> list[UserError]:
    errors: list[UserError] = []
    for name, value in data.items():
        if isinstance(value, str):
            errors += _text_errors(["address", name], value)
    if not candidate.address1:
        errors.append(_error(["address", "address1"], "ADDRESS1_MISSING", "Address1 can't be blank."))
    country = candidate.territory_code
    if country is None:
        errors.append(_error(["address", "territoryCode"], "TERRITORY_CODE_MISSING", "Country can't be blank."))
    elif country not in COUNTRIES:
        errors.append(_error(["address", "territoryCode"], "INVALID_TERRITORY_CODE", "Country is invalid."))
    elif country in ZONES:
        if candidate.zone_code is None:
            errors.append(_error(["address", "zoneCode"], "ZONE_CODE_MISSING", "Province can't be blank."))
        elif candidate.zone_code not in ZONES[country]:
            message = "Province is not valid for the selected country."
            errors.append(_error(["address", "zoneCode"], "INVALID_FOR_COUNTRY", message))
    if candidate.phone_number is not None and not _PHONE.fullmatch(candidate.phone_number):
        message = "Phone number is not valid; use the international format, e.g. +16135551111."
        errors.append(_error(["address", "phoneNumber"], "PHONE_NUMBER_NOT_VALID", message))
    if not errors and any(
        replace(other, id="") == replace(candidate, id="") for other in customer.addresses if other.id != candidate.id
    ):
        errors.append(_error(["address"], "CUSTOMER_ADDRESS_ALREADY_EXISTS", "This address already exists."))
    return errors


def create_address(
    customer: Customer, data: dict[str, Any], *, make_default: bool
) -> tuple[Address | None, list[UserError]]:
    """customerAddressCreate."""
    if not any(isinstance(v, str) and v.strip() for v in data.values()):
        return None, [_error(["address"], "ADDRESS_ARGUMENT_EMPTY", "The address argument is empty.")]
    candidate = _apply(Address(id=customer.new_address_id()), data)
    if errors := _check_address(customer, data, candidate):
        return None, errors
    customer.addresses.append(candidate)
    if make_default or customer.default_address_id is None:
        customer.default_address_id = candidate.id
    return candidate, []


def update_address(
    customer: Customer, address_id: str, data: dict[str, Any] | None, *, make_default: bool | None
) -> tuple[Address | None, list[UserError]]:
    """customerAddressUpdate: `address` may be omitted to only change the default flag."""
    current = _find(customer, address_id)
    if current is None:
        return None, _missing(address_id)
    if data is None and make_default is None:
        return None, [_error(["address"], "ADDRESS_ARGUMENT_EMPTY", "The address argument is empty.")]
    if make_default is False and customer.default_address_id == address_id:
        message = "The default address can't be demoted; make another address the default instead."
        return None, [_error(["defaultAddress"], "DEMOTING_CUSTOMER_DEFAULT_ADDRESS_NOT_ALLOWED", message)]
    candidate = _apply(current, data or {})
    if errors := _check_address(customer, data or {}, candidate):
        return None, errors
    customer.addresses[customer.addresses.index(current)] = candidate
    if make_default:
        customer.default_address_id = candidate.id
    return candidate, []


def delete_address(customer: Customer, address_id: str) -> tuple[str | None, list[UserError]]:
    """customerAddressDelete: the default address can't be deleted."""
    current = _find(customer, address_id)
    if current is None:
        return None, _missing(address_id)
    if customer.default_address_id == address_id:
        message = "The default address can't be deleted; make another address the default first."
        return None, [_error(["addressId"], "DELETING_CUSTOMER_DEFAULT_ADDRESS_NOT_ALLOWED", message)]
    customer.addresses.remove(current)
    return address_id, []

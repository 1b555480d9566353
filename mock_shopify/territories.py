"""The few countries and zones the stand-in knows, for address validation and formatting."""

from __future__ import annotations

COUNTRIES: dict[str, str] = {
    "US": "United States", "CA": "Canada", "GB": "United Kingdom", "DE": "Germany", "FR": "France",
    "AU": "Australia", "JP": "Japan", "NL": "Netherlands", "IT": "Italy", "ES": "Spain", "MX": "Mexico",
    "IE": "Ireland", "NZ": "New Zealand", "SE": "Sweden", "CH": "Switzerland",
}  # fmt: skip

# Only countries whose addresses need a zone are listed; elsewhere zoneCode is optional and unchecked.
ZONES: dict[str, dict[str, str]] = {
    "CA": {
        "AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
        "NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "ON": "Ontario", "PE": "Prince Edward Island",
        "QC": "Quebec", "SK": "Saskatchewan", "NT": "Northwest Territories", "NU": "Nunavut", "YT": "Yukon",
    },
    "US": {
        "CA": "California", "NY": "New York", "TX": "Texas", "WA": "Washington", "FL": "Florida",
        "IL": "Illinois", "MA": "Massachusetts", "OR": "Oregon", "CO": "Colorado", "GA": "Georgia",
    },
}  # fmt: skip


def country_name(code: str | None) -> str | None:
    return COUNTRIES.get(code or "")


def zone_name(country: str | None, zone: str | None) -> str | None:
    return ZONES.get(country or "", {}).get(zone or "")

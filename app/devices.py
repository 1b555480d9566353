"""A short, human summary of a User-Agent ("Chrome on Mac OS X"), for the customer's list of their sessions.

ua-parser does the parsing (its regexes are the maintained uap-core set). The header is the client's
own words, so only its first 512 characters are read, which bounds the regexes' work too.
"""

from __future__ import annotations

from ua_parser import parse

MAX_READ = 512


def summarize(user_agent: str | None) -> str:
    """`Chrome on Mac OS X`, `Instagram on iOS`, `Firefox`; `Unknown device` when nothing is recognised."""
    if not user_agent:
        return "Unknown device"
    found = parse(user_agent[:MAX_READ])
    browser = found.user_agent.family if found.user_agent and found.user_agent.family != "Other" else None
    system = found.os.family if found.os and found.os.family != "Other" else None
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"

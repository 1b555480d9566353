"""Content negotiation for the few endpoints that answer a browser navigation and a script differently.

One helper, with q-values (RFC 9110 §12.5.1): `text/html,application/json;q=0.9` is a browser navigation,
`application/json;q=0` refuses JSON, and a missing `Accept` means anything goes (the caller's first offer).
"""

from __future__ import annotations

HTML = "text/html"
JSON = "application/json"


def _quality(accept: str, media_type: str) -> float:
    """The q-value `accept` gives `media_type`: the most specific matching range wins."""
    kind = media_type.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for item in accept.split(",")[:32]:  # bounded: a hostile header cannot make this loop long
        parts = [p.strip() for p in item.split(";")]
        value = parts[0].lower()
        specificity = 2 if value == media_type else 1 if value == f"{kind}/*" else 0 if value == "*/*" else -1
        if specificity < best[0]:
            continue
        q = 1.0
        for param in parts[1:]:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(number), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        best = (specificity, q) if specificity > best[0] else (specificity, max(best[1], q))
    return best[1] if best[0] >= 0 else 0.0


def preferred(accept: str | None, offers: tuple[str, ...]) -> str:
    """The offer the client rates highest; a tie (and a missing header) goes to the earlier offer, so the
    caller's order is its own preference."""
    if not accept:
        return offers[0]
    rated = [(_quality(accept, offer), -i, offer) for i, offer in enumerate(offers)]
    return max(rated)[2]

"""Rates like `30/minute`, as the rate-limit settings give them, and the clock-aligned windows they count in."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Rate:
    """`amount` requests per `period` seconds; an amount of 0 means unlimited."""

    amount: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`30/minute`, `5/second`, `1000/hour`, `100 per 10 minutes`; raises ValueError otherwise."""
        found = _RATE.match(text)
        if not found:
            raise ValueError(text)
        return cls(int(found[1]), int(found[2] or 1) * _PERIODS[found[3].lower()])

    @property
    def window_ms(self) -> int:
        return self.period * 1000

    def window(self, now: float) -> Window:
        """The window `now` falls in."""
        index = int(now // self.period)
        return Window(index, max(1, math.ceil((index + 1) * self.period - now)))


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit window: its number (part of the counter's key) and the seconds left in it."""

    index: int
    seconds_left: int


@dataclass(frozen=True, slots=True)
class SessionRates:
    """What one session read counts against: the session's own limit, and its customer's across every
    session of theirs (so a fresh login does not start a fresh budget)."""

    session: Rate
    customer: Rate


NO_LIMITS = SessionRates(Rate(0, 1), Rate(0, 1))

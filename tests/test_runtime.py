"""A built app keeps the garbage collector off its startup heap (runtime.py)."""

from __future__ import annotations

import gc

from app.config import Settings
from app.main import create_app
from app.runtime import YOUNG_THRESHOLD


def test_building_the_app_freezes_the_startup_heap_and_raises_the_young_threshold(settings: Settings) -> None:
    create_app(settings)
    # The imports alone are tens of thousands of objects; frozen, no collection walks them again.
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] >= YOUNG_THRESHOLD

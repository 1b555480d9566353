"""The garbage collector's settings for a long-running server process, applied once at startup.

The BFF's imports (FastAPI, pydantic, aiohttp, redis-py, cryptography) leave about 115,000 objects that
live as long as the process, and CPython's collector kept scanning them: every full collection walked the
whole heap, and those were triggered over and over by the short-lived objects of the requests in flight
(at c32 each request's objects outlive two young collections, are promoted, then die). Measured in
process (bench/asgi_cpu.py), that was about a quarter of the BFF's own CPU per proxied request.

So once the app is built, what exists is frozen out of future collections (`gc.freeze`), and the youngest
generation's threshold is raised above what the requests in flight hold, so a burst of them no longer
triggers collections by itself. Reference counting still frees almost everything at once; the collector
still runs for cycles, only less often.
"""

from __future__ import annotations

import gc

# Net new container objects before a young collection (CPython's default is 700); a request in flight
# holds a few hundred, so the default fired every ~20 requests at c32 and promoted live request state.
YOUNG_THRESHOLD = 10_000
_tuned = False


def tune_gc() -> None:
    """Freeze the startup heap and raise the young threshold; once per process (tests build many apps)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)

"""Answers that drip-feed their body: each read arrives in time, the whole answer does not.

A client with only per-read timeouts waits for all of it; the knobs `drip_token` and `drip_graphql`
show that the BFF bounds each upstream call as a whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse


def drip(response: Response, interval: float) -> Response:
    """`response` as is (status, headers, Content-Length), its body sent one byte every `interval` seconds."""
    body = bytes(response.body)

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            if i:
                await asyncio.sleep(interval)
            yield body[i : i + 1]

    dripping = StreamingResponse(trickle(), status_code=response.status_code)
    dripping.raw_headers = list(response.raw_headers)
    return dripping

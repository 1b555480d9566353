"""Request bodies read by hand: the whole body within a size limit and a deadline, or a catalog error.

Shared by the raw `/graphql` path and the cart endpoints, so both bound a body the same way: a declared
`Content-Length` over the limit is refused unread, and a client trickling bytes (or announcing more than
it sends) cannot hold the connection, and a slot of BFF_MAX_CONNECTIONS, past the deadline.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from app.errors import BodyTimeout, BodyTooLarge, ClientDisconnected


async def read_body(receive: Receive, declared: str | None, *, limit: int, deadline: float, what: str) -> bytes:
    """The whole body, at most `limit` bytes, within `deadline` seconds; `what` names it in the 413."""
    too_large = f"{what} is over {limit} bytes."
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > limit):
        raise BodyTooLarge(too_large)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected()
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(too_large)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        # The rest of the body may still come, and would be parsed as the next request: close instead.
        raise BodyTimeout(headers={"Connection": "close"}) from None

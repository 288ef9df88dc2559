"""A clip's pieces computed one engine call ahead of their reader: while the renderer encodes
and sends a piece, the next is computing, so a single stream keeps its engine busy; never more
than one ahead, so a reader that stops (its client gone) leaves at most one call behind it, and
closing the stream cancels that call where it is still queued."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def one_ahead(pieces: AsyncGenerator[T, None]) -> AsyncIterator[T]:
    """`pieces`, each asked for as soon as the one before is handed out."""
    coming: asyncio.Task[T] = asyncio.ensure_future(anext(pieces))
    try:
        while True:
            try:
                piece = await coming
            except StopAsyncIteration:
                return
            coming = asyncio.ensure_future(anext(pieces))
            yield piece
    finally:
        if not coming.done():
            coming.cancel()
        await asyncio.wait([coming])  # the generator is free to close once its step ended
        if not coming.cancelled():
            coming.exception()  # seen: a step that failed after the reader left is no news
        await pieces.aclose()

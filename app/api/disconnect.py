"""Work for a client that has gone is not done: `while_connected` runs a route's computation
while watching the connection, and cancels it the moment the client hangs up.

The watcher waits on the request's `receive` (once the body has been read it answers only
`http.disconnect`) and cancels the route's task with the message `CLIENT_GONE`. The cancellation
reaches the micro-batcher while the request is queued: it leaves the queue and frees its slot at
once, counted as `vae_rejections_total{reason="client_gone"}` (app/serving/batcher.py), and is
never computed. The route then ends with `ClientGone`, answered 499 to nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from app.serving.batcher import CLIENT_GONE

T = TypeVar("T")


class ClientGone(ConnectionError):
    """The client closed its connection before its answer was ready (499, sent to nobody)."""


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """Awaits `work` (the route's computation, its body already read); ClientGone as soon as the
    client disconnects, with `work` cancelled."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        try:
            while (await request.receive())["type"] != "http.disconnect":
                continue
        except Exception:  # the server's own receive failed: nothing to watch
            return
        gone = True
        task.cancel(CLIENT_GONE)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientGone("the client closed the connection before its answer") from None
    finally:
        watcher.cancel()

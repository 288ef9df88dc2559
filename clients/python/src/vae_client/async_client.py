"""`AsyncClient`: the asyncio client, driving the shared protocol with httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from vae_client._base import ClientBase, Driver, _named
from vae_client._core import UPLOAD_CHUNK, Exchange, Operation, Sleep, Step, Stream
from vae_client.errors import transport_error
from vae_client.types import Job

T = TypeVar("T")


class AsyncClient(ClientBase[httpx.AsyncClient, httpx.AsyncBaseTransport]):
    """An asyncio client of one vae-service, over httpx.AsyncClient (the arguments:
    `ClientBase`); every method of `Client`, awaited. Use it as an async context manager, or
    call `aclose()`.
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    # -- driving the protocol ------------------------------------------------------------------

    def _connect(self, connect_retries: int, **options: Any) -> httpx.AsyncClient:
        transport = options.pop("transport") or httpx.AsyncHTTPTransport(retries=connect_retries)
        return httpx.AsyncClient(transport=transport, **options)

    async def _run(self, operation: Operation[T]) -> T:
        exchange = Exchange(operation)
        for step in exchange:
            exchange.reply = await self._do(step)
        return exchange.result

    async def _do(self, step: Step) -> httpx.Response | None:
        """Waits out a Sleep; sends a Call and returns its response."""
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            response = await self._http.send(self._request(step, _file_chunks), stream=step.stream)
            if step.stream and not response.is_success:
                await response.aread()  # an error is read whole, for its message
                await response.aclose()
            return response
        except httpx.TransportError as error:
            raise transport_error(error) from error

    async def _chunks(self, operation: Operation[httpx.Response]) -> AsyncIterator[bytes]:
        response = await self._run(operation)
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TransportError as error:
            raise transport_error(error) from error
        finally:
            await response.aclose()

    async def _iterate(self, stream: Stream) -> AsyncIterator[Job]:
        exchange = Exchange(stream)
        for step in exchange:
            if isinstance(step, Job):
                yield step
            else:
                exchange.reply = await self._do(step)

    def _bind(self, operation: Callable[..., Any], driver: Driver) -> Callable[..., Any]:
        """As the base's, but an operation's method is a coroutine function."""
        if driver != "run":
            return super()._bind(operation, driver)

        @functools.wraps(operation)
        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self._run(operation(*args, **kwargs))

        return _named(method, self)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file's bytes, 1 MiB at a time, read off the event loop."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(file.close)

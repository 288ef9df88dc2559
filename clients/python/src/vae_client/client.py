"""`Client`: the blocking client, driving the shared protocol with httpx.Client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Self, TypeVar

import httpx

from vae_client._base import ClientBase
from vae_client._core import Exchange, Operation, Sleep, Step, Stream, file_chunks
from vae_client.errors import transport_error
from vae_client.types import Job

T = TypeVar("T")


class Client(ClientBase[httpx.Client, httpx.BaseTransport]):
    """A blocking client of one vae-service, over httpx.Client (the arguments: `ClientBase`).
    Use it as a context manager, or call `close()`.
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    # -- driving the protocol ------------------------------------------------------------------

    def _connect(self, connect_retries: int, **options: Any) -> httpx.Client:
        transport = options.pop("transport") or httpx.HTTPTransport(retries=connect_retries)
        return httpx.Client(transport=transport, **options)

    def _run(self, operation: Operation[T]) -> T:
        exchange = Exchange(operation)
        for step in exchange:
            exchange.reply = self._do(step)
        return exchange.result

    def _do(self, step: Step) -> httpx.Response | None:
        """Waits out a Sleep; sends a Call and returns its response."""
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            response = self._http.send(self._request(step, file_chunks), stream=step.stream)
            if step.stream and not response.is_success:
                response.read()  # an error is read whole, for its message
                response.close()
            return response
        except httpx.TransportError as error:
            raise transport_error(error) from error

    def _chunks(self, operation: Operation[httpx.Response]) -> Iterator[bytes]:
        response = self._run(operation)
        try:
            yield from response.iter_bytes()
        except httpx.TransportError as error:
            raise transport_error(error) from error
        finally:
            response.close()

    def _iterate(self, stream: Stream) -> Iterator[Job]:
        exchange = Exchange(stream)
        for step in exchange:
            if isinstance(step, Job):
                yield step
            else:
                exchange.reply = self._do(step)

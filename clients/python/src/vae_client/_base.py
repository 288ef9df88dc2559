"""What `Client` and `AsyncClient` share: the constructor, building a request, and every
operation of `Protocol` as a method, blocking on `Client` and awaited on `AsyncClient`.

A method takes the operation's own signature and docstring (`_core.Protocol`): each operation's
parameters, logic and docs are written once, and mypy sees `Client.sample` return a FloatArray
and `AsyncClient.sample` a coroutine of one.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    Self,
    TypeVar,
    overload,
)

import httpx

from vae_client._core import Call, Operation, Protocol, Stream
from vae_client.retry import RetryPolicy
from vae_client.types import Job

if TYPE_CHECKING:
    from vae_client.async_client import AsyncClient
    from vae_client.client import Client

P = ParamSpec("P")
T = TypeVar("T")
Blocking = TypeVar("Blocking")
Awaited = TypeVar("Awaited")
HttpT = TypeVar("HttpT", bound=httpx.Client | httpx.AsyncClient)
TransportT = TypeVar("TransportT", bound=httpx.BaseTransport | httpx.AsyncBaseTransport)

DEFAULT_RETRY = RetryPolicy()


Driver = Literal["run", "jobs", "bytes"]


class _Method(Generic[P, Blocking, Awaited]):
    """A `Protocol` operation as a method of both clients: called on a `Client` it gives
    `Blocking`, on an `AsyncClient` `Awaited`. `driver` says what drives the operation: `run`
    to its result, `jobs` through the jobs it yields, `bytes` to a streamed answer's chunks."""

    def __init__(
        self, operation: Callable[Concatenate[Protocol, P], Any], *, driver: Driver = "run"
    ) -> None:
        self._operation = operation
        self._driver = driver
        self.__doc__ = operation.__doc__

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(self, client: Client, owner: type[Any]) -> Callable[P, Blocking]: ...

    @overload
    def __get__(self, client: AsyncClient, owner: type[Any]) -> Callable[P, Awaited]: ...

    def __get__(self, client: ClientBase[Any, Any] | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        return client._bind(types.MethodType(self._operation, client._protocol), self._driver)


def _operation(
    operation: Callable[Concatenate[Protocol, P], Operation[T]],
) -> _Method[P, T, Coroutine[Any, Any, T]]:
    return _Method(operation)


def _stream(
    operation: Callable[Concatenate[Protocol, P], Stream],
) -> _Method[P, Iterator[Job], AsyncIterator[Job]]:
    return _Method(operation, driver="jobs")


def _byte_stream(
    operation: Callable[Concatenate[Protocol, P], Operation[httpx.Response]],
) -> _Method[P, Iterator[bytes], AsyncIterator[bytes]]:
    return _Method(operation, driver="bytes")


class ClientBase(Generic[HttpT, TransportT]):
    """A client of one vae-service over an httpx client (`HttpT`).

    `token` is the admin token, sent as `Authorization: Bearer` on admin calls (uploads, jobs).
    `retry` says how 429 and 503 answers, and connections that could not be made, are retried
    (None: never). `timeout` is httpx's, in seconds. `transport` and `headers` go to the
    underlying httpx client. No answer at all raises ConnectionFailed or RequestTimeout.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        transport: TransportT | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._protocol = Protocol(token, retry)
        # httpx retries only a connection that could not be made: the request was never sent
        connect_retries = 0 if retry is None else retry.max_attempts - 1
        self._http = self._connect(
            connect_retries,
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers=headers,
        )

    # -- inference ---------------------------------------------------------------------------

    sample = _operation(Protocol.sample)
    encode = _operation(Protocol.encode)
    decode = _operation(Protocol.decode)
    interpolate = _operation(Protocol.interpolate)
    encode_images = _operation(Protocol.encode_images)
    decode_images = _operation(Protocol.decode_images)
    decode_video = _operation(Protocol.decode_video)
    stream_video = _byte_stream(Protocol.stream_video)
    encode_video = _operation(Protocol.encode_video)

    # -- models --------------------------------------------------------------------------------

    models = _operation(Protocol.models)
    model = _operation(Protocol.model)
    set_default = _operation(Protocol.set_default)
    delete_version = _operation(Protocol.delete_version)

    # -- datasets (admin) ----------------------------------------------------------------------

    datasets = _operation(Protocol.datasets)
    upload_dataset = _operation(Protocol.upload_dataset)
    dataset = _operation(Protocol.dataset)
    delete_dataset = _operation(Protocol.delete_dataset)

    # -- jobs ----------------------------------------------------------------------------------

    start_job = _operation(Protocol.start_job)
    job = _operation(Protocol.job)
    jobs = _operation(Protocol.jobs)
    cancel_job = _operation(Protocol.cancel_job)
    follow = _stream(Protocol.follow)
    wait = _operation(Protocol.wait)

    # -- what each client says -----------------------------------------------------------------

    def _connect(self, connect_retries: int, **options: Any) -> HttpT:
        """The httpx client with these options; without a `transport` of the caller's, one that
        tries a connection `connect_retries` more times."""
        raise NotImplementedError

    def _run(self, operation: Operation[Any]) -> Any:
        """Drives `operation` to its result (on an AsyncClient: a coroutine of it)."""
        raise NotImplementedError

    def _iterate(self, stream: Stream) -> Any:
        """The jobs of `stream`, as an iterator (on an AsyncClient: an async one)."""
        raise NotImplementedError

    def _chunks(self, operation: Operation[httpx.Response]) -> Any:
        """The body of the streamed answer `operation` gives, chunk by chunk, as an iterator (on
        an AsyncClient: an async one); the answer is closed when the iteration ends."""
        raise NotImplementedError

    def _bind(self, operation: Callable[..., Any], driver: Driver) -> Callable[..., Any]:
        """The method that drives what `operation` returns (bound to the protocol)."""
        drives: dict[Driver, Callable[[Any], Any]] = {
            "run": self._run,
            "jobs": self._iterate,
            "bytes": self._chunks,
        }
        drive = drives[driver]

        @functools.wraps(operation)
        def method(*args: Any, **kwargs: Any) -> Any:
            return drive(operation(*args, **kwargs))

        return _named(method, self)

    def _request(
        self, call: Call, upload: Callable[[Path], Iterator[bytes] | AsyncIterator[bytes]]
    ) -> httpx.Request:
        """The request for `call`; an upload's body is `upload(path)`, streamed."""
        content = upload(call.upload) if call.upload is not None else call.content
        return self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            headers=call.headers,
            json=call.json,
            content=content,
        )


def _named(method: Callable[..., T], client: ClientBase[Any, Any]) -> Callable[..., T]:
    """`method` (wrapping an operation) as the client's in tracebacks and help(): its name, and
    the operation's signature but for the return annotation (a generator's, not the method's)."""
    method.__qualname__ = f"{type(client).__name__}.{method.__name__}"
    method.__signature__ = inspect.signature(method).replace(  # type: ignore[attr-defined]
        return_annotation=inspect.Signature.empty
    )
    return method

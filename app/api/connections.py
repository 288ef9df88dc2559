"""Connection-level protection uvicorn does not give: a deadline on a request's head, a
shutdown that lets a kept-alive connection finish the request already on its way, and one log
line (not a traceback) for a request the shutdown's bound cuts.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but once the first
byte of a request has arrived nothing bounds how long the rest of its line and headers may take
(neither its httptools nor its h11 protocol has a header timeout): a client trickling a byte a
second holds its connection for ever. `head_timeout_protocol` makes a subclass of uvicorn's HTTP
protocol that closes a connection (after a 408) whose request head is not complete within
`header_timeout_s` of its first byte (or of the connection's start). The body has its own
deadline in `app/api/limits.py`; uvicorn's `timeout_graceful_shutdown` bounds the rest.

On shutdown uvicorn closes every idle connection at once; a request the client sent a moment
before then meets a closed socket (a reset where it expected an answer). Here an idle
connection gets `DRAIN_SECONDS` to start a request, which is answered with `Connection: close`.
A request still running past the shutdown bound is cancelled by uvicorn, which logs each one
as an "Exception in ASGI application" with a full traceback (some sixty lines, all of them
uvicorn's and Starlette's frames): here such a request is one warning line naming it, while any
other exception keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

DRAIN_SECONDS = 0.5
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 39\r\n\r\nthe request head did not arrive in time"
)


class _ConnectionLog:
    """uvicorn's error logger as one connection's protocol uses it (and hands each request's
    cycle): a request cancelled after its connection was told to shut down is one warning line,
    not an error with a traceback. Everything else goes to the logger as it came."""

    def __init__(self, logger: logging.Logger, protocol: _HeadTimeoutProtocol) -> None:
        self._logger = logger
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        cut = kwargs.get("exc_info")
        if type(cut) is asyncio.CancelledError and self._protocol.shut_down:
            scope = self._protocol.cycle.scope if self._protocol.cycle is not None else {}
            client = scope.get("client") or ("?", 0)
            self._logger.warning(
                "Cut at shutdown: %s %s from %s:%s (%s)",
                scope.get("method", "?"),
                scope.get("path", "?"),
                *client,
                cut,
            )
            return
        self._logger.error(msg, *args, **kwargs)


class _HeadTimeoutProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol with a deadline on each request's head, a graceful keep-alive
    shutdown and `_ConnectionLog` (see the module)."""

    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self.shut_down = False
        errors: logging.Logger = self.logger  # uvicorn's "uvicorn.error"
        self.logger: Any = _ConnectionLog(errors, self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        new_request = before is None or before.response_complete
        super().data_received(data)
        if self.cycle is not None and self.cycle is not before:  # its head is complete
            self._stop_head_timer()
            if self._draining:
                self.cycle.keep_alive = False
        elif new_request:
            # The first bytes of a request whose head is still on its way. (A head that came
            # whole, the usual case, never needs a timer: none is set and cancelled for it.)
            self._start_head_timer()

    def shutdown(self) -> None:
        """uvicorn's shutdown, but an idle connection may still start one last request."""
        self.shut_down = True
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) and self._head_timer is None:
            if not self.transport.is_closing():
                self.transport.close()
        elif self.cycle is not None:
            self.cycle.keep_alive = False

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()


def head_timeout_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (httptools when installed, else h11) closing a connection
    whose request head takes longer than `header_timeout_s`; pass it as `uvicorn.run(http=...)`."""
    return type(
        "HeadTimeoutProtocol", (_HeadTimeoutProtocol,), {"header_timeout_s": header_timeout_s}
    )

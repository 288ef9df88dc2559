"""`app/api/connections.py`'s log of a connection: a request cancelled once its connection was
told to shut down (uvicorn's bound on a graceful shutdown) is one warning line, and every other
error uvicorn logs keeps its traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.api.connections import head_timeout_protocol

CUT = asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called here
    raise AssertionError("no request reaches the app in these tests")


@pytest.fixture
def protocol() -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    try:
        config = Config(_app, log_config=None)
        yield head_timeout_protocol(10.0)(
            config=config, server_state=ServerState(), app_state={}, _loop=loop
        )
    finally:
        loop.close()


def log_as_uvicorn_does(protocol: Any, error: BaseException) -> None:
    """What uvicorn's request cycle does with an exception its app raised."""
    protocol.logger.error("Exception in ASGI application\n", exc_info=error)


def test_a_request_cut_at_shutdown_is_one_warning_line(
    protocol: Any, caplog: pytest.LogCaptureFixture
) -> None:
    protocol.shutdown()
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        log_as_uvicorn_does(protocol, CUT)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage().startswith("Cut at shutdown: ")
    assert "timeout graceful shutdown exceeded" in record.getMessage()


def test_a_real_error_at_shutdown_keeps_its_traceback(
    protocol: Any, caplog: pytest.LogCaptureFixture
) -> None:
    protocol.shutdown()
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        log_as_uvicorn_does(protocol, ValueError("a bug"))
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_a_cancel_before_any_shutdown_keeps_its_traceback(
    protocol: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        log_as_uvicorn_does(protocol, CUT)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None


def test_the_connection_log_is_still_uvicorns_logger(protocol: Any) -> None:
    # uvicorn reads its level (trace logging) and calls its other methods
    assert protocol.logger.level == logging.getLogger("uvicorn.error").level
    assert protocol.logger.name == "uvicorn.error"

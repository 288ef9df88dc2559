"""Unit tests start no process: a test that needs redis-server, SeaweedFS, `vae serve`, a tool
or any child at all belongs in tests/integration. While a unit test's fixtures are set up (of
every scope) and while it runs, every way of starting a process fails the test."""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

UNIT_TESTS_START_NO_PROCESS = (
    "a unit test starts no process ({call} was called): move the test, or the part of it that "
    "needs a process, to tests/integration"
)


def _refusal(call: str) -> Callable[..., Any]:
    def refuse(*args: object, **kwargs: object) -> Any:
        pytest.fail(UNIT_TESTS_START_NO_PROCESS.format(call=call))

    return refuse


@contextmanager
def _no_process_started() -> Iterator[None]:
    """Refuses subprocess (and so asyncio's subprocesses and os.popen), fork (and so
    multiprocessing's fork, os.spawn*, pty and RQ's work horse), posix_spawn, os.system, and the
    fork-exec that multiprocessing's spawn and forkserver call directly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", _refusal("subprocess.Popen"))
        patch.setattr(_posixsubprocess, "fork_exec", _refusal("_posixsubprocess.fork_exec"))
        for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                patch.setattr(os, name, _refusal(f"os.{name}"))
        yield


# Setup and call, not teardown: the last test of a mixed run tears down the session's fixtures,
# integration ones included (stopping a process is no start, but leave their teardown alone).
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _no_process_started():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _no_process_started():
        return (yield)

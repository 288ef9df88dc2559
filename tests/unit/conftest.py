"""Unit tests start no process: a test that needs redis-server, SeaweedFS, `vae serve`, a tool
or any child at all belongs in tests/integration."""

from __future__ import annotations

import _posixsubprocess
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

UNIT_TESTS_START_NO_PROCESS = (
    "a unit test starts no process ({call} was called): move the test, or the part of it that "
    "needs a process, to tests/integration"
)


def _refusal(call: str) -> Callable[..., Any]:
    def refuse(*args: object, **kwargs: object) -> Any:
        pytest.fail(UNIT_TESTS_START_NO_PROCESS.format(call=call), pytrace=True)

    return refuse


@pytest.fixture(autouse=True)
def no_process_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes every way of starting a process fail the test: subprocess (and so asyncio's
    subprocesses and os.popen), fork (and so multiprocessing, os.spawn*, pty and RQ's work horse),
    posix_spawn, os.system, and the fork-exec multiprocessing's spawn and forkserver use."""
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refusal("subprocess.Popen"))
    monkeypatch.setattr(_posixsubprocess, "fork_exec", _refusal("_posixsubprocess.fork_exec"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refusal(f"os.{name}"))

"""How a real `vae serve` ends on SIGTERM: with status 0 (a supervisor reads anything else as a
crash), requests still running past `VAE_SHUTDOWN_TIMEOUT_S` cut with one log line each and
no traceback, and a second Ctrl+C still forcing the exit, as in uvicorn.

Raw sockets hold requests open (bodies that never finish); nothing here asserts how fast
anything is: each wait is bounded only to fail instead of hanging."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.support.processes import ServiceProcess, running_service, service_env, wait_until

STALLED = 5
CUT_LINE = re.compile(r"Cut at shutdown: (POST /decode|PUT /datasets/stalled) from 127\.0\.0\.1:")


def exit_status(service: ServiceProcess, wait_s: float = 60.0) -> int:
    """The process's exit status (a negative signal number if a signal ended it)."""
    try:
        return service.process.wait(wait_s)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(5)
        raise AssertionError(f"vae serve still running {wait_s}s after the signal") from None


def in_progress(service: ServiceProcess) -> float:
    """`vae_http_requests_in_progress`, not counting the request that reads it."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    value = re.search(r"^vae_http_requests_in_progress (\S+)$", text, re.MULTILINE)
    assert value is not None, text[-2000:]
    return float(value.group(1)) - 1


@contextmanager
def stalled_requests(service: ServiceProcess, count: int) -> Iterator[None]:
    """`count` requests (uploads of a dataset and `/decode` bodies) whose bodies never finish,
    running in the app once this enters; their sockets are closed when it exits."""
    host, port = service.url.removeprefix("http://").split(":")
    with ExitStack() as sockets:
        for i in range(count):
            sock = sockets.enter_context(socket.create_connection((host, int(port)), timeout=5))
            method, path = ("PUT", "/datasets/stalled") if i == 0 else ("POST", "/decode")
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nhost: test\r\n"
                "content-type: application/octet-stream\r\ncontent-length: 1000000\r\n\r\n".encode()
                + b"x" * 100
            )
        wait_until(lambda: in_progress(service) >= count, 30, what=f"{count} requests running")
        yield


def test_a_sigterm_ends_the_server_with_status_0(models_dir: Path, tmp_path: Path) -> None:
    with running_service(service_env(models_dir, tmp_path), tmp_path) as service:
        with service.client() as http:
            assert http.post("/sample", json={"n": 1, "seed": 1}).status_code == 200
        service.process.send_signal(signal.SIGTERM)
        status = exit_status(service)
    log = service.log.read_text()
    assert status == 0, log[-3000:]
    assert "Application shutdown complete" in log  # the graceful shutdown, not a kill


def test_a_bounded_shutdown_logs_one_line_a_cut_request_and_exits_0(
    models_dir: Path, tmp_path: Path
) -> None:
    # body and header timeouts far past the shutdown bound: the bound, not they, cuts them
    settings = service_env(
        models_dir, tmp_path, shutdown_timeout_s="1", body_timeout_s="600", header_timeout_s="600"
    )
    with running_service(settings, tmp_path) as service, stalled_requests(service, STALLED):
        service.process.send_signal(signal.SIGTERM)
        status = exit_status(service)
    log = service.log.read_text()
    assert status == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert len(CUT_LINE.findall(log)) == STALLED, log[-3000:]
    assert "Application shutdown complete" in log


def test_a_ctrl_c_during_the_shutdown_forces_the_exit(models_dir: Path, tmp_path: Path) -> None:
    # a shutdown bound no test waits for: only the second signal can end this one
    settings = service_env(
        models_dir, tmp_path, shutdown_timeout_s="600", body_timeout_s="600", header_timeout_s="600"
    )
    with running_service(settings, tmp_path) as service, stalled_requests(service, 1):
        service.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: "Waiting for connections to close" in service.log.read_text(),
            30,
            what="the graceful shutdown to wait",
        )
        service.process.send_signal(signal.SIGINT)
        exit_status(service)
    assert "Application shutdown complete" not in service.log.read_text()

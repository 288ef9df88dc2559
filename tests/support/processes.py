"""Processes of the tests' own and waiting on them: free ports, `wait_until`, a real
redis-server, a real `vae serve` process and its environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.paths import ROOT


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: object, timeout: float, interval: float = 0.05, what: str = "condition"
) -> None:
    """Polls `check()` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last!r}")


@dataclass
class RedisServer:
    """A redis-server process of the test's own, on a free port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_redis(port: int | None = None) -> RedisServer:
    """Starts redis-server (no persistence) and waits until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (.ci/run installs it)")
    port = port or free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process)

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_until(answers, 10, what="redis-server")
    return server


@dataclass
class ServiceProcess:
    """A `vae serve` process on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def diagnosis(self) -> str:
        """What a test that saw this service stop answering reports: whether it still answers
        liveness, its threads' Python stacks (py-spy, when installed) and its log's tail."""
        lines = [f"== {self.url} (pid {self.process.pid}, exit code {self.process.poll()})"]
        started = time.monotonic()
        try:
            live = httpx.get(f"{self.url}/v2/health/live", timeout=5)
            lines.append(f"live: {live.status_code} in {time.monotonic() - started:.2f}s")
        except httpx.HTTPError as error:
            lines.append(f"live: {error!r} after {time.monotonic() - started:.2f}s")
        spy = shutil.which(
            "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        )
        if spy is not None and self.process.poll() is None:
            dump = subprocess.run(
                [spy, "dump", "--pid", str(self.process.pid)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            lines.append(dump.stdout + dump.stderr)
        lines.append(self.log.read_text(errors="replace")[-4000:])
        return "\n".join(lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def running_service(
    env: dict[str, str], log_dir: Path, ready_timeout: float = 60.0
) -> Iterator[ServiceProcess]:
    """Runs `vae serve` with VAE_ settings from `env` until the block ends."""
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    full_env = {**os.environ, "VAE_RELOAD_INTERVAL_S": "0.5", **env}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"vae serve exited early:\n{log.read_text()[-3000:]}")
        return httpx.get(f"{service.url}/v2/health/ready", timeout=2).status_code == 200

    try:
        wait_until(ready, ready_timeout, interval=0.2, what="vae serve to be ready")
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def redis_running() -> Iterator[RedisServer]:
    """A redis-server of its own (`start_redis`) until the block ends."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def own_models_service(
    models_dir: Path, tmp: Path, token: str, env: dict[str, str]
) -> Iterator[ServiceProcess]:
    """`vae serve` over a copy of every model in `models_dir` (`tmp`/models, datasets in
    `tmp`/data) with admin token `token` and the VAE_ settings `env`, until the block ends: the
    caller may delete or re-default versions that no other test should see changed."""
    shutil.copytree(models_dir, tmp / "models")
    settings = {
        "VAE_MODELS_DIR": str(tmp / "models"),
        "VAE_DATA_DIR": str(tmp / "data"),
        "VAE_ADMIN_TOKEN": token,
        **env,
    }
    with running_service(settings, tmp) as service:
        yield service


def service_env(models_dir: Path, root: Path, **settings: str) -> dict[str, str]:
    """The VAE_ settings of a test service: models from `models_dir`, datasets in `root`/data,
    plus `settings` (name without the VAE_ prefix: value)."""
    env = {"VAE_MODELS_DIR": str(models_dir), "VAE_DATA_DIR": str(root / "data")}
    return env | {f"VAE_{name.upper()}": value for name, value in settings.items()}

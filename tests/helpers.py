"""Shared test helpers: free ports, a real redis-server, a real `vae serve` process."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


class BackgroundLoad:
    """Client threads, each with its own httpx client and seeded rng, calling `send` in a loop
    until stopped (or until `limit` requests in all). A transport error is kept as a failure:
    a lost request. Subclasses say what one request is and what of its answer they keep."""

    def __init__(self, url: str, threads: int, limit: int | None = None) -> None:
        self.url = url
        self.limit = limit
        self.failures: list[str] = []
        self.answered = 0
        self.last_answer_at: dict[int, float] = {}  # by thread: when its last request finished
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def send(self, http: httpx.Client, rng: np.random.Generator, turn: int) -> None:
        """Sends request number `turn` and records its answer (under `self._lock`)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def count(self) -> int:
        """Requests finished so far (answered or lost)."""
        with self._lock:
            return self.answered + len(self.failures)

    def wait_for(self, more: int, timeout: float = 60) -> None:
        """Waits until `more` further requests have finished."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if not any(thread.is_alive() for thread in self._threads):
                raise AssertionError(f"the load stopped before {more} more answers: {self.state()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{more} more answers not in {timeout}s: {self.state()}")
            time.sleep(0.05)

    def state(self) -> str:
        """Its threads, whether they run, and how long ago each last finished a request."""
        now = time.monotonic()
        with self._lock:
            ages = {i: f"{now - at:.1f}s ago" for i, at in sorted(self.last_answer_at.items())}
            return (
                f"load on {self.url}: {self.answered} answered, {len(self.failures)} lost "
                f"(last: {self.failures[-3:]}); threads alive "
                f"{[t.is_alive() for t in self._threads]}; last finished {ages}"
            )

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            turn = seed
            while not self._stop.is_set() and (self.limit is None or self.count() < self.limit):
                try:
                    self.send(http, rng, turn)
                except Exception as error:  # a transport error, or a bug: lost, not silent
                    with self._lock:
                        self.failures.append(f"request {turn}: {error!r}")
                        self.last_answer_at[seed] = time.monotonic()
                    continue
                finally:
                    turn += 1
                with self._lock:
                    self.answered += 1
                    self.last_answer_at[seed] = time.monotonic()


def png_b64(digit: np.ndarray) -> str:
    """One uint8 [H, W] grey image as the base64 PNG a client sends."""
    buffer = io.BytesIO()
    Image.fromarray(digit.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def mnist_repo(models_dir: Path, tmp_path: Path) -> Path:
    """A model repository of the test's own (`tmp_path`/models) holding a copy of the mnist model
    from `models_dir`: the test may publish, break or delete versions in it."""
    target = tmp_path / "models"
    shutil.copytree(models_dir / "mnist", target / "mnist")
    return target


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

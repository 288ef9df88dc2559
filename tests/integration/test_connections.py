"""Clients that stall, trickle or hang up, against a real `vae serve`: the server still exits
within its shutdown bound, cuts slow connections off without starving a normal client, and
never computes work for a client that has gone.

Raw sockets play the bad clients (httpx would not stall on purpose). Timeouts are small (2 s)
and every bound checked has a wide margin: nothing here asserts how fast anything is."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import ServiceProcess, running_service, service_env

SHUTDOWN_BOUND_S = 2
SLOW_TIMEOUT_S = 2


def connect(service: ServiceProcess) -> socket.socket:
    host, port = service.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def head(method: str, path: str, length: int, kind: str = "application/json") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: {kind}\r\n"
        f"content-length: {length}\r\n\r\n"
    ).encode()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF, after any 408, or a reset)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while chunk := sock.recv(65536, socket.MSG_DONTWAIT):
            if not chunk:
                break
        else:
            return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def stop_and_time(service: ServiceProcess, wait_s: float = 30.0) -> float:
    """SIGTERM, then the seconds until the process exited (killed, and failed, after wait_s)."""
    started = time.monotonic()
    service.process.terminate()
    try:
        service.process.wait(wait_s)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait(5)
        raise AssertionError(f"vae serve was still running {wait_s}s after SIGTERM") from None
    return time.monotonic() - started


def test_a_stalled_upload_does_not_delay_exit_past_the_bound(
    models_dir: Path, tmp_path: Path
) -> None:
    # body and header timeouts far past the shutdown bound: the bound, not they, must end them
    bound = str(SHUTDOWN_BOUND_S)
    settings = service_env(
        models_dir, tmp_path, shutdown_timeout_s=bound, body_timeout_s="600", header_timeout_s="600"
    )
    with running_service(settings, tmp_path) as service, sockets() as stalled:
        for method, path in [("PUT", "/datasets/stalled"), ("POST", "/decode")]:
            sock = connect(service)
            sock.sendall(head(method, path, 1_000_000, "application/octet-stream") + b"x" * 100)
            stalled.append(sock)
        half_head = connect(service)
        half_head.sendall(b"POST /sample HTTP/1.1\r\nhost: test\r\ncontent-le")
        stalled.append(half_head)
        with service.client() as http:  # the server took them in and still answers
            assert http.post("/sample", json={"n": 1, "seed": 1}).status_code == 200
        time.sleep(0.5)
        took = stop_and_time(service)
    assert took < SHUTDOWN_BOUND_S + 10, f"exit took {took:.1f}s"


def test_slow_connections_are_closed_and_do_not_slow_a_normal_client(
    models_dir: Path, tmp_path: Path
) -> None:
    slow_s = str(SLOW_TIMEOUT_S)
    settings = service_env(models_dir, tmp_path, header_timeout_s=slow_s, body_timeout_s=slow_s)
    with running_service(settings, tmp_path) as service, sockets() as slow:
        for i in range(200):
            sock = connect(service)
            if i % 2:  # trickles its headers
                sock.sendall(b"POST /sample HTTP/1.1\r\nhost: test\r\n")
            else:  # trickles its body
                sock.sendall(head("POST", "/sample", 10_000) + b'{"n": 1, ')
            slow.append(sock)
        open_ = set(range(len(slow)))
        answered = 0
        deadline = time.monotonic() + SLOW_TIMEOUT_S + 20
        with service.client() as http:
            while open_ and time.monotonic() < deadline:
                for i in list(open_):
                    if closed_by_server(slow[i]):
                        open_.discard(i)
                        continue
                    with contextlib.suppress(OSError):
                        slow[i].send(b" " if i % 2 == 0 else b"x")  # one byte now and then
                reply = http.post("/sample", json={"n": 2, "seed": answered})
                assert reply.status_code == 200, reply.text
                answered += 1
                time.sleep(0.2)
        assert not open_, f"{len(open_)} of 200 slow connections still open"
        assert answered >= 5  # a normal client was answered all along


def client_gone(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("vae_rejections_total{") and 'reason="client_gone"' in line
    )


def decoded_samples(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("vae_batch_size_sum{") and 'graph="decoder"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_clients_that_hang_up_get_nothing_computed_and_a_live_client_is_answered(
    models_dir: Path, tmp_path: Path
) -> None:
    abandoned = 200
    body = json.dumps({"n": 256, "seed": 3}).encode()
    with running_service(service_env(models_dir, tmp_path), tmp_path) as service, sockets() as gone:
        with service.client() as http:
            before = decoded_samples(http.get("/metrics").text)
        for _ in range(abandoned):
            sock = connect(service)
            sock.sendall(head("POST", "/sample", len(body)) + body)
            gone.append(sock)
        time.sleep(0.005)
        for sock in gone:
            sock.close()
        with service.client() as http:
            live = http.post("/sample", json={"n": 256, "seed": 4})
            assert live.status_code == 200, live.text
            assert len(live.json()["images"]) == 256
            time.sleep(1.0)  # whatever was still queued is dropped or computed by now
            text = http.get("/metrics").text
        computed = decoded_samples(text) - before - 256  # less the live client's
        assert client_gone(text) > 0, "no request was counted as client_gone"
        assert computed < abandoned * 256 / 2, f"{computed:.0f} samples computed for nobody"

"""Abandoned requests and stalled clients against a real `vae serve` (issue 18).

    python -m bench.abandon [--root DIR] [--requests 500] [--stalled 200]

Starts `vae serve` from `--root` (a checkout: compare two) with its shipped model, then:
1. sends `--requests` POST /sample (n = 256) from raw sockets, each closed 5 ms after it was
   sent, then one live request; reports the samples decoded for nobody (the decoder's
   vae_batch_size sum, less the live request's), the client_gone count and the live status;
2. opens `--stalled` connections that stop mid-request (half a head, or headers and part of a
   body), sends SIGTERM and reports how long the process took to exit (killed after 60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KILL_AFTER_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric(text: str, name: str, *needles: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(n in line for n in needles)
    )


def request(body: bytes) -> bytes:
    head = "POST /sample HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def abandon(url: str, port: int, count: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=60) as http:
        before = metric(http.get("/metrics").text, "vae_batch_size_sum", 'graph="decoder"')
        body = json.dumps({"n": 256, "seed": 1}).encode()
        sockets = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request(body))
            sockets.append(sock)
        time.sleep(0.005)
        for sock in sockets:
            sock.close()
        live = http.post("/sample", json={"n": 256, "seed": 2}).status_code
        time.sleep(3.0)  # whatever was queued is computed or dropped by now
        text = http.get("/metrics").text
    decoded = metric(text, "vae_batch_size_sum", 'graph="decoder"') - before
    return {
        "abandoned_samples": count * 256,
        "computed_for_nobody": decoded - (256 if live == 200 else 0),
        "client_gone": metric(text, "vae_rejections_total", 'reason="client_gone"'),
        "live_status": live,
    }


def stalled_exit(process: subprocess.Popen[bytes], port: int, count: int) -> float:
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            sock.sendall(b"POST /sample HTTP/1.1\r\nhost: bench\r\ncontent-le")
        else:
            sock.sendall(request(b'{"n": 1, "seed": 1}')[:-8])  # the body stops short
        sockets.append(sock)
    time.sleep(1.0)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(KILL_AFTER_S)
        took = time.monotonic() - started
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        took = float("inf")
    for sock in sockets:
        sock.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--stalled", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VAE_MODELS_DIR": str(args.root / "models")}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=args.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        result: dict[str, object] = {"root": str(args.root)}
        result.update(abandon(url, port, args.requests))
        result["exit_seconds_after_sigterm"] = stalled_exit(process, port, args.stalled)
        print(json.dumps(result, indent=2))
    finally:
        if process.poll() is None:
            process.kill()


if __name__ == "__main__":
    main()

"""The latent cache scenario: p50 latency of an /encode that hits the cache vs one that misses.

Starts `vae serve` (with its own redis-server on a free port, and/or the in-process cache), then
for a fixed set of images sends each one twice in a row, sequentially: the first request is a miss
(first sight: cache lookup, micro-batch, ONNX Runtime, cache store), the second a hit (lookup only).
A few more rounds of hits follow. Every reply's `cached` flag is checked, so a miss is never counted
as a hit. Target: a hit's p50 at most a third of a miss's.

    .venv/bin/python -m bench.cache_bench [--backend redis|memory|both] [--images 200] [--per-request 1]

Bounded: about 20 seconds a backend on 2 cores.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist-heldout-256.npz"
TARGET_RATIO = 1 / 3


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, timeout: float, what: str) -> None:
    """Polls check() until truthy, or raises after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


@contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server (no persistence) on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed; use --backend memory")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    try:
        wait_for(answers, 10, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(10)


@contextmanager
def service(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """`vae serve` on a free loopback port until the block ends; yields its base URL.

    Only `env` configures it: VAE_ variables of the caller's environment are left out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_dir / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("VAE_")}, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise SystemExit(f"vae serve exited:\n{log.read_text()[-2000:]}")
            return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200

        wait_for(ready, 60, "vae serve to be ready")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def fixed_images(count: int) -> np.ndarray:
    """`count` distinct uint8 [28,28] images: held-out MNIST digits, then seeded noise."""
    images = np.zeros((0, 28, 28), dtype=np.uint8)
    if FIXTURE.is_file():
        with np.load(FIXTURE) as data:
            images = data["images"][:count]
    extra = count - len(images)
    if extra > 0:
        noise = np.random.default_rng(7).integers(0, 256, (extra, 28, 28), dtype=np.uint8)
        images = np.concatenate([images, noise])
    return images


def png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Result:
    """Latencies of one backend, in milliseconds."""

    backend: str
    requests_per_kind: dict[str, int]
    miss_ms: dict[str, float]
    hit_ms: dict[str, float]
    floor_ms: dict[str, float]  # GET /v2/health/live: what any request costs over HTTP
    ratio_p50: float  # hit p50 / miss p50: the target is <= 1/3
    meets_target: bool


def percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1000.0
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in (50, 90, 99)}


class Connection:
    """One keep-alive HTTP/1.1 connection (stdlib http.client: a light client, so the
    timings are the server's, not the load generator's)."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[float, bytes]:
        """(seconds to the whole reply, reply body); raises on a non-200."""
        headers = {"content-type": "application/json"} if body is not None else {}
        started = time.perf_counter()
        self._conn.request(method, path, body=body, headers=headers)
        reply = self._conn.getresponse()
        data = reply.read()
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise RuntimeError(f"{method} {path}: {reply.status} {data[:300]!r}")
        return elapsed, data

    def close(self) -> None:
        self._conn.close()


def measure(
    url: str, images: np.ndarray, per_request: int, hit_rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """(miss, hit, floor) latencies in seconds. Each image group is sent as a miss, then at once
    as a hit; more rounds of hits follow. The floor is GET /v2/health/live: HTTP alone."""
    bodies = [
        json.dumps({"images": [png_b64(img) for img in images[i : i + per_request]]}).encode()
        for i in range(0, len(images), per_request)
    ]
    misses: list[float] = []
    hits: list[float] = []
    floor: list[float] = []
    conn = Connection(url)
    try:
        warm = np.random.default_rng(99).integers(0, 256, (20, per_request, 28, 28), dtype=np.uint8)
        for group in warm:  # connection, code paths and allocator warm; never timed
            conn.request(
                "POST", "/encode", json.dumps({"images": [png_b64(g) for g in group]}).encode()
            )

        def timed(body: bytes, expect_cached: bool) -> float:
            elapsed, data = conn.request("POST", "/encode", body)
            flags = {entry["cached"] for entry in json.loads(data)["latents"]}
            if flags != {expect_cached}:
                raise RuntimeError(f"expected cached={expect_cached}, got {flags}")
            return elapsed

        for body in bodies:  # interleaved: a miss and its hit see the same conditions
            misses.append(timed(body, expect_cached=False))
            hits.append(timed(body, expect_cached=True))
            floor.append(conn.request("GET", "/v2/health/live")[0])
        for _ in range(hit_rounds):
            hits.extend(timed(body, expect_cached=True) for body in bodies)
    finally:
        conn.close()
    return misses, hits, floor


def run(backend: str, args: argparse.Namespace, images: np.ndarray, logs: Path) -> Result:
    """Starts the service on `backend` (redis or memory) and measures it."""
    env = {"VAE_MODELS_DIR": str(args.models_dir), "VAE_RELOAD_INTERVAL_S": "0"}
    with maybe_redis(backend) as redis_url:
        if redis_url:
            env["VAE_REDIS_URL"] = redis_url
        with service(env, logs) as url:
            misses, hits, floor = measure(url, images, args.per_request, args.hit_rounds)
    miss, hit = percentiles(misses), percentiles(hits)
    ratio = hit["p50"] / miss["p50"]
    return Result(
        backend,
        {"miss": len(misses), "hit": len(hits)},
        miss,
        hit,
        percentiles(floor),
        round(ratio, 3),
        ratio <= TARGET_RATIO,
    )


@contextmanager
def maybe_redis(backend: str) -> Iterator[str | None]:
    """A redis-server's URL for the redis backend, None for the in-process one."""
    if backend == "redis":
        with redis_server() as url:
            yield url
    else:
        yield None


def main(argv: list[str] | None = None) -> int:
    """Runs the scenario and prints one table (and JSON with --json)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["redis", "memory", "both"], default="both")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--images", type=int, default=200, help="distinct images (misses)")
    parser.add_argument("--per-request", type=int, default=1, help="images in one /encode")
    parser.add_argument("--hit-rounds", type=int, default=2, help="extra passes of hits")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if not (args.models_dir / "mnist").is_dir():
        raise SystemExit(f"no mnist model in {args.models_dir}")
    images = fixed_images(args.images)
    backends = ["redis", "memory"] if args.backend == "both" else [args.backend]
    results = []
    with TemporaryDirectory(prefix="cache-bench-") as tmp:
        for backend in backends:
            results.append(run(backend, args, images, Path(tmp)))
    print(f"cache scenario: {len(images)} images, {args.per_request} per /encode, sequential")
    print(
        f"{'backend':8} {'miss p50':>9} {'p90':>7} {'hit p50':>8} {'p90':>7} {'HTTP floor':>10}"
        f" {'hit/miss p50':>13}  (target <= 0.333)"
    )
    for r in results:
        verdict = "met" if r.meets_target else "NOT met"
        print(
            f"{r.backend:8} {r.miss_ms['p50']:7.2f}ms {r.miss_ms['p90']:5.2f}ms"
            f" {r.hit_ms['p50']:6.2f}ms {r.hit_ms['p90']:5.2f}ms {r.floor_ms['p50']:8.2f}ms"
            f" {r.ratio_p50:13.3f}  {verdict}"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

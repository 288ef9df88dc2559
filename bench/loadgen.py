"""Closed-loop HTTP load with wrk: N connections, each sending its next request when the last
answer arrives, for a fixed time, to 127.0.0.1 only.

wrk (C, epoll) is used because a Python asyncio client saturates long before the server does on
this machine (httpx held a do-nothing endpoint to 68 requests/s where wrk drove 2,200).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LUA_SCRIPT = Path(__file__).with_name("post.lua")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int
    bad_status: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    client_cpu_seconds: float

    @property
    def rps(self) -> float:
        """Requests answered with a 2xx or 3xx status, a second."""
        return (self.requests - self.bad_status) / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def write_bodies(path: Path, bodies: list[str]) -> Path:
    """One JSON body a line, as post.lua reads them."""
    if any("\n" in body for body in bodies):
        raise ValueError("request bodies must be single-line JSON")
    path.write_text("\n".join(bodies) + "\n")
    return path


def run_wrk(
    url: str,
    bodies_file: Path,
    connections: int,
    seconds: float,
    timeout_s: float = 30.0,
    script: Path = LUA_SCRIPT,
    script_args: tuple[str, ...] = (),
) -> LoadResult:
    """Drives `url` with `connections` closed-loop clients for `seconds` and returns the summary
    (`script` post.lua with JSON bodies a line, or post_raw.lua with one binary body and
    `script_args` its content type and an optional header)."""
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load generator only targets loopback, not {host}")
    command = [
        ensure_wrk(),
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout_s:g}s",
        "-s",
        str(script),
        url,
        "--",
        str(bodies_file),
        *script_args,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    latency = data["latency_us"]
    return LoadResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors=sum(int(v) for v in data["errors"].values()),
        bad_status=int(data["errors"]["status"]),
        p50_ms=latency["p50"] / 1000.0,
        p90_ms=latency["p90"] / 1000.0,
        p99_ms=latency["p99"] / 1000.0,
        mean_ms=latency["mean"] / 1000.0,
        max_ms=latency["max"] / 1000.0,
        client_cpu_seconds=cpu,
    )

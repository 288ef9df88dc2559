"""The soak (issue 9): minutes of mixed load at the batcher's capacity against `vae serve` with the
shipped model, the server's memory and open files sampled throughout.

    .venv/bin/python -m bench.soak --minutes 5

wrk (bench/soak.lua) keeps `--connections` closed-loop clients POSTing to /decode, /encode,
/sample and /interpolate (the route drawn by weight for every request), more than the batch queue
holds: VAE_MAX_QUEUE is set low enough that some requests are refused with 429, as the queue limit
asks. Every few seconds the server's RSS, open file descriptors and threads are read from /proc and
its request counters from /metrics. At the end: a table over time, the growth of RSS and fds from
the end of the warm-up (the first minute) to the end, requests answered by route and status, 429s,
other errors and lost requests (connection errors, timeouts, 5xx). Exits 1 when RSS or fds grew
past the bounds, or anything was lost or failed other than with a 429.

Results go to bench/results/soak-<time>/ (samples.csv, summary.json, the server's log).
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.loadgen import ensure_wrk
from bench.machine import describe
from bench.models import ROOT
from bench.procs import ServerProcess, free_port, http_get, vae_command

LUA = Path(__file__).with_name("soak.lua")
DIGITS = ROOT / "tests" / "fixtures" / "mnist-heldout-256.npz"
ROUTES = ("/decode", "/encode", "/sample", "/interpolate")
WEIGHTS = {"/decode": 4, "/encode": 3, "/sample": 2, "/interpolate": 1}
RSS_GROWTH_MIB = 32.0
"""Allowed RSS growth after warm-up: well above allocator noise (a few MiB), well below what a
leak of 1 KiB a request would add over a 5-minute soak at this rate (over 100 MiB)."""
FD_GROWTH = 8
"""Allowed growth of open file descriptors after warm-up (the client's connections are fixed)."""


@dataclass(frozen=True)
class Sample:
    """The server at one moment."""

    t: float
    rss_mib: float
    fds: int
    threads: int
    answered: dict[str, int]  # cumulative, by "<route> <status>"


def proc_stats(pid: int) -> tuple[float, int, int]:
    """(RSS in MiB, open file descriptors, threads) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    return rss_kib / 1024.0, len(os.listdir(f"/proc/{pid}/fd")), threads


def answered(url: str) -> dict[str, int]:
    """Requests the server has answered on the soak's routes: {"<route> <status>": count}."""
    status, body = http_get(f"{url}/metrics", timeout=10.0)
    found: Counter[str] = Counter()
    if status != 200:
        return dict(found)
    for line in body.decode().splitlines():
        if not line.startswith("vae_http_requests_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("route") in ROUTES:
            found[f"{labels['route']} {labels['status']}"] += int(float(line.split()[-1]))
    return dict(found)


def png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_bodies(path: Path, latent_dim: int, images: int = 2048, seed: int = 0) -> None:
    """Request bodies, one "<route>\\t<json>" a line: single and 4-row decodes, `images` distinct
    digits to encode (more than the latent cache keeps, so misses go on), seeded samples of 4,
    lerp and slerp interpolations of 8 steps."""
    rng = np.random.default_rng(seed)
    with np.load(DIGITS) as data:
        digits = data["images"]
    lines = []

    def add(route: str, body: dict[str, Any]) -> None:
        lines.append(f"{route}\t{json.dumps(body, separators=(',', ':'))}")

    def latents(rows: int) -> list[list[float]]:
        return rng.standard_normal((rows, latent_dim)).round(4).tolist()  # type: ignore[no-any-return]

    for i in range(256):
        add("/decode", {"latents": latents(4 if i % 4 == 0 else 1)})
    for i in range(images):
        digit = digits[i % len(digits)].copy()
        flips = rng.integers(0, 28, (3, 2))
        digit[flips[:, 0], flips[:, 1]] = 255 - digit[flips[:, 0], flips[:, 1]]
        add("/encode", {"images": [png_b64(digit)]})
    for i in range(64):
        add("/sample", {"n": 4, "seed": i})
    for i in range(64):
        start, end = latents(2)
        method = "slerp" if i % 2 else "lerp"
        add("/interpolate", {"start": {"latent": start}, "end": {"latent": end}, "steps": 8,
                             "method": method})  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def start_server(out: Path, max_queue: int) -> tuple[ServerProcess, str]:
    """`vae serve` with the shipped model, the queue limit low enough for 429s at capacity."""
    port = free_port()
    env = {
        "VAE_MODELS_DIR": str(ROOT / "models"),
        "VAE_DATA_DIR": str(out / "data"),
        "VAE_MAX_QUEUE": str(max_queue),
        "VAE_CACHE_MAX_ENTRIES": "512",
    }
    command = vae_command("serve", "--port", str(port))
    server = ServerProcess("service", command, env, ROOT, out / "server.log")
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(f"{url}/v2/health/ready", 180.0)
    return server, url


def start_wrk(url: str, bodies: Path, connections: int, seconds: int) -> subprocess.Popen[str]:
    """wrk in the background, one thread, `connections` connections, for `seconds`."""
    weights = ",".join(f"{route}={w}" for route, w in WEIGHTS.items())
    command = [ensure_wrk(), "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
               "--timeout", "30s", "-s", str(LUA), url, "--", str(bodies), weights]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def row(sample: Sample, previous: Sample) -> dict[str, Any]:
    """One line of the table: the sample, and rates over the interval since `previous`."""
    span = max(sample.t - previous.t, 1e-9)
    delta = Counter(sample.answered)
    delta.subtract(previous.answered)
    ok = sum(n for key, n in delta.items() if key.endswith(" 200"))
    full = sum(n for key, n in delta.items() if key.endswith(" 429"))
    other = sum(delta.values()) - ok - full
    return {"t_s": round(sample.t), "rss_mib": round(sample.rss_mib, 1), "fds": sample.fds,
            "threads": sample.threads, "ok_per_s": round(ok / span, 1),
            "429_per_s": round(full / span, 1), "other": other}  # fmt: skip


def summarize(
    samples: list[Sample], client: dict[str, Any], warmup_s: float, seconds: float
) -> dict[str, Any]:
    """The verdict: growth from the end of the warm-up to the last sample under load, what was
    answered and what was lost. `samples` ends with one taken after the load stopped."""
    start, end, after = samples[0], samples[-2], samples[-1]
    warm = next((s for s in samples if s.t >= warmup_s), end)
    load = Counter(after.answered)
    load.subtract(start.answered)
    held = Counter(end.answered)
    held.subtract(warm.answered)
    span = max(end.t - warm.t, 1e-9)
    tail = [s for s in samples[:-1] if s.t >= warm.t]
    slope = (
        float(np.polyfit([s.t for s in tail], [s.rss_mib for s in tail], 1)[0]) * 60
        if len(tail) >= 3
        else 0.0
    )
    statuses = {int(k): int(v) for k, v in client["statuses"].items()}
    transport = sum(v for k, v in client["errors"].items() if k != "status")
    server_5xx = sum(n for key, n in load.items() if key.split()[1].startswith("5"))
    client_5xx = sum(n for status, n in statuses.items() if status >= 500)
    other = sum(n for s, n in statuses.items() if s not in (200, 429) and s < 500)
    by_route = {
        route: round(sum(n for k, n in held.items() if k == f"{route} 200") / span, 1)
        for route in ROUTES
    }
    return {
        "seconds": round(seconds),
        "rss_mib": {"before_load": round(start.rss_mib, 1), "after_warmup": round(warm.rss_mib, 1),
                    "end": round(end.rss_mib, 1), "max": round(max(s.rss_mib for s in samples), 1),
                    "growth_after_warmup": round(end.rss_mib - warm.rss_mib, 1),
                    "slope_after_warmup_mib_per_min": round(slope, 2)},
        "fds": {"before_load": start.fds, "after_warmup": warm.fds, "end": end.fds,
                "max": max(s.fds for s in samples), "growth_after_warmup": end.fds - warm.fds},
        "threads": {"after_warmup": warm.threads, "end": end.threads},
        "answered_by_route_and_status": dict(sorted((k, n) for k, n in load.items() if n)),
        "ok_per_s_after_warmup": {**by_route, "all": round(sum(by_route.values()), 1)},
        "client": {"requests": client["requests"], "statuses": statuses,
                   "transport_errors": {k: v for k, v in client["errors"].items() if k != "status"},
                   "latency_ms": {k: v / 1000 for k, v in client["latency_us"].items()}},
        "rejected_429": statuses.get(429, 0),
        "other_errors": other,
        "server_5xx": server_5xx,
        "lost": transport + client_5xx,
    }  # fmt: skip


def verdict(summary: dict[str, Any]) -> list[str]:
    """What went wrong (empty when the soak held)."""
    problems = []
    if summary["rss_mib"]["growth_after_warmup"] > RSS_GROWTH_MIB:
        problems.append(f"RSS grew more than {RSS_GROWTH_MIB} MiB after warm-up")
    if summary["fds"]["growth_after_warmup"] > FD_GROWTH:
        problems.append(f"open fds grew by more than {FD_GROWTH} after warm-up")
    if summary["lost"] or summary["server_5xx"]:
        problems.append(f"{summary['lost']} requests lost, {summary['server_5xx']} 5xx")
    if summary["other_errors"]:
        problems.append(f"{summary['other_errors']} answers other than 200 and 429")
    return problems


def soak(minutes: float, connections: int, max_queue: int, every: float, warmup: float) -> int:
    """Runs the soak; the exit status."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "bench" / "results" / f"soak-{stamp}"
    out.mkdir(parents=True)
    machine = describe()
    server, url = start_server(out, max_queue)
    pid = server.process.pid
    bodies = out / "bodies.txt"
    latent_dim = int(
        json.loads((ROOT / "models" / "mnist" / "1" / "manifest.json").read_text())["latent_dim"]
    )
    write_bodies(bodies, latent_dim)
    seconds = max(1, round(minutes * 60))
    table: list[dict[str, Any]] = []
    try:
        began = time.monotonic()
        samples = [Sample(0.0, *proc_stats(pid), answered(url))]
        wrk = start_wrk(url, bodies, connections, seconds)
        print(f"soak: {seconds} s, {connections} connections, VAE_MAX_QUEUE={max_queue}, {url}")
        print(" t(s)  RSS MiB   fds  threads   200/s   429/s  other")
        while wrk.poll() is None:
            time.sleep(every)
            if wrk.poll() is not None:
                break
            samples.append(Sample(time.monotonic() - began, *proc_stats(pid), answered(url)))
            line = row(samples[-1], samples[-2])
            table.append(line)
            print(f"{line['t_s']:5d} {line['rss_mib']:8.1f} {line['fds']:5d} {line['threads']:8d} "
                  f"{line['ok_per_s']:7.1f} {line['429_per_s']:7.1f} {line['other']:6d}",
                  flush=True)  # fmt: skip
        stdout, stderr = wrk.communicate()
        after = Sample(time.monotonic() - began, *proc_stats(pid), answered(url))
        alive = server.process.poll() is None
    finally:
        server.stop()
    found = next((ln for ln in stdout.splitlines() if ln.startswith("SOAK_JSON ")), None)
    if found is None:
        raise RuntimeError(f"wrk failed ({wrk.returncode}): {stderr.strip() or stdout}")
    client = json.loads(found.removeprefix("SOAK_JSON "))
    summary = summarize([*samples, after], client, warmup, seconds)
    summary["after_load"] = {"rss_mib": round(after.rss_mib, 1), "fds": after.fds}
    summary.update(connections=connections, max_queue=max_queue, machine=machine,
                   server_alive_at_end=alive, bounds={"rss_growth_mib": RSS_GROWTH_MIB,
                                                      "fd_growth": FD_GROWTH})  # fmt: skip
    problems = verdict(summary) + ([] if alive else ["the server died"])
    summary["problems"] = problems
    with open(out / "samples.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    (out / "samples.json").write_text(json.dumps([asdict(s) for s in samples], indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "machine"}, indent=2))
    print(f"results in {out.relative_to(ROOT)}")
    for problem in problems:
        print(f"FAIL: {problem}")
    if not summary["rejected_429"]:
        print("note: no 429s: the load stayed under the queue limit (raise --connections)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: bench.soak [--minutes M] [--connections C] [--max-queue Q] ..."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-queue", type=int, default=96, help="VAE_MAX_QUEUE (samples)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before growth counts")
    args = parser.parse_args(argv)
    return soak(args.minutes, args.connections, args.max_queue, args.every, args.warmup)


if __name__ == "__main__":
    sys.exit(main())

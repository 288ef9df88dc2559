"""Models in an object store (issue 15): how long from a publish until every api replica serves
the new version, and how long an api replica with an empty cache takes to become ready.

Starts SeaweedFS (`weed mini`, as the tests do) on loopback, seeds it with the shipped model, then

- cold start: `vae serve` on `s3://` with an empty cache directory, from the process' start to
  `/v2/health/ready` answering 200 (it downloads and checks the shipped model, then loads it);
  beside it the same replica restarted on its filled cache, and one on the plain directory;
- publish to serving: two replicas running; the shipped model's files published again as a new
  version of `mnist` (files, then the manifest create-only, then DEFAULT), and each replica polled
  with `/sample` every 20 ms until it answers with the new version; the slower replica counts.
  Twice: replicas that only poll the store, and replicas that also hear the worker's Redis
  announcement (a redis-server of the bench's own; the bench announces as a worker does).

    .venv/bin/python -m bench.object_store [--rounds 5] [--reload-interval 2.0]

About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from app.repository.copying import copy_repository
from app.repository.manifest import Manifest
from app.repository.mirror import CachedRepository
from app.repository.object_repository import ObjectModelRepository
from app.repository.store import MANIFEST, ModelRepository
from app.serving.notifications import announce
from bench import machine
from tests.support.paths import ROOT
from tests.support.processes import free_port, redis_running
from tests.support.seaweedfs import SeaweedFS, seaweedfs_running

SHIPPED = ROOT / "models"
RESULTS = ROOT / "bench" / "results"


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """`vae serve` with `env`; returns it, its URL and the seconds until it was ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"vae serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(20)


def served_version(url: str) -> int | None:
    reply = httpx.post(f"{url}/sample", json={"model": "mnist", "n": 1, "seed": 0}, timeout=5)
    return int(reply.json()["version"]) if reply.status_code == 200 else None


def publish_again(repository: ObjectModelRepository) -> int:
    """The shipped model's files as a new version of mnist."""
    staging = repository.staging_dir("mnist")
    shutil.copytree(SHIPPED / "mnist" / "1", staging, dirs_exist_ok=True)
    manifest = Manifest.model_validate_json((staging / MANIFEST).read_text())
    (staging / MANIFEST).unlink()
    return repository.publish("mnist", staging, manifest)


def cold_starts(store: SeaweedFS, env: dict[str, str], work: Path, rounds: int) -> dict[str, float]:
    """Median seconds to ready: empty cache, filled cache, plain directory."""
    empty, filled, plain = [], [], []
    for i in range(rounds):
        cache = work / f"cache-{i}"
        process, _, seconds = start_api({**env, "VAE_MODELS_CACHE_DIR": str(cache)}, work / "a.log")
        stop(process)
        empty.append(seconds)
        process, _, seconds = start_api({**env, "VAE_MODELS_CACHE_DIR": str(cache)}, work / "a.log")
        stop(process)
        filled.append(seconds)
        local = {**env, "VAE_MODELS_DIR": str(SHIPPED), "VAE_DATA_DIR": str(work / "data")}
        process, _, seconds = start_api(local, work / "a.log")
        stop(process)
        plain.append(seconds)
    return {
        "cold_start_empty_cache_s": statistics.median(empty),
        "start_filled_cache_s": statistics.median(filled),
        "start_plain_directory_s": statistics.median(plain),
    }


def cache_fills(store: SeaweedFS, work: Path, rounds: int) -> dict[str, float]:
    """Median seconds of one pull of the shipped model into an empty cache (in process: the
    listing, the downloads, every sha256 checked, the rename), the part of a cold start that
    the object store adds."""
    source = ObjectModelRepository(store.store("models"))
    times = []
    for i in range(rounds):
        cache = CachedRepository(work / f"fill-{i}", source)
        started = time.monotonic()
        cache.sync()
        times.append(time.monotonic() - started)
    return {"cache_fill_shipped_model_s": statistics.median(times)}


def publish_to_serving(
    store: SeaweedFS,
    env: dict[str, str],
    work: Path,
    rounds: int,
    interval: float,
    redis_url: str | None = None,
) -> dict[str, float]:
    """Seconds from a publish's return until both replicas answer the new version."""
    repository = ObjectModelRepository(store.store("models"))
    mode = "announced" if redis_url else "polled"
    extra = {"VAE_REDIS_URL": redis_url} if redis_url else {}
    replicas = [
        start_api(
            {**env, **extra, "VAE_MODELS_CACHE_DIR": str(work / f"{mode}-{i}"),
             "VAE_RELOAD_INTERVAL_S": str(interval)},
            work / f"{mode}-{i}.log",
        )
        for i in range(2)
    ]  # fmt: skip
    times = []
    try:
        for _ in range(rounds):
            version = publish_again(repository)
            published = time.monotonic()
            if redis_url:
                announce(redis_url, "mnist", version)
            pending = {url for _, url, _ in replicas}
            while pending:
                pending = {url for url in pending if served_version(url) != version}
                time.sleep(0.02)
            times.append(time.monotonic() - published)
            time.sleep(interval * 0.37)  # the next publish lands at another point of the poll
    finally:
        for process, _, _ in replicas:
            stop(process)
    return {
        f"{mode}_publish_to_every_replica_median_s": statistics.median(times),
        f"{mode}_publish_to_every_replica_max_s": max(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reload-interval", type=float, default=2.0)
    args = parser.parse_args()
    about = machine.describe()
    work = Path(tempfile.mkdtemp(prefix="vae-bench-objects-"))
    try:
        with seaweedfs_running(work / "seaweedfs") as store:
            copy_repository(ModelRepository(SHIPPED), ObjectModelRepository(store.store("models")))
            env = {
                **store.env(),
                "VAE_MODELS_DIR": store.url("models"),
                "VAE_DATA_DIR": store.url("data"),
            }
            results = cache_fills(store, work, args.rounds)
            results |= cold_starts(store, env, work, args.rounds)
            results |= publish_to_serving(store, env, work, args.rounds, args.reload_interval)
            with redis_running() as redis:
                results |= publish_to_serving(
                    store, env, work, args.rounds, args.reload_interval, redis.url
                )
            results["reload_interval_s"] = args.reload_interval
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"machine": about, "results": {k: round(v, 3) for k, v in results.items()},
              "rounds": args.rounds}  # fmt: skip
    print(json.dumps(report, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"object-store-{stamp}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results in {out}")


if __name__ == "__main__":
    main()

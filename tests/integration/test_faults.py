"""Faults under load against a real `vae serve` on loopback (issue 9, hardening).

Each test runs a bounded load (a few client threads looping over /decode, /encode and /sample)
while a fault happens, counts every answer by status, and then checks that the repository on
disk is intact and that the service answers normally again, in the same process:

- Redis killed and restarted: the inference routes keep answering 200, the job routes answer a
  clean 503 while Redis is away, and both come back on their own (the latent cache's own kill,
  stall and restart under /encode and /interpolate load is in test_cache_redis.py);
- an RQ worker killed mid-job: the job ends `failed` with a reason, nothing is published, the
  service keeps answering, and a new worker trains the next job;
- model versions deleted while served, through the admin route and with `rm -rf` behind the
  service's back: 200 from a remaining version or a clean 404, never a 5xx;
- the model repository briefly unreadable (the directory renamed away and back; a version's files
  replaced with garbage and truncated files): the loaded versions keep answering, a broken
  version never replaces a working one, and once the files are back it is picked up.

Each test prints a `FAULT ...` line with its counts (run with -s to see them).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.repository.store import ModelRepository
from tests.support import jobs
from tests.support.load import DEFAULT, ROUTES, Load, body_for
from tests.support.processes import (
    RedisServer,
    ServiceProcess,
    running_service,
    start_redis,
    wait_until,
)
from tests.support.repositories import copy_version
from tests.support.synthetic import mnist_style_zip

# ---- the load ----------------------------------------------------------------------------


def report(name: str, load: Load) -> None:
    """Prints the counts a fault produced (collected into bench/HARDENING.md)."""
    print(f"\nFAULT {name}: {load.summary()}")


def no_server_errors(load: Load) -> None:
    """Nothing lost and no 5xx (but a clean 503 where the caller allows it)."""
    assert load.failures == [], load.failures[:5]
    assert all(status < 500 for status in load.by_status()), load.summary()


# ---- the repository ----------------------------------------------------------------------
def tree_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory`, manifest included, by relative path."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def versions_on_disk(repo: Path, name: str = "mnist") -> list[int]:
    return sorted(int(p.name) for p in (repo / name).iterdir() if p.name.isdigit())


def no_leftovers(repo: Path, name: str = "mnist") -> None:
    """No half-written or half-deleted version is left behind."""
    assert not [p.name for p in (repo / name).iterdir() if p.name.startswith(".")]


def publish_copy(repo: Path, source: int = 1) -> int:
    """Publishes a copy of a version's files the way training does; the new number."""
    repository = ModelRepository(repo)
    staging = repository.staging_dir("mnist")
    for path in repository.version_dir("mnist", source).iterdir():
        if path.is_file() and path.name != "manifest.json":
            shutil.copy2(path, staging / path.name)
    return repository.publish("mnist", staging, repository.manifest("mnist", source))


def answers_normally(http: httpx.Client, ref: str | None = None) -> int:
    """One request on each route answers 200; the version that answered."""
    rng = np.random.default_rng(0)
    digits = np.zeros((1, 28, 28), dtype=np.uint8)
    versions = set()
    for route in ROUTES:
        reply = http.post(f"/{route}", json=body_for(route, ref, rng, digits))
        assert reply.status_code == 200, (route, reply.status_code, reply.text)
        versions.add(int(reply.json()["version"]))
    assert len(versions) == 1, versions
    return versions.pop()


def version_of(http: httpx.Client, ref: str | None = None) -> int:
    body: dict[str, Any] = {"n": 1, "seed": 0} | ({"model": ref} if ref else {})
    reply = http.post("/sample", json=body)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["version"])


# ---- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def repo(models_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shipped repository: this test's faults stay in it."""
    target = tmp_path / "models"
    shutil.copytree(models_dir / "mnist", target / "mnist")
    return target


@pytest.fixture(scope="module")
def digits(heldout_digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return heldout_digits[0][:64]


def env_for(tmp_path: Path, repo: Path, **extra: str) -> dict[str, str]:
    return {
        "VAE_MODELS_DIR": str(repo),
        "VAE_DATA_DIR": str(tmp_path / "data"),
        "VAE_ADMIN_TOKEN": jobs.TOKEN,
        **extra,
    }


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    """`vae serve` on the embedded backends, polling the repository every 0.5 s."""
    with running_service(env_for(tmp_path, repo), tmp_path) as service:
        yield service


# ---- (a) Redis killed and restarted --------------------------------------------------------
def jobs_status(http: httpx.Client) -> int:
    return http.get("/jobs").status_code


def cache_state(http: httpx.Client) -> str:
    reply = http.get("/v2/health/ready")
    assert reply.status_code == 200, reply.text
    return str(reply.json()["cache"])


def cache_up(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('vae_cache_up{backend="redis"}'):
            return float(line.split()[-1])
    raise AssertionError("no vae_cache_up for redis")


def test_redis_killed_and_restarted_under_load(
    redis_server: RedisServer, repo: Path, tmp_path: Path, digits: np.ndarray
) -> None:
    env = env_for(tmp_path, repo, VAE_REDIS_URL=redis_server.url, VAE_CACHE_BREAKER_RESET_S="1")
    before = tree_hashes(repo)
    restarted: RedisServer | None = None
    with running_service(env, tmp_path) as service, service.client() as http:
        try:
            with Load(service.url, digits) as load:
                load.wait_for(30)
                assert jobs_status(http) == 200 and cache_up(http) == 1.0

                redis_server.stop()  # SIGKILL, mid-traffic
                wait_until(lambda: cache_state(http) == "degraded", 20, what="cache degraded")
                load.wait_for(30)
                assert cache_up(http) == 0.0
                away = http.get("/jobs")
                assert away.status_code == 503, away.text  # a clean answer, never a 500
                assert "Retry-After" in away.headers
                assert http.get("/jobs/0123abcd").status_code == 503

                restarted = start_redis(redis_server.port)  # same address, empty
                wait_until(lambda: cache_state(http) == "ok", 30, what="the cache to come back")
                wait_until(lambda: jobs_status(http) == 200, 30, what="the job routes to return")
                assert cache_up(http) == 1.0
                load.wait_for(30)
            report("redis killed and restarted", load)
            answers_normally(http)
        finally:
            if restarted is not None:
                restarted.stop()
        assert service.process.poll() is None  # the same process all along
    assert load.failures == []
    assert load.by_status() == {200: load.count()}, load.summary()
    assert tree_hashes(repo) == before


# ---- (b) a worker killed mid-job -----------------------------------------------------------
def test_a_worker_killed_mid_job_under_load(
    redis_server: RedisServer, repo: Path, tmp_path: Path, digits: np.ndarray
) -> None:
    env = env_for(tmp_path, repo, VAE_REDIS_URL=redis_server.url, VAE_JOB_STALE_AFTER_S="4")
    before = tree_hashes(repo)
    worker = jobs.start_worker(env, tmp_path)
    replacement: subprocess.Popen[bytes] | None = None
    try:
        with running_service(env, tmp_path) as service, service.client() as http:
            jobs.put_dataset(http, "strokes", mnist_style_zip(300))
            doomed = jobs.submit(http, "strokes", "doomed", jobs.ENDLESS)
            wait_until(
                lambda: jobs.job(http, doomed)["progress"].get("step", 0) > 0,
                120,
                what="training to start",
            )
            with Load(service.url, digits) as load:
                load.wait_for(20)
                jobs.stop_group(worker)  # the worker and its work-horse, without warning
                final = jobs.wait_status(http, doomed, {"failed", "succeeded", "cancelled"}, 60)
                load.wait_for(20)
            report("worker killed mid-job", load)
            assert final["status"] == "failed", final
            assert "heartbeat" in final["error"] and "nothing was published" in final["error"]
            assert not (repo / "doomed").exists() or versions_on_disk(repo, "doomed") == []

            # a new worker takes the next job: the queue was not left stuck
            replacement = jobs.start_worker(env, tmp_path)
            quick = {**jobs.ENDLESS, "epochs": 1}
            again = jobs.submit(http, "strokes", "revived", quick)
            done = jobs.wait_status(http, again, {"failed", "succeeded", "cancelled"}, 180)
            assert done["status"] == "succeeded", done
            assert version_of(http, "revived") == 1
            answers_normally(http)
            assert service.process.poll() is None
    finally:
        jobs.stop_group(worker)
        if replacement is not None:
            jobs.stop_group(replacement)
    no_server_errors(load)
    assert load.by_status() == {200: load.count()}, load.summary()
    assert tree_hashes(repo / "mnist") == {k.removeprefix("mnist/"): v for k, v in before.items()}


# ---- (c) versions deleted while served -----------------------------------------------------
def test_versions_deleted_while_served_under_load(
    served: ServiceProcess, repo: Path, digits: np.ndarray
) -> None:
    assert (publish_copy(repo), publish_copy(repo)) == (2, 3)  # DEFAULT now says 3
    kept = tree_hashes(repo / "mnist" / "1")
    with served.client() as http:
        wait_until(lambda: version_of(http) == 3, 30, what="version 3 to answer")
        for ref in ("mnist:1", "mnist:2"):
            answers_normally(http, ref)  # loaded before the faults
        refs = [None, "mnist:1", "mnist:2", "mnist:3"]
        with Load(served.url, digits, refs=refs, threads=4) as load:
            load.wait_for(40)

            # through the admin route, while requests for it are in flight
            gone = http.delete("/models/mnist/versions/2", headers=jobs.AUTH)
            assert gone.status_code == 204, gone.text
            assert http.post("/sample", json={"model": "mnist:2", "n": 1}).status_code == 404
            load.wait_for(100)

            # the default version, behind the service's back
            shutil.rmtree(repo / "mnist" / "3")
            wait_until(lambda: version_of(http) == 1, 30, what="the default to fall back to 1")
            load.wait_for(100)
        report("versions deleted while served", load)

        no_server_errors(load)
        for ref in (DEFAULT, "mnist:1"):
            assert set(load.by_status(ref)) == {200}, load.summary()
        for ref in ("mnist:2", "mnist:3"):
            assert set(load.by_status(ref)) <= {200, 404}, load.summary()
            assert load.by_status(ref).get(404, 0) > 0, load.summary()
        assert http.post("/sample", json={"model": "mnist:3", "n": 1}).status_code == 404
        assert [v["version"] for v in http.get("/models/mnist").json()["versions"]] == [1]

        # the repository is whole, and a new version is picked up under a new number (never a
        # deleted one's: the cache and other replicas know versions by name and number)
        assert versions_on_disk(repo) == [1] and tree_hashes(repo / "mnist" / "1") == kept
        no_leftovers(repo)
        assert publish_copy(repo) == 4
        wait_until(lambda: version_of(http) == 4, 30, what="the new version 4 to answer")
        assert answers_normally(http) == 4 and answers_normally(http, "mnist:1") == 1
        assert http.post("/sample", json={"model": "mnist:2", "n": 1}).status_code == 404
        assert served.process.poll() is None


# ---- (d) the repository briefly unreadable -------------------------------------------------
def test_the_repository_renamed_away_and_back_under_load(
    served: ServiceProcess, repo: Path, digits: np.ndarray
) -> None:
    copy_version(repo, 1, 2)
    kept = tree_hashes(repo / "mnist")
    away = repo.with_name("models-away")
    with served.client() as http:
        wait_until(lambda: version_of(http) == 2, 30, what="version 2 to answer")
        answers_normally(http, "mnist:1")
        with Load(served.url, digits, refs=[None, "mnist:1"]) as load:
            load.wait_for(30)
            repo.rename(away)
            # several reload polls (every 0.5 s) find no repository while requests go on
            load.wait_for(150)
            assert http.get("/v2/health/ready").status_code == 200
            assert http.get("/v2/models/mnist/ready").json()["ready"] is True
            unloaded = http.post("/sample", json={"model": "mnist:7", "n": 1})
            assert unloaded.status_code == 503, unloaded.text  # not a false "no such model"
            away.rename(repo)
            load.wait_for(30)
        report("repository renamed away and back", load)

        no_server_errors(load)
        assert load.by_status() == {200: load.count()}, load.summary()
        assert tree_hashes(repo / "mnist") == kept
        copy_version(repo, 1, 3)
        wait_until(lambda: version_of(http) == 3, 30, what="a new version after the outage")
        assert answers_normally(http, "mnist:2") == 2
        assert served.process.poll() is None


def test_garbage_and_truncated_files_under_load(
    served: ServiceProcess, repo: Path, digits: np.ndarray
) -> None:
    version_dir = repo / "mnist" / "1"
    good = {p: p.read_bytes() for p in version_dir.iterdir() if p.is_file()}
    kept = tree_hashes(version_dir)
    with served.client() as http:
        assert version_of(http) == 1
        with Load(served.url, digits, refs=[None, "mnist:1"]) as load:
            load.wait_for(30)

            # the serving version's files replaced in place with garbage and truncated bytes
            for path, data in good.items():
                path.write_bytes(data[: len(data) // 3] if path.suffix == ".onnx" else b"\0junk")
            load.wait_for(100)
            assert http.get("/models/mnist").status_code == 200

            # a new version published broken (truncated graphs) must not replace version 1
            copy_version(repo, 1, 2)  # copies the broken files as they are now
            wait_until(
                lambda: http.post("/sample", json={"model": "mnist:2", "n": 1}).status_code == 503,
                30,
                what="the broken version 2 to be refused",
            )
            load.wait_for(40)
            assert version_of(http) == 1

            # the files come back: the same version, unchanged on disk
            for path, data in good.items():
                path.write_bytes(data)
            load.wait_for(20)
        report("garbage and truncated files", load)

        no_server_errors(load)
        assert load.by_status() == {200: load.count()}, load.summary()
        assert tree_hashes(version_dir) == kept
        # version 2's files repaired in place: it is tried again and takes over, no restart
        for path, data in good.items():
            if path.name == "manifest.json":
                data = data.replace(b'"version": 1', b'"version": 2')
            (repo / "mnist" / "2" / path.name).write_bytes(data)
        wait_until(lambda: version_of(http) == 2, 30, what="the repaired version 2 to answer")
        assert answers_normally(http) == 2 and answers_normally(http, "mnist:1") == 1
        assert served.process.poll() is None

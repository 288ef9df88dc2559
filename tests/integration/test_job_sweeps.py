"""What a dead RQ job leaves is swept as soon as a worker starts again, without waiting for its
heartbeat to go stale; what a live job is writing is never swept. Real Redis, real workers (their
work-horses killed with them), real training."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis
from rq import Worker

from tests.support.jobs import (
    QUICK,
    env_for,
    job,
    put_dataset,
    start_worker,
    stop_group,
    submit,
    wait_status,
)
from tests.support.processes import RedisServer, ServiceProcess, running_service, wait_until

# Scoring samples trains a classifier: seconds of work with the staging directory written.
SLOW_END = {**QUICK, "epochs": 2, "quality": True}
LATE_STAGES = {"evaluating", "scoring samples", "publishing"}


@pytest.fixture
def env(tmp_path: Path, repo: Path, redis_server: RedisServer) -> dict[str, str]:
    # A staleness no test waits for: only the dead process can explain a sweep.
    return env_for(
        tmp_path, repo, {"VAE_REDIS_URL": redis_server.url, "VAE_JOB_STALE_AFTER_S": "600"}
    )


@pytest.fixture
def service(env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    with running_service(env, tmp_path) as running:
        yield running


def staging_of(repo: Path, job_id: str) -> list[Path]:
    return list(repo.glob(f"*/.staging-{job_id}-*"))


def workers_registered(redis_url: str) -> int:
    with Redis.from_url(redis_url) as connection:
        return int(Worker.count(connection=connection))


def _staging_written(http: httpx.Client, repo: Path, job_id: str) -> bool:
    stage = job(http, job_id)["progress"].get("stage")
    return stage in LATE_STAGES and bool(staging_of(repo, job_id))


@contextlib.contextmanager
def a_job_writing_its_staging(
    service: ServiceProcess, env: dict[str, str], upload: bytes, repo: Path, name: str
) -> Iterator[tuple[httpx.Client, str, list[subprocess.Popen[bytes]]]]:
    """A worker running a job whose staging directory is written; yields the client, the job's
    id and the workers (the test may start more); every worker is killed at the end."""
    workers = [start_worker(env, repo.parent)]
    try:
        with service.client() as http:
            put_dataset(http, "strokes", upload)
            job_id = submit(http, "strokes", name, SLOW_END)
            wait_until(
                lambda: _staging_written(http, repo, job_id), 240, 0.05, "the staging to be written"
            )
            yield http, job_id, workers
    finally:
        for worker in workers:
            stop_group(worker)


def test_a_dead_jobs_staging_is_gone_after_an_immediate_worker_restart(
    service: ServiceProcess, env: dict[str, str], upload: bytes, repo: Path
) -> None:
    with a_job_writing_its_staging(service, env, upload, repo, "cut") as (_, job_id, workers):
        stop_group(workers[0])  # the worker and its work-horse, at once
        assert staging_of(repo, job_id)
        workers.append(start_worker(env, repo.parent))
        wait_until(lambda: not staging_of(repo, job_id), 30, what="the dead job's staging to go")


def test_a_live_jobs_staging_survives_a_worker_starting_beside_it(
    service: ServiceProcess, env: dict[str, str], upload: bytes, repo: Path
) -> None:
    with a_job_writing_its_staging(service, env, upload, repo, "kept") as (http, job_id, workers):
        workers.append(start_worker(env, repo.parent))  # it sweeps before it registers
        wait_until(lambda: workers_registered(env["VAE_REDIS_URL"]) == 2, 60, what="2 workers")
        final = wait_status(http, job_id, {"succeeded", "failed", "cancelled"})
        assert final["status"] == "succeeded", final  # its staging was there to publish
        assert final["result"]["version"] == 1

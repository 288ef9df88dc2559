"""The worker's metrics, reported by RQ's parent process: job outcomes counted after the horse
exits, and a running job's progress copied from its meta in Redis (a real redis-server),
labelled with the model its spec names."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from app import metrics
from app.config import Settings
from app.jobs.models import JobRequest
from app.jobs.spec import JobSpec
from app.jobs.worker_metrics import MetricsWorker, ProgressPoller, outcome
from tests.support.processes import RedisServer, wait_until


@pytest.fixture
def connection(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


def sample(name: str, **labels: str) -> float | None:
    return metrics.WORKER_REGISTRY.get_sample_value(name, labels)


def test_the_poller_copies_progress_into_gauges_and_clears_them(connection: Redis) -> None:
    progress = {"step": 5, "steps": 20, "samples_per_second": 900.0, "loss": 120.5}
    spec = JobSpec.submitted(
        JobRequest(dataset="strokes", name="digits"), Settings(), created_at="now"
    )
    job = Queue("poller", connection=connection).enqueue(
        "os.getpid", spec.to_message(), meta={"progress": progress}
    )
    with ProgressPoller(job.id, connection, every=0.05):
        wait_until(
            lambda: sample("vae_training_progress_ratio", model="digits") == 0.25,
            10,
            what="the progress gauge",
        )
        assert sample("vae_training_samples_per_second", model="digits") == 900.0
        assert sample("vae_training_loss_nats", model="digits") == 120.5
        job.meta["progress"] = {**progress, "step": 20}
        job.save_meta()
        wait_until(
            lambda: sample("vae_training_progress_ratio", model="digits") == 1.0, 10, what="update"
        )
    assert sample("vae_training_progress_ratio", model="digits") is None
    assert sample("vae_training_loss_nats", model="digits") is None


def test_outcomes_read_as_the_api_reads_them(connection: Redis) -> None:
    queue = Queue("outcomes", connection=connection)

    def ended(status: JobStatus, **meta: object) -> str:
        job = queue.enqueue("os.getpid", meta=dict(meta))
        job.set_status(status)
        return outcome(Job.fetch(job.id, connection=connection))

    assert ended(JobStatus.FINISHED) == "succeeded"
    assert ended(JobStatus.FAILED) == "failed"
    assert ended(JobStatus.FAILED, cancel_requested=True) == "cancelled"
    assert ended(JobStatus.STOPPED) == "cancelled"
    gone = queue.enqueue("os.getpid")
    gone.delete()
    assert outcome(gone) == "failed"


def test_the_worker_counts_each_job_once_its_horse_has_exited(connection: Redis) -> None:
    queue = Queue("counted", connection=connection)
    ok = queue.enqueue("os.getpid")
    broken = queue.enqueue("app.jobs.worker_metrics.no_such_task")
    before = {
        status: sample("vae_worker_jobs_total", status=status) or 0.0
        for status in ("succeeded", "failed")
    }
    worker = MetricsWorker([queue], connection=connection)
    assert worker.work(burst=True, with_scheduler=False)
    assert ok.get_status(refresh=True) == JobStatus.FINISHED
    assert ok.return_value() != os.getpid()  # it ran in a forked horse
    assert broken.get_status(refresh=True) == JobStatus.FAILED
    assert sample("vae_worker_jobs_total", status="succeeded") == before["succeeded"] + 1
    assert sample("vae_worker_jobs_total", status="failed") == before["failed"] + 1
    assert sample("vae_worker_busy") == 0.0

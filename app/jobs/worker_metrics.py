"""What `vae worker` tells Prometheus: its jobs' outcomes, whether it is busy, training progress.

RQ runs every job in a forked work-horse that exits when the job ends, so whatever the horse
counted would die with it. The worker's parent process reports instead: it counts each job's
outcome once its horse has exited, and while a horse runs it copies the job's progress (which
`rq_task.run` saves in the job's meta in Redis every half second) into gauges. An HTTP server
thread in the parent serves them from `metrics.WORKER_REGISTRY`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from prometheus_client import start_http_server
from redis import Redis
from rq import Worker
from rq.job import Job, JobStatus

from app import metrics
from app.config import get_settings
from app.jobs.rq_backend import spec_of
from app.jobs.transaction import txn_key
from app.repository.opening import open_repository

logger = logging.getLogger(__name__)
PROGRESS_POLL_SECONDS = 2.0
OUTCOMES = ("succeeded", "failed", "cancelled")


def serve_metrics(host: str, port: int) -> None:
    """Serves the worker's metrics at http://host:port/metrics from a daemon thread."""
    for outcome in OUTCOMES:  # every series exists from the start, at 0
        metrics.WORKER_JOBS.labels(outcome)
    metrics.WORKER_BUSY.set(0)
    start_http_server(port, addr=host, registry=metrics.WORKER_REGISTRY)
    logger.info("worker metrics on http://%s:%d/metrics", host, port)


def discard_leftovers(job: Job) -> None:
    """Removes the staging directories a job's horse left (killed mid-export, say)."""
    try:
        spec = spec_of(job, get_settings())
        repository = open_repository(spec.models_dir, spec.s3_endpoint_url)
        removed = repository.discard_owned(job.id)
    except Exception:  # not a training job, or the repository is away: the next start sweeps
        logger.debug("could not clean up after job %s", job.id, exc_info=True)
        return
    if removed:
        logger.info("job %s: removed the %d staging directories it left", job.id, removed)


def outcome(job: Job) -> str:
    """How a job the horse has finished ended: succeeded, failed or cancelled (as the API says)."""
    try:
        status = job.get_status(refresh=True)
        meta = job.get_meta(refresh=True)
        gate = job.connection.hget(txn_key(job.id), "gate")
    except Exception:  # gone from Redis, or Redis away: nothing says it succeeded
        return "failed"
    if status == JobStatus.FINISHED:
        return "succeeded"
    if status in {JobStatus.STOPPED, JobStatus.CANCELED} or meta.get("cancel_requested"):
        return "cancelled"
    if gate in {b"cancel", "cancel"}:
        return "cancelled"
    return "failed"


class ProgressPoller:
    """Copies one running job's progress from its meta in Redis into the training gauges, from a
    daemon thread, every `every` seconds; removes the job's series when stopped."""

    def __init__(
        self, job_id: str, connection: Redis, every: float = PROGRESS_POLL_SECONDS
    ) -> None:
        self.job_id = job_id
        self.connection = connection
        self.every = every
        self.model: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-progress", daemon=True)

    def __enter__(self) -> ProgressPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.model is not None:
            for gauge in (
                metrics.WORKER_TRAINING_PROGRESS,
                metrics.WORKER_TRAINING_THROUGHPUT,
                metrics.WORKER_TRAINING_LOSS,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(self.model)

    def poll(self) -> None:
        """Reads the job's meta once and sets the gauges from its progress (labelled with the
        model its spec names)."""
        job = Job.fetch(self.job_id, connection=self.connection)
        if self.model is None:
            try:
                self.model = spec_of(job, get_settings()).name or "unknown"
            except ValueError:  # a job queued by another version: its gauges say so
                self.model = "unknown"
        model = self.model
        progress: dict[str, Any] = job.meta.get("progress") or {}
        steps = float(progress.get("steps") or 0)
        if steps > 0:
            metrics.WORKER_TRAINING_PROGRESS.labels(model).set(
                float(progress.get("step", 0)) / steps
            )
        if "samples_per_second" in progress:
            metrics.WORKER_TRAINING_THROUGHPUT.labels(model).set(
                float(progress["samples_per_second"])
            )
        if "loss" in progress:
            metrics.WORKER_TRAINING_LOSS.labels(model).set(float(progress["loss"]))

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # Redis away for a moment: the gauges keep their last values
                logger.debug("could not read the progress of job %s", self.job_id, exc_info=True)
            if self._stop.wait(self.every):
                return


class MetricsWorker(Worker):
    """An RQ worker whose parent process keeps the worker metrics. `progress_connection` is a
    Redis client for the progress poller (the worker's own blocks on dequeue with no timeout)."""

    def __init__(self, *args: Any, progress_connection: Redis | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress_connection = progress_connection or self.connection

    def execute_job(self, job: Job, queue: Any) -> None:
        """Runs the job in a horse (RQ's way), then counts how it ended."""
        metrics.WORKER_BUSY.set(1)
        try:
            super().execute_job(job, queue)
        finally:
            metrics.WORKER_BUSY.set(0)
            metrics.WORKER_JOBS.labels(outcome(job)).inc()
            discard_leftovers(job)

    def monitor_work_horse(self, job: Job, queue: Any, execution: Any) -> None:
        """Waits for the horse (RQ's way) while a poller copies its progress into gauges. The
        poller's thread starts here, after the fork, so the horse never inherits it."""
        with ProgressPoller(job.id, self.progress_connection):
            super().monitor_work_horse(job, queue, execution)

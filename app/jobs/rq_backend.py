"""Jobs on RQ: the API enqueues by function name (so it never imports torch) with the job's
`JobSpec` as JSON text, its one argument (what GET /jobs shows of the request is read from it);
`vae worker` processes run them, and progress travels in the job's meta.

Each job is a transaction (app/jobs/transaction.py) whose gate, the version it committed and
when a cancel was asked live in a Redis hash beside the job (never in its meta, which the
work-horse rewrites). A cancel claims the gate; a running job stops at its next check, and one
still running `CANCEL_GRACE_SECONDS` later is stopped by RQ (safe: it can no longer commit). A
job that committed has succeeded, whatever happened to its horse after.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus

from app.config import Settings
from app.jobs.base import JobNotFound, JobsUnavailable, now_iso
from app.jobs.models import JobInfo, JobRequest, JobStatus
from app.jobs.owners import ProcessMark
from app.jobs.spec import JobSpec
from app.jobs.transaction import (
    CANCEL,
    CANCEL_GRACE_SECONDS,
    COMMIT,
    RedisGate,
    cancel_outcome,
    published_as,
)
from app.repository.opening import open_repository
from app.storage.locations import to_location

QUEUE_NAME = "vae-training"
JOB_INDEX = "vae:jobs"  # a sorted set of our job ids by creation time
TASK = "app.jobs.rq_task.run"
KEEP_SECONDS = 7 * 24 * 3600
DATASET_LOCK_TIMEOUT_S = 60.0  # a dataset's lock lapses this long after a holder that died
DATASET_LOCK_WAIT_S = 10.0  # a submit or delete waits this long for it, then is a 503
P = ParamSpec("P")
R = TypeVar("R")

_STATUS: dict[str, JobStatus] = {
    RQStatus.CREATED: "queued",
    RQStatus.QUEUED: "queued",
    RQStatus.DEFERRED: "queued",
    RQStatus.SCHEDULED: "queued",
    RQStatus.STARTED: "running",
    RQStatus.FINISHED: "succeeded",
    RQStatus.FAILED: "failed",
    RQStatus.STOPPED: "cancelled",
    RQStatus.CANCELED: "cancelled",
}


def connect(url: str, socket_timeout: float | None = 10.0) -> Redis:
    """A Redis client for RQ (sync, as RQ is). A worker passes socket_timeout=None: its
    blocking dequeue waits longer than any read timeout would allow."""
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=socket_timeout, health_check_interval=30
    )


def _needs_redis(method: Callable[P, R]) -> Callable[P, R]:
    """Redis unreachable (killed, restarting, a timeout) becomes JobsUnavailable (a 503)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise JobsUnavailable(f"the job queue (Redis) is unavailable: {error}") from None

    return wrapper


class RQJobBackend:
    """Training jobs queued in Redis and run by any number of `vae worker` processes."""

    name = "rq"

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url
        self.settings = settings
        self.redis = connect(settings.redis_url)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)

    @_needs_redis
    def submit(self, request: JobRequest) -> JobInfo:
        """Queues the job's JobSpec, as JSON text, as the one argument of the task."""
        spec = JobSpec.submitted(request, self.settings, now_iso())
        self.queue.enqueue(
            TASK,
            spec.to_message(),
            job_id=spec.job_id,
            job_timeout=int(self.settings.job_timeout_s),
            result_ttl=KEEP_SECONDS,
            failure_ttl=KEEP_SECONDS,
        )
        self.redis.zadd(JOB_INDEX, {spec.job_id: time.time()})
        return self.get(spec.job_id)

    def _fetch(self, job_id: str) -> Job:
        try:
            return Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            raise JobNotFound(f"no job {job_id!r}") from None

    @_needs_redis
    def get(self, job_id: str) -> JobInfo:
        return self._describe(self._fetch(job_id))

    @_needs_redis
    def list(self) -> list[JobInfo]:
        raw: list[Any] = list(self.redis.zrevrange(JOB_INDEX, 0, 199))  # type: ignore[arg-type]
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw]
        jobs = Job.fetch_many(ids, connection=self.redis)
        return [self._describe(job) for job in jobs if job is not None]

    def _gate(self, job_id: str) -> RedisGate:
        return RedisGate(self.redis, job_id, KEEP_SECONDS)

    @_needs_redis
    def cancel(self, job_id: str) -> JobInfo:
        job = self._fetch(job_id)
        status = job.get_status(refresh=True)
        gate = self._gate(job_id)
        self.redis.hset(gate.key, "cancel_asked", 1)
        if status in {RQStatus.STARTED, *_WAITING}:
            won = gate.claim_cancel()
            if won and status in _WAITING:
                with contextlib.suppress(InvalidJobOperation):  # a worker took it meanwhile
                    job.cancel()
        return self.get(job_id)

    @contextlib.contextmanager
    def holding_dataset(self, dataset: str) -> Iterator[None]:
        """A Redis lock on the dataset name, so every api replica's submits and deletes of it
        are ordered. It lapses DATASET_LOCK_TIMEOUT_S after a holder that died took it."""
        lock = self.redis.lock(
            f"vae:dataset:{dataset}:lock",
            timeout=DATASET_LOCK_TIMEOUT_S,
            blocking_timeout=DATASET_LOCK_WAIT_S,
        )
        try:
            acquired = lock.acquire()
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise JobsUnavailable(f"the job queue (Redis) is unavailable: {error}") from None
        if not acquired:
            raise JobsUnavailable(
                f"dataset {dataset!r} is busy (a submit or delete of it is under way); try again"
            )
        try:
            yield
        finally:
            with contextlib.suppress(RedisError):  # lapsed, or Redis away: it expires anyway
                lock.release()

    def close(self) -> None:
        self.redis.close()

    def _describe(self, job: Job) -> JobInfo:
        rq_status = job.get_status(refresh=True)
        status = _STATUS.get(rq_status, "queued")
        meta = job.meta
        error = meta.get("error")
        txn = self._gate(job.id).read()
        committed = int(txn["committed_version"]) if "committed_version" in txn else None
        result: Any = job.return_value() if status == "succeeded" else None
        if status == "running" and heartbeat_stale(job, self.settings.job_stale_after_s):
            committed = self._committed(job, txn)
            error = self._mark_dead(job, committed)
            status = "failed"
        elif status == "running" and txn.get("gate") == CANCEL:
            self._stop_if_overdue(job.id, txn)
        elif status == "failed":
            committed = self._committed(job, txn)
            error = error or _last_line(job)
            if txn.get("gate") == CANCEL:
                status, error = "cancelled", "cancelled on request"
        elif status == "cancelled":
            error = "cancelled on request"
        shown = _shown(job, self.settings)
        if committed is not None and status in {"failed", "cancelled"}:
            # past its commit point the job has published: it succeeded, whatever came after
            status, error = "succeeded", None
            result = {
                "model": shown["name"],
                "version": committed,
                "metrics": None,
                "default_error": "the worker ended after publishing: DEFAULT may not have "
                "been moved",
            }
        cancel = None
        if "cancel_asked" in txn:
            version = committed or (result or {}).get("version")
            cancel = cancel_outcome(status, txn.get("gate", "open"), version)  # type: ignore[arg-type]
        return JobInfo(
            **shown,
            status=status,
            progress=meta.get("progress", {}),
            result=result if isinstance(result, dict) else None,
            error=error,
            cancel=cancel,
            started_at=job.started_at.isoformat(timespec="seconds") if job.started_at else None,
            ended_at=job.ended_at.isoformat(timespec="seconds")
            if job.ended_at
            else meta.get("ended_at"),
        )

    def _committed(self, job: Job, txn: dict[str, str]) -> int | None:
        """The version a job whose process has ended published: the one it reported, else the
        one its commit claim named when the repository holds it (the process died between the
        commit and its report; found once, it is recorded as reported)."""
        if "committed_version" in txn:
            return int(txn["committed_version"])
        if txn.get("gate") != COMMIT or "committing_version" not in txn:
            return None
        try:
            spec = spec_of(job, self.settings)
        except ValueError:
            return None
        repository = open_repository(spec.models_dir, spec.s3_endpoint_url)
        version = published_as(repository, spec.name, int(txn["committing_version"]))
        if version is not None:
            with contextlib.suppress(RedisError):  # found again next time
                self.redis.hset(self._gate(job.id).key, "committed_version", version)
        return version

    def _stop_if_overdue(self, job_id: str, txn: dict[str, str]) -> None:
        """A cancelled job still running past the grace period is stopped by RQ, once."""
        asked = float(txn.get("cancel_requested_at", "0") or 0)
        if time.time() - asked < CANCEL_GRACE_SECONDS:
            return
        if self.redis.hsetnx(self._gate(job_id).key, "stop_sent", 1):
            with contextlib.suppress(InvalidJobOperation):  # it finished meanwhile
                send_stop_job_command(self.redis, job_id)

    def _mark_dead(self, job: Job, committed: int | None = None) -> str:
        """A running job whose worker stopped beating: failed, with the reason."""
        reason = (
            f"the worker stopped sending heartbeats for over {self.settings.job_stale_after_s:.0f}s "
            "(it was killed or lost); "
            + (
                "nothing was published"
                if committed is None
                else f"it published version {committed}"
            )
        )
        job.meta["error"] = reason
        job.meta["ended_at"] = now_iso()
        job.save_meta()
        job.set_status(RQStatus.FAILED)
        with contextlib.suppress(Exception):  # registry bookkeeping only; the status is what counts
            job.started_job_registry.remove(job)
            job.failed_job_registry.add(job, ttl=KEEP_SECONDS)
        return reason


_WAITING = {RQStatus.QUEUED, RQStatus.DEFERRED, RQStatus.SCHEDULED, RQStatus.CREATED}


def spec_of(job: Job, settings: Settings) -> JobSpec:
    """The JobSpec a job carries (a job queued before the typed spec carries a dict: its
    creation time is in its meta)."""
    spec = JobSpec.from_message(job.args[0] if job.args else None, job.id, settings)
    if not spec.created_at:
        return spec.model_copy(update={"created_at": str(job.meta.get("created_at", ""))})
    return spec


def _shown(job: Job, settings: Settings) -> dict[str, Any]:
    """What GET /jobs shows of a job's request: its spec's; for a job whose argument this
    version cannot read (queued by another version), what the argument plainly says, so that one
    such job never fails the listing of all."""
    try:
        spec = spec_of(job, settings)
    except ValueError:
        raw = job.args[0] if job.args and isinstance(job.args[0], dict) else {}
        config = raw.get("config")
        return {
            "id": job.id,
            "dataset": str(raw.get("dataset", "")),
            "name": str(raw.get("name", "")),
            "config": config if isinstance(config, dict) else {},
            "make_default": raw.get("make_default") is not False,
            "created_at": str(job.meta.get("created_at", "")),
        }
    return spec.shown()


def heartbeat_stale(job: Job, stale_after_s: float) -> bool:
    """True when a started job's task has not beaten for `stale_after_s` (its start counts as
    its first beat)."""
    beat = job.meta.get("heartbeat")
    if beat is None and job.started_at is not None:
        beat = job.started_at.timestamp()
    return beat is not None and time.time() - float(beat) > stale_after_s


def job_alive(connection: Redis, job_id: str, stale_after_s: float) -> bool:
    """True while a process may still be running the job: RQ calls it started, and its process
    runs (when it ran on this host, asked at once) or has beaten within `stale_after_s` (when it
    ran elsewhere, or before it marked itself)."""
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    if job.get_status() != RQStatus.STARTED:
        return False
    owner = ProcessMark.from_fields(RedisGate(connection, job_id, KEEP_SECONDS).read())
    if owner is not None and owner.on_this_host():
        return owner.running()
    return not heartbeat_stale(job, stale_after_s)


def sweep_repository(
    connection: Redis,
    models_dir: str,
    endpoint: str | None = None,
    stale_after_s: float = 60.0,
) -> list[str]:
    """What dead jobs left in the repository: staging directories of jobs no process is running
    (`job_alive`), removed at once when that process ran on this host (a worker calls this when
    it starts). Returns what it removed."""
    repository = open_repository(to_location(models_dir), endpoint)
    return [
        str(p)
        for p in repository.sweep(lambda job_id: job_alive(connection, job_id, stale_after_s))
    ]


def _last_line(job: Job) -> str:
    result = job.latest_result()
    text: Any = getattr(result, "exc_string", None) or "the job failed"
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "the job failed"

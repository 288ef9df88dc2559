"""The embedded job backend: training runs in child processes of the API, one at a time by
default, with progress and results sent back over a multiprocessing queue.

Each job is a transaction (app/jobs/transaction.py): a cancel claims the job's gate, and a child
that does not stop by itself within `CANCEL_GRACE_SECONDS` is killed, which is safe because it
can no longer commit. A job whose process ends after it committed has succeeded, whether or not it
lived to report the version (its commit claim names it; the repository is asked). Whatever a job
leaves in the repository (its staging directory) is removed when it ends, and what dead jobs
left is removed when the backend starts (one API process owns the local jobs of a repository).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import queue
import threading
import time
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from app.config import Settings
from app.jobs.base import JobNotFound, now_iso
from app.jobs.models import FINAL_STATES, JobInfo, JobRequest
from app.jobs.spec import JobSpec
from app.jobs.transaction import CANCEL_GRACE_SECONDS, LocalGate, cancel_outcome, published_as
from app.repository.opening import open_repository

logger = logging.getLogger(__name__)
LOCAL_TASK = "app.jobs.local_task.run"


def _child(message: str, events: Any, gate: Any) -> None:
    """Runs in the child process: the task is imported there by name, as RQ does, so the API
    process never loads the training code (or torch). `message` is the job's JobSpec as JSON."""
    module, _, function = LOCAL_TASK.rpartition(".")
    getattr(importlib.import_module(module), function)(message, events, gate)


@dataclass
class _LocalJob:
    info: JobInfo
    spec: JobSpec
    process: BaseProcess | None = None
    gate: LocalGate | None = None
    cancel_requested_at: float | None = None  # when a cancel claimed the gate
    cancel_asked: bool = False
    committed_version: int | None = None

    def described(self) -> JobInfo:
        """A copy of its info, with what a cancel did once one was asked for."""
        info = self.info.model_copy(deep=True)
        if self.cancel_asked:
            gate = self.gate.state if self.gate is not None else "cancel"
            version = self.committed_version or (info.result or {}).get("version")
            info.cancel = cancel_outcome(info.status, gate, version)
        return info


class LocalJobBackend:
    """A FIFO of jobs run by at most `settings.local_job_workers` child processes."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._events: Any = None  # made with the first job: a server that trains nothing needs none
        self._watcher: threading.Thread | None = None
        self._jobs: dict[str, _LocalJob] = {}
        self._waiting: deque[str] = deque()
        self._lock = threading.Lock()
        self._dataset_lock = threading.Lock()  # see holding_dataset
        self._closed = threading.Event()
        self.repository = open_repository(settings.models_dir, settings.s3_endpoint_url)
        try:  # what jobs of an earlier process left: none of them is alive
            for leftover in self.repository.sweep(lambda _owner: False):
                logger.info("removed %s, left by a job that died", leftover)
        except OSError as error:
            logger.warning("could not sweep the model repository: %s", error)

    def _ensure_started(self) -> None:
        if self._watcher is None:
            self._events = self._context.Queue()
            self._watcher = threading.Thread(target=self._watch, name="local-jobs", daemon=True)
            self._watcher.start()

    def submit(self, request: JobRequest) -> JobInfo:
        spec = JobSpec.submitted(request, self.settings, now_iso())
        info = spec.info(status="queued")
        with self._lock:
            self._ensure_started()
            self._jobs[spec.job_id] = _LocalJob(info, spec)
            self._waiting.append(spec.job_id)
            self._start_waiting()
        return info.model_copy()

    def get(self, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            return job.described()

    def list(self) -> list[JobInfo]:
        with self._lock:
            jobs = [job.described() for job in self._jobs.values()]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def cancel(self, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            job.cancel_asked = True
            if job.info.status == "queued":
                self._waiting.remove(job_id)
                self._finish(job, "cancelled", error="cancelled on request")
            elif (
                job.info.status == "running"
                and job.gate is not None
                and job.gate.claim_cancel()
                and job.cancel_requested_at is None
            ):
                job.cancel_requested_at = time.monotonic()
            return job.described()

    def holding_dataset(self, dataset: str) -> AbstractContextManager[object]:
        """One process lock for every dataset name (this process owns its local jobs; a submit
        and a delete hold it for milliseconds)."""
        return self._dataset_lock

    def close(self) -> None:
        """Stops the children and releases every inter-process object now, not at exit: their
        named semaphores (the queue's three, each job's cancel event's five) are unlinked when
        the objects go, and a process that ends by a signal (uvicorn re-raises SIGTERM once it
        has shut down) runs no exit handlers, leaving "leaked semaphore objects" behind."""
        self._closed.set()
        with self._lock:
            processes = [job.process for job in self._jobs.values() if job.process is not None]
            for process in processes:
                if process.is_alive():
                    process.terminate()
        for process in processes:
            process.join(timeout=5)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        with self._lock:
            for job in self._jobs.values():
                job.process = None  # the gates' shared values go with their jobs' references
                job.gate = None
            events, self._events = self._events, None
        if events is not None:
            events.close()
            events.join_thread()
        for process in processes:
            with contextlib.suppress(ValueError):  # still running after the grace: left to exit
                process.close()

    # ---- inside the lock ------------------------------------------------------------------
    def _running(self) -> int:
        return sum(1 for job in self._jobs.values() if job.info.status == "running")

    def _start_waiting(self) -> None:
        while self._waiting and self._running() < self.settings.local_job_workers:
            job = self._jobs[self._waiting.popleft()]
            gate = self._context.Value("q", 0)
            job.gate = LocalGate(gate)
            process = self._context.Process(
                target=_child,
                args=(job.spec.to_message(), self._events, gate),
                name=f"train-{job.info.name}",
                daemon=True,
            )
            process.start()
            job.process = process
            job.info.status = "running"
            job.info.started_at = now_iso()

    def _finish(self, job: _LocalJob, status: str, error: str | None, result: Any = None) -> None:
        if job.info.status in FINAL_STATES:
            return
        job.info.status = status  # type: ignore[assignment]
        job.info.error = error
        job.info.result = result
        job.info.ended_at = now_iso()

    def _apply(self, job_id: str, kind: str, payload: Any) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        if kind == "progress":
            job.info.progress = {**job.info.progress, **payload}
        elif kind == "committed":
            job.committed_version = int(payload)
        elif kind == "succeeded":
            self._finish(job, "succeeded", None, payload)
        elif kind == "cancelled":
            self._finish(job, "cancelled", "cancelled on request")
        elif kind == "failed":
            self._finish(job, "failed", str(payload))

    # ---- the watcher thread ---------------------------------------------------------------
    def _drain(self, timeout: float) -> None:
        if self._events is None:  # closed
            return
        try:
            event = self._events.get(timeout=timeout)
        except (queue.Empty, OSError, EOFError):
            return
        with self._lock:
            self._apply(*event)
            while True:
                try:
                    self._apply(*self._events.get_nowait())
                except (queue.Empty, OSError, EOFError):
                    break

    def _watch(self) -> None:
        while not self._closed.is_set():
            self._drain(timeout=0.25)
            with self._lock:
                for job in self._jobs.values():
                    self._check(job)
                self._start_waiting()

    def _check(self, job: _LocalJob) -> None:
        process = job.process
        if job.info.status != "running" or process is None:
            return
        if process.is_alive():
            requested = job.cancel_requested_at
            if requested is not None and time.monotonic() - requested > CANCEL_GRACE_SECONDS:
                process.terminate()
            return
        # The process has ended: take whatever it sent last before judging it.
        with contextlib.suppress(queue.Empty, OSError, EOFError):
            while True:
                self._apply(*self._events.get(timeout=0.1))
        removed = self.repository.discard_owned(job.info.id)  # whatever it left unpublished
        if removed:
            logger.info("job %s: removed the %d staging directories it left", job.info.id, removed)
        if job.info.status != "running":
            return
        if job.committed_version is None and job.gate is not None:  # died before it said so?
            version = job.gate.committing_version
            job.committed_version = published_as(self.repository, job.info.name, version)
        if job.committed_version is not None:  # past its commit point: published
            self._finish(job, "succeeded", None, self._committed_result(job, process.exitcode))
        elif job.cancel_requested_at is not None:
            self._finish(job, "cancelled", "cancelled on request")
        else:
            reason = (
                f"the training process died (exit code {process.exitcode}); nothing was published"
            )
            logger.error("job %s: %s", job.info.id, reason)
            self._finish(job, "failed", reason)

    @staticmethod
    def _committed_result(job: _LocalJob, exitcode: int | None) -> dict[str, Any]:
        return {
            "model": job.info.name,
            "version": job.committed_version,
            "metrics": None,
            "default_error": f"the training process ended (exit code {exitcode}) after "
            "publishing: DEFAULT may not have been moved",
        }

"""The embedded job backend: training runs in child processes of the API, one at a time by
default, with progress and results sent back over a multiprocessing queue."""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from app.config import Settings
from app.jobs.base import JobNotFound, now_iso, task_spec
from app.jobs.models import FINAL_STATES, JobInfo, JobRequest

logger = logging.getLogger(__name__)
CANCEL_GRACE_SECONDS = 5.0
LOCAL_TASK = "app.jobs.local_task.run"


def _child(job_id: str, spec: dict[str, Any], events: Any, cancel: Any) -> None:
    """Runs in the child process: the task is imported there by name, as RQ does, so the API
    process never loads the training code (or torch)."""
    module, _, function = LOCAL_TASK.rpartition(".")
    getattr(importlib.import_module(module), function)(job_id, spec, events, cancel)


@dataclass
class _LocalJob:
    info: JobInfo
    spec: dict[str, Any]
    process: BaseProcess | None = None
    cancel_requested_at: float | None = None


class LocalJobBackend:
    """A FIFO of jobs run by at most `settings.local_job_workers` child processes."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._events: Any = None  # made with the first job: a server that trains nothing needs none
        self._watcher: threading.Thread | None = None
        self._cancel_events: dict[str, Any] = {}
        self._jobs: dict[str, _LocalJob] = {}
        self._waiting: deque[str] = deque()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def _ensure_started(self) -> None:
        if self._watcher is None:
            self._events = self._context.Queue()
            self._watcher = threading.Thread(target=self._watch, name="local-jobs", daemon=True)
            self._watcher.start()

    def submit(self, request: JobRequest) -> JobInfo:
        job_id = uuid.uuid4().hex
        info = JobInfo(
            id=job_id,
            status="queued",
            dataset=request.dataset,
            name=request.name,
            config=request.config.model_dump(mode="json"),
            created_at=now_iso(),
        )
        with self._lock:
            self._ensure_started()
            self._jobs[job_id] = _LocalJob(info, task_spec(request, self.settings))
            self._waiting.append(job_id)
            self._start_waiting()
        return info.model_copy()

    def get(self, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            return job.info.model_copy(deep=True)

    def list(self) -> list[JobInfo]:
        with self._lock:
            jobs = [job.info.model_copy(deep=True) for job in self._jobs.values()]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def cancel(self, job_id: str) -> JobInfo:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.info.status == "queued":
                self._waiting.remove(job_id)
                self._finish(job, "cancelled", error=None)
            elif job.info.status == "running" and job.cancel_requested_at is None:
                self._cancel_events[job_id].set()
                job.cancel_requested_at = time.monotonic()
            return job.info.model_copy(deep=True)

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
                job.process = None
            self._cancel_events.clear()
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
            cancel = self._context.Event()
            self._cancel_events[job.info.id] = cancel
            process = self._context.Process(
                target=_child,
                args=(job.info.id, job.spec, self._events, cancel),
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
        self._cancel_events.pop(job.info.id, None)

    def _apply(self, job_id: str, kind: str, payload: Any) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        if kind == "progress":
            job.info.progress = {**job.info.progress, **payload}
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
        if job.info.status != "running":
            return
        if job.cancel_requested_at is not None:
            self._finish(job, "cancelled", "cancelled on request")
        else:
            reason = f"the training process died (exit code {process.exitcode})"
            logger.error("job %s: %s", job.info.id, reason)
            self._finish(job, "failed", reason)

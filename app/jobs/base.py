"""The JobBackend interface every backend implements, and its errors."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol

from app.jobs.models import JobInfo, JobRequest


class JobNotFound(LookupError):
    """No job with that id (404)."""


class JobsUnavailable(RuntimeError):
    """The job queue cannot be reached right now (Redis away): try again shortly (503)."""


class JobBackend(Protocol):
    """Queues training jobs, runs them somewhere, and reports on them. Methods block briefly
    (Redis round trips); the API calls them from a thread."""

    name: str

    def submit(self, request: JobRequest) -> JobInfo:
        """Queues a job and returns it (status queued)."""
        ...

    def get(self, job_id: str) -> JobInfo:
        """One job; raises JobNotFound."""
        ...

    def list(self) -> list[JobInfo]:
        """Every job this backend knows, newest first."""
        ...

    def cancel(self, job_id: str) -> JobInfo:
        """Cancels a queued job at once and stops a running one within seconds."""
        ...

    def close(self) -> None:
        """Stops what the backend runs in this process."""
        ...

    def holding_dataset(self, dataset: str) -> AbstractContextManager[object]:
        """Holds the claim on the dataset name for the block: a submit naming it and a delete
        of it each hold it while they check and act, so the two are ordered and never both
        accepted. JobsUnavailable when it cannot be had in time."""
        ...


def now_iso() -> str:
    """The current UTC time as ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")

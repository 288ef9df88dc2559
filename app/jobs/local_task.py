"""The function a local job's child process runs (started by name: `app.jobs.local_task.run`),
the counterpart of `app.jobs.rq_task` for the embedded backend."""

from __future__ import annotations

from typing import Any

from app.jobs.spec import JobSpec
from app.jobs.tasks import execute_training
from app.jobs.transaction import LocalGate
from app.training.hooks import TrainingCancelled


def run(message: str, events: Any, gate: Any) -> None:
    """Trains the job `message` (a `JobSpec` as JSON text), and reports every state change back
    to the API process through `events` (`committed` with the version the moment it is
    published); `gate` is the job's shared transaction gate (app/jobs/transaction.LocalGate's
    value)."""
    spec = JobSpec.model_validate_json(message)
    job_id = spec.job_id

    def report(progress: dict[str, Any]) -> None:
        events.put((job_id, "progress", progress))

    try:
        events.put((job_id, "running", None))
        result = execute_training(
            spec,
            report,
            LocalGate(gate),
            on_commit=lambda version: events.put((job_id, "committed", version)),
        )
    except TrainingCancelled:
        events.put((job_id, "cancelled", None))
    except BaseException as error:
        events.put((job_id, "failed", f"{type(error).__name__}: {error}"))
    else:
        events.put((job_id, "succeeded", result))

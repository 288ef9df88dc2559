"""The function RQ work-horses run (enqueued by name: `app.jobs.rq_task.run`)."""

from __future__ import annotations

import time
from typing import Any

from rq import get_current_job

from app.config import get_settings
from app.jobs.owners import ProcessMark
from app.jobs.spec import JobSpec
from app.jobs.tasks import Heartbeat, execute_training
from app.jobs.transaction import RedisGate

KEEP_SECONDS = 7 * 24 * 3600


def run(message: str | dict[str, Any]) -> dict[str, Any]:
    """Trains and publishes the job's `JobSpec` (JSON text; the dict of a job queued before the
    typed spec is read too); progress and heartbeats go to the job's meta in Redis, the
    transaction (cancel or commit, the version published) to its hash (app/jobs/transaction)."""
    job = get_current_job()
    assert job is not None, "run() is an RQ task"
    spec = JobSpec.from_message(message, job.id, get_settings())

    def save(**fields: Any) -> None:
        job.meta.update(fields, heartbeat=time.time())
        job.save_meta()

    def report(progress: dict[str, Any]) -> None:
        save(progress={**job.meta.get("progress", {}), **progress})

    gate = RedisGate(job.connection, job.id, KEEP_SECONDS)
    gate.record_owner(ProcessMark.current().fields())  # before anything can be left behind
    save()
    with Heartbeat(save):
        return execute_training(spec, report, gate, on_commit=gate.record_version)

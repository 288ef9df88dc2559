"""The function RQ work-horses run (enqueued by name: `app.jobs.rq_task.run`)."""

from __future__ import annotations

import time
from typing import Any

from rq import get_current_job

from app.jobs.tasks import Heartbeat, execute_training
from app.jobs.transaction import RedisGate

KEEP_SECONDS = 7 * 24 * 3600


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Trains and publishes; progress and heartbeats go to the job's meta in Redis, the
    transaction (cancel or commit, the version published) to its hash (app/jobs/transaction)."""
    job = get_current_job()
    assert job is not None, "run() is an RQ task"

    def save(**fields: Any) -> None:
        job.meta.update(fields, heartbeat=time.time())
        job.save_meta()

    def report(progress: dict[str, Any]) -> None:
        save(progress={**job.meta.get("progress", {}), **progress})

    save()
    gate = RedisGate(job.connection, job.id, KEEP_SECONDS)
    with Heartbeat(save):
        return execute_training(spec, report, gate, job.id, on_commit=gate.record_version)

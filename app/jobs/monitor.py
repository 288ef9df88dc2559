"""Keeps the job gauges current: jobs by state and the progress of running trainings."""

from __future__ import annotations

import asyncio
import logging
from typing import get_args

from app import metrics
from app.jobs.base import JobBackend
from app.jobs.models import JobInfo, JobStatus

logger = logging.getLogger(__name__)
STATES: tuple[str, ...] = get_args(JobStatus)


def record(jobs: list[JobInfo]) -> None:
    """Sets vae_jobs{state} and vae_training_progress_ratio{model} from a job listing."""
    for state in STATES:
        metrics.JOBS.labels(state).set(sum(1 for job in jobs if job.status == state))
    metrics.TRAINING_PROGRESS.clear()
    for job in jobs:
        if job.status == "running" and job.progress.get("steps"):
            ratio = float(job.progress.get("step", 0)) / float(job.progress["steps"])
            metrics.TRAINING_PROGRESS.labels(job.name).set(ratio)


async def watch_jobs(backend: JobBackend, interval: float = 5.0) -> None:
    """Refreshes the gauges every `interval` seconds until cancelled."""
    while True:
        try:
            record(await asyncio.to_thread(backend.list))
        except Exception:  # Redis away: the gauges keep their last values
            logger.warning("could not list jobs for metrics", exc_info=True)
        await asyncio.sleep(interval)

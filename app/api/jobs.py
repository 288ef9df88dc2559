"""POST /jobs, GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel: training in a worker.

The backend's calls block briefly (Redis round trips), so they run in a thread. Their errors
(JobNotFound, JobsUnavailable, DatasetNotFound) are answered by app/api/errors.py.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from app.api.admin import AdminDep
from app.api.deps import JobsDep, StateDep
from app.api.errors import error_responses
from app.api.responses import json_response
from app.datasets.store import DatasetNotFound
from app.jobs.models import JobInfo, JobRequest

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _dump(job: JobInfo) -> dict[str, object]:
    return job.model_dump(mode="json")


@router.post(
    "",
    status_code=202,
    response_model=JobInfo,
    responses=error_responses(400, 401, 403, 404, 413, 415, 422, 429, 503, _404="unknown dataset"),
)
async def submit_job(request: JobRequest, state: StateDep, jobs: JobsDep, _: AdminDep) -> Response:
    """Queues training of `name` on `dataset` (admin). Every config field has a default."""
    # JobRequest's patterns have already refused names that can never be stored (422).
    datasets = state.datasets

    def stored() -> None:
        if not datasets.exists(request.dataset):
            raise DatasetNotFound(
                f"no dataset named {request.dataset!r}; PUT /datasets/{{name}} first"
            )

    def submit_while_stored() -> JobInfo:
        # Checked again under the dataset's claim, which a delete holds too: never both accepted.
        with jobs.holding_dataset(request.dataset):
            stored()
            return jobs.submit(request)

    await asyncio.to_thread(stored)  # an unknown dataset is a 404 even while the queue is away
    job = await asyncio.to_thread(submit_while_stored)
    return json_response(_dump(job), 202, {"Location": f"/jobs/{job.id}"})


@router.get("", response_model=list[JobInfo], responses=error_responses(503))
async def list_jobs(jobs: JobsDep) -> Response:
    """Every job, newest first."""
    return json_response([_dump(job) for job in await asyncio.to_thread(jobs.list)])


@router.get("/{job_id}", response_model=JobInfo, responses=error_responses(404, 422, 503))
async def get_job(job_id: str, jobs: JobsDep) -> Response:
    """Status (queued, running, succeeded, failed, cancelled), progress, result and error."""
    return json_response(_dump(await asyncio.to_thread(jobs.get, job_id)))


@router.post(
    "/{job_id}/cancel",
    response_model=JobInfo,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def cancel_job(job_id: str, jobs: JobsDep, _: AdminDep) -> Response:
    """Cancels a queued job, or stops a running one within seconds (admin)."""
    return json_response(_dump(await asyncio.to_thread(jobs.cancel, job_id)))

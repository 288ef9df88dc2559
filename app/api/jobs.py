"""POST /jobs, GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel: training in a worker."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from app.api.admin import AdminDep
from app.api.deps import StateDep
from app.api.errors import ApiError, error_responses
from app.api.responses import json_response
from app.datasets.store import DatasetStore
from app.jobs.base import JobBackend, JobNotFound, JobsUnavailable
from app.jobs.models import JobInfo, JobRequest
from app.repository.store import RepositoryError, check_name

router = APIRouter(prefix="/jobs", tags=["jobs"])


def _backend(state: StateDep) -> JobBackend:
    if state.jobs is None:
        raise ApiError(503, "training jobs are not available on this server", "unavailable")
    return state.jobs


def _dump(job: JobInfo) -> dict[str, object]:
    return job.model_dump(mode="json")


async def _call(state: StateDep, method: str, *args: object) -> object:
    try:
        return await asyncio.to_thread(getattr(_backend(state), method), *args)
    except JobNotFound as error:
        raise ApiError(404, str(error), "job_not_found") from None
    except JobsUnavailable as error:
        raise ApiError(503, str(error), "unavailable", headers={"Retry-After": "5"}) from None


@router.post(
    "",
    status_code=202,
    response_model=JobInfo,
    responses=error_responses(400, 401, 403, 404, 413, 422, 429, 503, _404="unknown dataset"),
)
async def submit_job(request: JobRequest, state: StateDep, _: AdminDep) -> Response:
    """Queues training of `name` on `dataset` (admin). Every config field has a default."""
    try:
        check_name(request.name)
    except RepositoryError as error:
        raise ApiError(422, str(error), "invalid_request") from None
    store = DatasetStore.in_data_dir(state.settings.data_dir)
    try:
        exists = await asyncio.to_thread(store.exists, request.dataset)
    except RepositoryError as error:
        raise ApiError(422, str(error), "invalid_request") from None
    if not exists:
        raise ApiError(
            404,
            f"no dataset named {request.dataset!r}; PUT /datasets/{{name}} first",
            "dataset_not_found",
        )
    job = await _call(state, "submit", request)
    assert isinstance(job, JobInfo)
    return json_response(_dump(job), 202, {"Location": f"/jobs/{job.id}"})


@router.get("", response_model=list[JobInfo], responses=error_responses(503))
async def list_jobs(state: StateDep) -> Response:
    """Every job, newest first."""
    jobs = await _call(state, "list")
    assert isinstance(jobs, list)
    return json_response([_dump(job) for job in jobs])


@router.get("/{job_id}", response_model=JobInfo, responses=error_responses(404, 422, 503))
async def get_job(job_id: str, state: StateDep) -> Response:
    """Status (queued, running, succeeded, failed, cancelled), progress, result and error."""
    job = await _call(state, "get", job_id)
    assert isinstance(job, JobInfo)
    return json_response(_dump(job))


@router.post(
    "/{job_id}/cancel",
    response_model=JobInfo,
    responses=error_responses(401, 403, 404, 422, 503),
)
async def cancel_job(job_id: str, state: StateDep, _: AdminDep) -> Response:
    """Cancels a queued job, or stops a running one within seconds (admin)."""
    job = await _call(state, "cancel", job_id)
    assert isinstance(job, JobInfo)
    return json_response(_dump(job))

"""Annotated dependencies (the app state, the job backend) and request-body helpers."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import numpy as np
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.errors import ApiError
from app.api.responses import NPY_MEDIA_TYPE
from app.config import Settings
from app.datasets.opening import Datasets
from app.jobs.base import JobBackend
from app.serving.cache.memory import LatentCache
from app.serving.inference import InferenceService
from app.serving.registry import ModelRegistry
from app.serving.spatial import SpatialInference

Body = TypeVar("Body", bound=BaseModel)


@dataclass
class AppState:
    """Everything a request handler needs, built once in the lifespan."""

    settings: Settings
    registry: ModelRegistry
    cache: LatentCache
    inference: InferenceService
    jobs: JobBackend
    datasets: Datasets
    spatial: SpatialInference = field(init=False)

    def __post_init__(self) -> None:
        self.spatial = SpatialInference(self.cache, self.settings)


async def get_state(request: Request) -> AppState:
    """The state the lifespan put on the app (async: a sync dependency costs a thread hop on
    every request)."""
    state: AppState = request.app.state.vae
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def deadline_for(settings: Settings) -> float:
    """When a request started now must be answered by (time.monotonic())."""
    return time.monotonic() + settings.request_timeout_s


def parse_body(schema: type[Body], body: bytes) -> Body:
    """A JSON request body read by the route itself, validated against `schema`; invalid, it is
    a RequestValidationError (422) like a body FastAPI parsed. (The body's size is limited
    before any route reads it: app/api/limits.py.)"""
    try:
        return schema.model_validate_json(body or b"{}")
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


async def get_jobs(state: StateDep) -> JobBackend:
    """The training-job backend the lifespan made."""
    return state.jobs


JobsDep = Annotated[JobBackend, Depends(get_jobs)]


NPY_MAGIC = b"\x93NUMPY"


def _npy_problem(error: Exception) -> str:
    """What is wrong with a .npy body numpy could not load, without numpy's advice on loading
    pickles (which this API never does)."""
    if "pickle" in str(error):
        return "the .npy holds Python objects, which are never loaded: send an array of numbers"
    return f"the body is a damaged .npy file: {error}"


def is_npy(request: Request) -> bool:
    """True when the body is a .npy file."""
    return request.headers.get("content-type", "").split(";")[0].strip() == NPY_MEDIA_TYPE


def wants_npy(request: Request) -> bool:
    """True when the client asks for .npy back."""
    return NPY_MEDIA_TYPE in request.headers.get("accept", "")


def load_npy(body: bytes, max_bytes: int) -> np.ndarray:
    """Parses a .npy body (no pickles); 400 when it is not one. The magic is checked first:
    without it numpy would take the body for a pickle and answer with advice on loading one."""
    if not body.startswith(NPY_MAGIC):
        raise ApiError(
            400,
            "the body is not a .npy file (it does not start with the .npy magic \\x93NUMPY): "
            "send an array saved with numpy.save",
            "invalid_npy",
        )
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ApiError(400, _npy_problem(error), "invalid_npy") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ApiError(422, "the .npy array must hold numbers", "invalid_npy")
    return array

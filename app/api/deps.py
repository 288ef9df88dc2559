"""Annotated dependencies (the app state, the job backend) and the JSON body a route reads
itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.config import Settings
from app.datasets.opening import Datasets
from app.jobs.base import JobBackend
from app.serving.cache.memory import LatentCache
from app.serving.inference import InferenceService
from app.serving.registry import ModelRegistry

Body = TypeVar("Body", bound=BaseModel)


@dataclass
class AppState:
    """Everything a request handler needs, built once in the lifespan: the registry answers
    for the models (each loaded version's adapter shares `inference`, the latent cache)."""

    settings: Settings
    registry: ModelRegistry
    cache: LatentCache
    inference: InferenceService
    jobs: JobBackend
    datasets: Datasets


async def get_state(request: Request) -> AppState:
    """The state the lifespan put on the app (async: a sync dependency costs a thread hop on
    every request)."""
    state: AppState = request.app.state.vae
    return state


StateDep = Annotated[AppState, Depends(get_state)]


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

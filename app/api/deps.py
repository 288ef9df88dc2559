"""Annotated dependencies: the app state, settings, the model a request names, body reading."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Request

from app.api.errors import ApiError
from app.api.responses import NPY_MEDIA_TYPE
from app.config import Settings
from app.jobs.base import JobBackend
from app.serving.cache.memory import LatentCache
from app.serving.inference import InferenceService
from app.serving.registry import ModelRegistry


@dataclass
class AppState:
    """Everything a request handler needs, built once in the lifespan."""

    settings: Settings
    registry: ModelRegistry
    cache: LatentCache
    inference: InferenceService
    jobs: JobBackend | None = None


async def get_state(request: Request) -> AppState:
    """The state the lifespan put on the app (async: a sync dependency costs a thread hop on
    every request)."""
    state: AppState = request.app.state.vae
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def deadline_for(settings: Settings) -> float:
    """When a request started now must be answered by (time.monotonic())."""
    return time.monotonic() + settings.request_timeout_s


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (checked while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit} bytes", "too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit} bytes", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def is_npy(request: Request) -> bool:
    """True when the body is a .npy file."""
    return request.headers.get("content-type", "").split(";")[0].strip() == NPY_MEDIA_TYPE


def wants_npy(request: Request) -> bool:
    """True when the client asks for .npy back."""
    return NPY_MEDIA_TYPE in request.headers.get("accept", "")


def load_npy(body: bytes, max_bytes: int) -> np.ndarray:
    """Parses a .npy body (no pickles); 400 when it is not one."""
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ApiError(
            400, f"the body is not a readable .npy array: {error}", "invalid_npy"
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ApiError(422, "the .npy array must hold numbers", "invalid_npy")
    return array

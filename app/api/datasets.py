"""PUT, GET and DELETE /datasets: upload, list, describe and delete training datasets.

PUT takes the file as the raw body (any Content-Type; the format is told by the content) and
streams it to disk under `max_dataset_bytes`. Names are write-once: PUT to a stored name is a 409;
DELETE it first to replace it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app import metrics
from app.api.admin import AdminDep
from app.api.deps import AppState, StateDep
from app.api.errors import ApiError, error_responses
from app.api.responses import json_response
from app.datasets.arrays import DatasetError
from app.datasets.imagezip import ImageOptions
from app.datasets.safezip import UnpackLimits
from app.datasets.store import (
    DatasetExists,
    DatasetNotFound,
    DatasetStore,
    Upload,
    UploadTooLarge,
)
from app.repository.store import RepositoryError, check_name

logger = logging.getLogger(__name__)

_WRITE_CHUNK = 1 << 20
_MAX_SIDE = 4096


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.vae
    store = DatasetStore.in_data_dir(state.settings.data_dir)
    await asyncio.to_thread(store.sweep)
    metrics.DATASET_BYTES.set_function(lambda: float(store.total_bytes()))
    yield


router = APIRouter(prefix="/datasets", tags=["datasets"], lifespan=_lifespan)

_PUT_ERRORS = error_responses(
    400, 401, 403, 409, 413, 422, 429, _400="the upload ended early", _409="the name is taken",
    _422="not a usable dataset",
)  # fmt: skip
_ERRORS = error_responses(401, 403, 404, 422, _404="unknown dataset")

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "example": "a zip of PNG/JPEG images (class subfolders = labels), an .npz "
                "(images, optional labels), an .npy, an IDX images file (optionally gzipped), "
                "or a zip of an IDX images file and its labels file",
            }
        },
    }
}


def get_store(state: StateDep) -> DatasetStore:
    """The dataset store under the data directory."""
    return DatasetStore.in_data_dir(state.settings.data_dir)


StoreDep = Annotated[DatasetStore, Depends(get_store)]


def _known(name: str) -> str:
    try:
        return check_name(name)
    except RepositoryError:
        raise ApiError(404, f"no dataset named {name!r}", "dataset_not_found") from None


def _options(resize: str | None, channels: int | None) -> ImageOptions:
    size = None
    if resize is not None:
        width, _, height = resize.lower().partition("x")
        size = (int(width), int(height))
        if not all(1 <= side <= _MAX_SIDE for side in size):
            raise ApiError(422, f"resize sides must be 1 to {_MAX_SIDE} pixels", "invalid_request")
    return ImageOptions(resize=size, channels=channels)


async def _receive(request: Request, upload: Upload, limit: int) -> None:
    """Streams the body into the upload in 1 MiB writes, never holding all of it."""
    too_large = ApiError(413, f"the dataset is larger than {limit} bytes", "too_large")
    buffer = bytearray()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            buffer += chunk
            if len(buffer) >= _WRITE_CHUNK:
                await asyncio.to_thread(upload.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(upload.write, bytes(buffer))
    except UploadTooLarge:
        raise too_large from None
    except ClientDisconnect:
        raise ApiError(400, "the client went away before the upload ended", "incomplete") from None
    if received == 0:
        raise ApiError(
            422, "the body is empty: send the dataset file as the body", "invalid_dataset"
        )


@router.put("/{name}", status_code=201, responses=_PUT_ERRORS, openapi_extra=_BODY)
async def put_dataset(
    name: str,
    request: Request,
    state: StateDep,
    store: StoreDep,
    _: AdminDep,
    resize: Annotated[
        str | None,
        Query(
            pattern=r"^\d{1,4}[xX]\d{1,4}$",
            description="WxH: resize every image of a zip of images",
        ),
    ] = None,
    channels: Annotated[
        int | None,
        Query(
            ge=1,
            le=4,
            description="convert every image of a zip of images to 1, 2, 3 or 4 channels",
        ),
    ] = None,
) -> Response:
    """Stores the body as dataset `name` and answers its manifest (admin)."""
    try:
        check_name(name)
    except RepositoryError as error:
        raise ApiError(422, str(error), "invalid_name") from None
    options = _options(resize, channels)
    settings = state.settings
    limit = settings.max_dataset_bytes
    if await asyncio.to_thread(store.exists, name):
        raise ApiError(409, f"a dataset named {name!r} exists; delete it first", "dataset_exists")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the dataset is larger than {limit} bytes", "too_large")
    limits = UnpackLimits(max_total_bytes=settings.max_dataset_unpacked_bytes)
    upload = await asyncio.to_thread(store.begin, name, limit)
    try:
        await _receive(request, upload, limit)
        manifest = await asyncio.to_thread(store.commit, name, upload, options, limits)
    except DatasetError as error:
        raise ApiError(422, str(error), "invalid_dataset") from None
    except DatasetExists as error:
        raise ApiError(409, str(error), "dataset_exists") from None
    finally:
        await asyncio.to_thread(upload.discard)
    logger.info(
        "stored dataset %s: %s, %d images %s, sha256 %s",
        name, manifest.format, manifest.count, manifest.shape, manifest.sha256,
    )  # fmt: skip
    return json_response(manifest.model_dump(mode="json"), 201, {"Location": f"/datasets/{name}"})


@router.get("")
async def list_datasets(store: StoreDep) -> Response:
    """Every stored dataset's manifest."""

    def manifests() -> list[dict[str, Any]]:
        found = []
        for name in store.names():
            try:
                found.append(store.manifest(name).model_dump(mode="json"))
            except (DatasetNotFound, ValueError, OSError):
                continue  # deleted while we looked
        return found

    return json_response({"datasets": await asyncio.to_thread(manifests)})


@router.get("/{name}", responses=error_responses(404, 422))
async def get_dataset(name: str, store: StoreDep) -> Response:
    """One dataset's manifest: count, shape, channels, value range, labels, sha256."""
    try:
        manifest = await asyncio.to_thread(store.manifest, _known(name))
    except DatasetNotFound as error:
        raise ApiError(404, str(error), "dataset_not_found") from None
    return json_response(manifest.model_dump(mode="json"))


@router.delete("/{name}", status_code=204, responses=_ERRORS)
async def delete_dataset(name: str, store: StoreDep, _: AdminDep) -> Response:
    """Deletes a dataset (admin)."""
    try:
        await asyncio.to_thread(store.delete, _known(name))
    except DatasetNotFound as error:
        raise ApiError(404, str(error), "dataset_not_found") from None
    logger.info("deleted dataset %s", name)
    return Response(status_code=204)

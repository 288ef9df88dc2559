"""PUT, GET and DELETE /datasets: upload, list, describe and delete training datasets.

PUT takes the file as the raw body (any Content-Type; the format is told by the content) and
streams it to disk under `max_dataset_bytes` (enforced by app/api/limits.py). Names are
write-once: PUT to a stored name is a 409; DELETE it first to replace it. A dataset a queued or
running job trains on cannot be deleted (409 naming the jobs) until they end. The store's errors are
answered by app/api/errors.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.responses import Response

from app import metrics
from app.api.admin import AdminDep
from app.api.deps import AppState, JobsDep, StateDep
from app.api.errors import error_responses
from app.api.negotiation import media_type
from app.api.responses import json_response
from app.datasets.arrays import DatasetError
from app.datasets.imagezip import ImageOptions
from app.datasets.opening import Datasets
from app.datasets.safezip import UnpackLimits
from app.datasets.store import DatasetExists, DatasetInUse, DatasetNotFound, Upload
from app.serving.adapters.errors import InvalidRequest
from app.storage.files import CorruptStoredFile, check_name
from app.storage.objects import ObjectStoreUnavailable

logger = logging.getLogger(__name__)

_WRITE_CHUNK = 1 << 20
MEASURE_EVERY_S = 30.0  # how often vae_dataset_bytes is measured, besides after each change
_MAX_SIDE = 4096


async def _measure_stored_bytes(store: Datasets) -> None:
    """Sets vae_dataset_bytes from the store, NaN while it cannot be read. Measured off the event
    loop and ahead of the scrape (for an object store it is a paged listing that may wait on a
    hung server), so /metrics never waits for the store."""
    try:
        total = float(await asyncio.to_thread(store.total_bytes))
    except OSError as error:  # ObjectStoreUnavailable included
        logger.debug("vae_dataset_bytes unknown for now: %s", error)
        total = float("nan")
    metrics.DATASET_BYTES.set(total)


async def _keep_measuring(store: Datasets) -> None:
    """Measures now, then every MEASURE_EVERY_S (other hosts write to a shared store too)."""
    while True:
        await _measure_stored_bytes(store)
        await asyncio.sleep(MEASURE_EVERY_S)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.vae
    store = state.datasets
    try:
        await asyncio.to_thread(store.sweep)
    except ObjectStoreUnavailable as error:
        logger.error("left the dataset store's leftovers for later: %s", error)
    metrics.DATASET_BYTES.set(float("nan"))  # unknown until first measured
    measuring = asyncio.get_running_loop().create_task(_keep_measuring(store), name="dataset-bytes")
    try:
        yield
    finally:
        measuring.cancel()
        await asyncio.gather(measuring, return_exceptions=True)


router = APIRouter(prefix="/datasets", tags=["datasets"], lifespan=_lifespan)

_PUT_ERRORS = error_responses(
    400, 401, 403, 409, 413, 422, 429, 503, _400="the upload ended early", _409="the name is taken",
    _422="not a usable dataset",
)  # fmt: skip
_ERRORS = error_responses(401, 403, 404, 422, 503, _404="unknown dataset")
_DELETE_ERRORS = error_responses(
    401, 403, 404, 409, 422, 503, _404="unknown dataset", _409="a queued or running job uses it"
)

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


async def get_store(state: StateDep) -> Datasets:
    """The dataset store (a directory, or an object store)."""
    return state.datasets


StoreDep = Annotated[Datasets, Depends(get_store)]


def _options(resize: str | None, channels: int | None) -> ImageOptions:
    size = None
    if resize is not None:
        width, _, height = resize.lower().partition("x")
        size = (int(width), int(height))
        if not all(1 <= side <= _MAX_SIDE for side in size):
            raise InvalidRequest(f"resize sides must be 1 to {_MAX_SIDE} pixels")
    return ImageOptions(resize=size, channels=channels)


async def _receive(request: Request, upload: Upload) -> None:
    """Streams the body into the upload in 1 MiB writes, never holding all of it (its size is
    limited by app/api/limits.py as it arrives)."""
    buffer = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        buffer += chunk
        if len(buffer) >= _WRITE_CHUNK:
            await asyncio.to_thread(upload.write, bytes(buffer))
            buffer.clear()
    if buffer:
        await asyncio.to_thread(upload.write, bytes(buffer))
    if received == 0:
        raise DatasetError("the body is empty: send the dataset file as the body")


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
    check_name(name)
    if media_type(request) == "multipart/form-data":
        raise DatasetError(
            "the file was sent inside a form (curl -F): send the file itself as the body, e.g. "
            f"curl -T data.npz or --data-binary @data.npz .../datasets/{name}"
        )
    options = _options(resize, channels)
    settings = state.settings
    if await asyncio.to_thread(store.exists, name):
        raise DatasetExists(f"a dataset named {name!r} exists; delete it first")
    limits = UnpackLimits(max_total_bytes=settings.max_dataset_unpacked_bytes)
    upload = await asyncio.to_thread(store.begin, name, settings.max_dataset_bytes)
    try:
        await _receive(request, upload)
        manifest = await asyncio.to_thread(store.commit, name, upload, options, limits)
    finally:
        await asyncio.to_thread(upload.discard)
    await _measure_stored_bytes(store)
    logger.info(
        "stored dataset %s: %s, %d images %s, sha256 %s",
        name, manifest.format, manifest.count, manifest.shape, manifest.sha256,
    )  # fmt: skip
    return json_response(manifest.model_dump(mode="json"), 201, {"Location": f"/datasets/{name}"})


@router.get("", responses=error_responses(503))
async def list_datasets(store: StoreDep) -> Response:
    """Every stored dataset's manifest."""

    def manifests() -> list[dict[str, Any]]:
        found = []
        for name in store.names():
            try:
                found.append(store.manifest(name).model_dump(mode="json"))
            except ObjectStoreUnavailable:
                raise  # a 503, not a listing that quietly lacks what the store could not say
            except (DatasetNotFound, OSError):
                continue  # deleted while we looked
            except CorruptStoredFile as error:
                logger.error("left out of the listing: %s", error)
        return found

    return json_response({"datasets": await asyncio.to_thread(manifests)})


@router.get("/{name}", responses=error_responses(404, 422, 500, 503))
async def get_dataset(name: str, store: StoreDep) -> Response:
    """One dataset's manifest: count, shape, channels, value range, labels, sha256."""
    manifest = await asyncio.to_thread(store.manifest, name)
    return json_response(manifest.model_dump(mode="json"))


@router.delete("/{name}", status_code=204, responses=_DELETE_ERRORS)
async def delete_dataset(name: str, store: StoreDep, jobs: JobsDep, _: AdminDep) -> Response:
    """Deletes a dataset (admin); 409 while a queued or running job trains on it."""

    def delete_unused() -> None:
        # Under the dataset's claim, which a submit holds too: never both accepted.
        with jobs.holding_dataset(name):
            users = [
                job.id
                for job in jobs.list()
                if job.dataset == name and job.status in {"queued", "running"}
            ]
            if users:
                raise DatasetInUse(
                    f"dataset {name!r} is in use by jobs {', '.join(users)}; cancel them or "
                    "wait for them to end"
                )
            store.delete(name)

    await asyncio.to_thread(delete_unused)
    await _measure_stored_bytes(store)
    logger.info("deleted dataset %s", name)
    return Response(status_code=204)

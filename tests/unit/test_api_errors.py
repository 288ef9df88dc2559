"""Every domain error becomes one HTTP status, in one place (app/api/errors.py): first the table
itself, on a bare app whose routes raise each error; then the real service in process, where the
datasets, repository, jobs and serving packages raise them. A fault of the server's own files is
a 5xx that says so, never a 4xx that blames the client."""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from app.api.disconnect import ClientGone
from app.api.errors import (
    DOMAIN_ERRORS,
    DefaultVersionInUse,
    NotFound,
    VersionLoadFailed,
    install_error_handlers,
)
from app.api.negotiation import InvalidNpy, NpyNotNumbers, UnsupportedMediaType
from app.api.tokens import MissingToken, WrongToken
from app.datasets.arrays import DatasetError
from app.datasets.store import DatasetExists, DatasetInUse, DatasetNotFound, UploadTooLarge
from app.jobs.base import JobNotFound, JobsUnavailable
from app.main import create_app
from app.repository.store import ModelNotFound
from app.serving.adapters import errors as refusals
from app.serving.batcher import DeadlineExceeded, LargerThanQueue, QueueFull
from app.serving.imaging import ImageError
from app.serving.registry import ModelUnavailable
from app.serving.tensors import TensorError
from app.serving.video.lanes import LaneClosed
from app.storage.files import CorruptStoredFile, InvalidName
from app.storage.objects import ObjectStoreUnavailable
from tests.support.dataset_builders import digits, npz_bytes, png_b64
from tests.support.in_process import serving, settings_for
from tests.support.paths import SHIPPED_MODELS
from tests.support.processes import free_port

# (the error raised, the status, the `error` code, the Retry-After header or None)
EXPECTED: list[tuple[Exception, int, str, str | None]] = [
    (ClientDisconnect(), 400, "incomplete", None),
    (InvalidNpy("the body is not a .npy file"), 400, "invalid_npy", None),
    (MissingToken("send Authorization: Bearer <token>"), 401, "unauthorized", None),
    (WrongToken("the admin token is wrong"), 403, "forbidden", None),
    (refusals.TooLarge("at most 8 steps, got 9"), 413, "too_large", None),
    (UnsupportedMediaType("send application/json"), 415, "unsupported_media_type", None),
    (refusals.LatentsExpected("/decode takes latents, not an image"), 415, "unsupported_media_type", None),
    (NotFound("no figure 'x'"), 404, "not_found", None),
    (VersionLoadFailed("version 2 failed to load"), 409, "load_failed", None),
    (DefaultVersionInUse("make another version the default first"), 409, "is_default", None),
    (UploadTooLarge("the dataset is larger than 9 bytes"), 413, "too_large", None),
    (refusals.TooManyPixels("this request's images are 9 pixels in all"), 413, "too_large", None),
    (ModelNotFound("no model named 'x'"), 404, "model_not_found", None),
    (ModelNotFound("model x has no version 3"), 404, "model_not_found", None),
    (DatasetNotFound("no dataset named 'x'"), 404, "dataset_not_found", None),
    (JobNotFound("no job 'x'"), 404, "job_not_found", None),
    (DatasetExists("a dataset named 'x' exists"), 409, "dataset_exists", None),
    (DatasetInUse("dataset 'x' is in use by jobs 1"), 409, "dataset_in_use", None),
    (ClientGone("the client hung up"), 499, "client_gone", None),
    (QueueFull(2.6), 429, "queue_full", "3"),
    (LargerThanQueue("this request's 9 samples are more than the queue holds"), 413, "too_large",
     None),
    (ModelUnavailable("x:1 failed to load"), 503, "model_unavailable", "5"),
    (JobsUnavailable("the job queue (Redis) is unavailable"), 503, "unavailable", "5"),
    (ObjectStoreUnavailable("the object store is unavailable"), 503, "storage_unavailable", "5"),
    (LaneClosed("model x was unloaded during the clip"), 503, "model_unavailable", "5"),
    (ClientGone("the client closed its connection"), 499, "client_gone", None),
    (DeadlineExceeded("past the deadline"), 504, "deadline_exceeded", None),
    (CorruptStoredFile("the server's stored manifest of x is unreadable"), 500,
     "stored_file_corrupt", None),
]  # fmt: skip
# Input a model cannot take: all 422, each with its own code.
INVALID_INPUT: list[tuple[Exception, str]] = [
    (refusals.InvalidRequest("send at least one image"), "invalid_request"),
    (NpyNotNumbers("the .npy array must hold numbers"), "invalid_npy"),
    (refusals.InvalidLatent("each latent must have 32 numbers"), "invalid_latent"),
    (refusals.InvalidCodes("codes must lie in 0..7"), "invalid_codes"),
    (refusals.InvalidLabel("model x is not conditional: leave out 'label'"), "invalid_label"),
    (InvalidName("invalid name 'A'"), "invalid_name"),
    (ImageError("not a PNG"), "invalid_image"),
    (DatasetError("no images"), "invalid_dataset"),
    (TensorError("a float16 tensor of shape [2] is 4 bytes"), "invalid_tensor"),
    (refusals.ImageSizeError("image sides must be multiples of 8"), "invalid_size"),
    (refusals.PriorNotMeaningful("model sd cannot sample"), "no_prior"),
]  # fmt: skip
EXPECTED += [(error, 422, code, None) for error, code in INVALID_INPUT]


def _raising_app(error: BaseException) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return app


async def _get(app: FastAPI, path: str = "/fail") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
        return await client.get(path)


def test_the_table_lists_every_domain_error_this_test_checks() -> None:
    assert {type(error) for error, *_ in EXPECTED} == set(DOMAIN_ERRORS)


def test_a_missing_token_tells_the_client_how_to_authenticate() -> None:
    response = asyncio.run(_get(_raising_app(MissingToken("send a bearer token"))))
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"), EXPECTED, ids=lambda v: type(v).__name__
)
def test_each_domain_error_is_answered_with_its_status_code_and_message(
    error: Exception, status: int, code: str, retry_after: str | None
) -> None:
    response = asyncio.run(_get(_raising_app(error)))
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["message"] == str(error)
    assert response.headers.get("retry-after") == retry_after


def test_a_subclass_of_a_domain_error_is_answered_as_its_parent() -> None:
    class NoSuchLayer(ModelNotFound):
        pass

    response = asyncio.run(_get(_raising_app(NoSuchLayer("no layer 3"))))
    assert (response.status_code, response.json()["error"]) == (404, "model_not_found")


def test_a_validation_error_outside_the_request_is_a_500_not_a_422() -> None:
    class Stored(BaseModel):
        count: int

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/stored")
    async def stored() -> None:
        Stored.model_validate_json(b'{"count": "many"}')  # the server's data, not the request's

    response = asyncio.run(_get(app, "/stored"))
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "count" not in response.json()["message"]


def test_an_unexpected_error_is_a_500_that_keeps_its_text_in_the_log() -> None:
    response = asyncio.run(_get(_raising_app(KeyError("secret internals"))))
    assert response.status_code == 500
    assert "secret" not in response.text


# ---- the service in process ----------------------------------------------------------------


@pytest.fixture
def repository_with_a_broken_model(tmp_path: Path) -> Path:
    """A model repository whose one version has a manifest that is not JSON."""
    version = tmp_path / "models" / "broken" / "1"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text("{ this is not a manifest")
    return tmp_path / "models"


Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


def _run(models_dir: Path, data_dir: Path, scenario: Scenario, **settings: object) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        async with serving(create_app(settings_for(models_dir, data_dir, **settings))) as http:
            await scenario(http)

    asyncio.run(main())


def _answer(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def _put_digits(http: httpx.AsyncClient, name: str) -> httpx.Response:
    images, labels = digits()
    return await http.put(f"/datasets/{name}", content=npz_bytes(images=images, labels=labels))


def test_unknown_datasets_are_404_whatever_the_name(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        for name in ("no-such-thing", "UPPER"):
            response = await http.get(f"/datasets/{name}")
            assert _answer(response) == (404, "dataset_not_found")
            assert f"no dataset named {name!r}" in response.json()["message"]
            assert _answer(await http.delete(f"/datasets/{name}")) == (404, "dataset_not_found")

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_uploads_refused_for_what_the_client_sent(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        bad_name = await _put_digits(http, "Bad-Name")
        assert _answer(bad_name) == (422, "invalid_name")
        assert "invalid name 'Bad-Name'" in bad_name.json()["message"]
        garbage = await http.put("/datasets/garbage", content=b"not a dataset at all")
        assert _answer(garbage) == (422, "invalid_dataset")
        empty = await http.put("/datasets/empty", content=b"")
        assert _answer(empty) == (422, "invalid_dataset")
        assert "the body is empty" in empty.json()["message"]
        assert (await _put_digits(http, "digits")).status_code == 201
        again = await _put_digits(http, "digits")
        assert _answer(again) == (409, "dataset_exists")
        assert "delete it first" in again.json()["message"]

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_uploads_past_their_cap_are_413_declared_or_streamed(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield bytes(1024)

    async def scenario(http: httpx.AsyncClient) -> None:
        declared = await http.put("/datasets/big", content=bytes(4096))
        assert _answer(declared) == (413, "too_large")
        assert "larger than 2048 bytes" in declared.json()["message"]
        streamed = await http.put("/datasets/big", content=chunks())
        assert _answer(streamed) == (413, "too_large")
        assert (await http.get("/datasets/big")).status_code == 404

    _run(tmp_path / "models", tmp_path / "data", scenario, max_dataset_bytes=2048)


def test_a_corrupt_stored_dataset_manifest_is_a_500_that_blames_the_server(
    tmp_path: Path,
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        assert (await _put_digits(http, "digits")).status_code == 201
        manifest = tmp_path / "data" / "datasets" / "digits" / "manifest.json"
        manifest.write_text('{"name": "digits", "count": "many"}')
        response = await http.get("/datasets/digits")
        assert _answer(response) == (500, "stored_file_corrupt")
        assert "the server's stored manifest of dataset 'digits'" in response.json()["message"]
        assert "not in the request" in response.json()["message"]
        listing = await http.get("/datasets")  # the listing leaves it out and still answers
        assert listing.status_code == 200 and listing.json() == {"datasets": []}

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_a_corrupt_stored_model_manifest_is_a_503_that_blames_the_server(
    tmp_path: Path, repository_with_a_broken_model: Path
) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.post("/sample", json={"n": 1, "model": "broken:1"})
        assert _answer(response) == (503, "model_unavailable")
        assert "the server's stored manifest of model broken version 1" in response.text
        assert response.headers["retry-after"] == "5"

    _run(repository_with_a_broken_model, tmp_path / "data", scenario)


def test_unknown_models_are_404_on_every_route(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        answers = [
            await http.post("/sample", json={"n": 1, "model": "nope"}),
            await http.post("/decode", json={"latents": [[0.0]], "model": "nope"}),
            await http.get("/models/nope"),
            await http.get("/models/UPPER"),
            await http.get("/models/nope/versions/1/report/samples.png"),
            await http.post("/models/nope/default", json={"version": 1}),
            await http.delete("/models/nope/versions/1"),
            await http.get("/v2/models/nope/ready"),
        ]
        for response in answers:
            assert _answer(response) == (404, "model_not_found"), response.request.url

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_job_errors(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        assert _answer(await http.get("/jobs/nope")) == (404, "job_not_found")
        assert _answer(await http.post("/jobs/nope/cancel")) == (404, "job_not_found")
        missing = await http.post("/jobs", json={"dataset": "absent", "name": "m"})
        assert _answer(missing) == (404, "dataset_not_found")
        assert "PUT /datasets/{name} first" in missing.json()["message"]
        bad = await http.post("/jobs", json={"dataset": "Absent", "name": "m"})
        assert _answer(bad) == (422, "invalid_request")

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_jobs_are_503_with_retry_after_while_their_queue_is_unreachable(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        for response in (await http.get("/jobs"), await http.get("/jobs/some-id")):
            assert _answer(response) == (503, "unavailable")
            assert response.headers["retry-after"] == "5"
            assert "Redis" in response.json()["message"]

    nobody = f"redis://127.0.0.1:{free_port()}/0"
    _run(tmp_path / "models", tmp_path / "data", scenario, redis_url=nobody)


def test_a_request_body_that_is_not_valid_is_still_a_422(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        for route, body in [
            ("/decode", {"latents": "zero"}),
            ("/encode", {"images": 3}),
            ("/sample", {"n": "many"}),
        ]:
            response = await http.post(route, json=body)
            assert _answer(response) == (422, "invalid_request"), route
            assert response.json()["detail"], route
        not_json = await http.post(
            "/decode", content=b"{", headers={"content-type": "application/json"}
        )
        assert _answer(not_json) == (422, "invalid_request")

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_a_method_a_path_does_not_take_is_a_405_that_says_which_it_does(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.get("/sample")
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json()["message"] == (
            "/sample does not take GET: send POST /sample with a JSON body (see /docs)"
        )
        response = await http.delete("/models")
        assert response.json()["message"] == "/models does not take DELETE: send GET /models"

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_one_latent_vector_sent_bare_is_told_to_wrap_it(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.post("/decode", json={"latents": [0.0] * 32})
        assert response.status_code == 422 and response.json()["error"] == "invalid_request"
        assert response.json()["message"] == (
            "latents: latents is a list of latent vectors: send one vector as [[z1, z2, ...]], "
            "not [z1, z2, ...]"
        )

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_a_path_no_route_serves_is_a_404_that_says_where_the_routes_are(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        response = await http.put("/datasets/..%2Fetc", content=b"x")
        assert _answer(response) == (404, "http_error")
        message = response.json()["message"]
        assert "names are 1-64 lowercase letters" in message and "/docs" in message
        response = await http.get("/no/such/thing")
        assert response.json()["message"] == (
            "no route serves GET /no/such/thing: the routes are listed at /docs"
        )

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_a_dataset_sent_as_a_form_is_told_to_send_the_file_as_the_body(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        files = {"file": ("x.npz", npz_bytes(images=digits()[0]))}
        response = await http.put("/datasets/digits", files=files)
        assert _answer(response) == (422, "invalid_dataset")
        assert "curl -T data.npz" in response.json()["message"]
        assert (await http.get("/datasets/digits")).status_code == 404

    _run(tmp_path / "models", tmp_path / "data", scenario)


def test_an_image_file_sent_to_a_flat_model_is_told_how_to_send_images(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient) -> None:
        png = base64.b64decode(png_b64(np.zeros((28, 28), np.uint8)))
        response = await http.post("/encode", content=png, headers={"content-type": "image/png"})
        assert _answer(response) == (422, "invalid_request")
        assert '{"images": ["<base64 PNG>"]}' in response.json()["message"]

    shutil.copytree(SHIPPED_MODELS, tmp_path / "models")
    _run(tmp_path / "models", tmp_path / "data", scenario)

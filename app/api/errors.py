"""Errors as JSON with a message a person can act on, and the status each failure maps to."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.api.disconnect import ClientGone
from app.api.negotiation import (
    JSON_MEDIA_TYPE,
    InvalidNpy,
    NpyNotNumbers,
    UnsupportedMediaType,
    media_type,
)
from app.api.responses import json_response
from app.api.tokens import MissingToken, WrongToken
from app.datasets.arrays import DatasetError
from app.datasets.store import DatasetExists, DatasetInUse, DatasetNotFound, UploadTooLarge
from app.jobs.base import JobNotFound, JobsUnavailable
from app.repository.store import ModelNotFound
from app.serving.adapters.errors import (
    ImageSizeError,
    InvalidCodes,
    InvalidLabel,
    InvalidLatent,
    InvalidRequest,
    LatentsExpected,
    PriorNotMeaningful,
    TooLarge,
    TooManyPixels,
)
from app.serving.batcher import LargerThanQueue, QueueFull
from app.serving.deadlines import DeadlineExceeded
from app.serving.imaging import ImageError
from app.serving.registry import ModelUnavailable
from app.serving.tensors import TensorError
from app.serving.video.lanes import LaneClosed
from app.storage.files import CorruptStoredFile, InvalidName
from app.storage.objects import ObjectStoreUnavailable

logger = logging.getLogger(__name__)


class NotFound(LookupError):
    """A path that names nothing this API has: a static file, a report figure (404)."""


class VersionLoadFailed(RuntimeError):
    """A version made the default that fails to load (409)."""


class DefaultVersionInUse(RuntimeError):
    """Deleting the default version while other versions exist (409)."""


@dataclass(frozen=True)
class ErrorStatus:
    """How one domain error is answered: its status, its `error` code, and for a failure that
    passes (503, 429) the seconds to wait, fixed or read from the exception."""

    status: int
    code: str
    retry_after: float | Callable[[Any], float] | None = None
    challenge: str | None = None
    """The WWW-Authenticate header of a 401."""

    def headers(self, exc: Exception) -> dict[str, str]:
        """Retry-After when the failure passes, WWW-Authenticate for a 401, else nothing."""
        headers = {} if self.challenge is None else {"WWW-Authenticate": self.challenge}
        if self.retry_after is None:
            return headers
        seconds = self.retry_after(exc) if callable(self.retry_after) else self.retry_after
        return {**headers, "Retry-After": str(max(1, round(seconds)))}


# Every error the domain packages raise, and what a client sees for it: the one place where a
# domain error becomes an HTTP status. Routes raise domain errors and never translate them.
# The message is the exception's own text.
DOMAIN_ERRORS: dict[type[Exception], ErrorStatus] = {
    # the request is wrong
    ClientDisconnect: ErrorStatus(400, "incomplete"),
    InvalidNpy: ErrorStatus(400, "invalid_npy"),
    MissingToken: ErrorStatus(401, "unauthorized", challenge="Bearer"),
    WrongToken: ErrorStatus(403, "forbidden"),
    ClientGone: ErrorStatus(499, "client_gone"),  # nobody is there to read it
    UploadTooLarge: ErrorStatus(413, "too_large"),
    TooLarge: ErrorStatus(413, "too_large"),
    TooManyPixels: ErrorStatus(413, "too_large"),
    LargerThanQueue: ErrorStatus(413, "too_large"),
    UnsupportedMediaType: ErrorStatus(415, "unsupported_media_type"),
    LatentsExpected: ErrorStatus(415, "unsupported_media_type"),
    InvalidRequest: ErrorStatus(422, "invalid_request"),
    InvalidName: ErrorStatus(422, "invalid_name"),
    ImageError: ErrorStatus(422, "invalid_image"),
    NpyNotNumbers: ErrorStatus(422, "invalid_npy"),
    InvalidLatent: ErrorStatus(422, "invalid_latent"),
    InvalidCodes: ErrorStatus(422, "invalid_codes"),
    InvalidLabel: ErrorStatus(422, "invalid_label"),
    DatasetError: ErrorStatus(422, "invalid_dataset"),
    TensorError: ErrorStatus(422, "invalid_tensor"),
    ImageSizeError: ErrorStatus(422, "invalid_size"),
    PriorNotMeaningful: ErrorStatus(422, "no_prior"),
    # it names something that is not there, or is there already
    NotFound: ErrorStatus(404, "not_found"),
    ModelNotFound: ErrorStatus(404, "model_not_found"),
    DatasetNotFound: ErrorStatus(404, "dataset_not_found"),
    JobNotFound: ErrorStatus(404, "job_not_found"),
    DatasetExists: ErrorStatus(409, "dataset_exists"),
    DatasetInUse: ErrorStatus(409, "dataset_in_use"),
    VersionLoadFailed: ErrorStatus(409, "load_failed"),
    DefaultVersionInUse: ErrorStatus(409, "is_default"),
    # the server cannot answer now: try again
    QueueFull: ErrorStatus(429, "queue_full", retry_after=attrgetter("retry_after")),
    ModelUnavailable: ErrorStatus(503, "model_unavailable", retry_after=5),
    JobsUnavailable: ErrorStatus(503, "unavailable", retry_after=5),
    ObjectStoreUnavailable: ErrorStatus(503, "storage_unavailable", retry_after=5),
    LaneClosed: ErrorStatus(503, "model_unavailable", retry_after=5),
    DeadlineExceeded: ErrorStatus(504, "deadline_exceeded"),
    # the server's own files are broken: never the client's fault
    CorruptStoredFile: ErrorStatus(500, "stored_file_corrupt"),
}


# What each error status means on this API; routes list theirs with `error_responses(...)`.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "malformed body",
    401: "no admin token",
    403: "wrong admin token",
    404: "not found",
    409: "conflict",
    413: "too large",
    415: "unsupported media type",
    422: "invalid input",
    429: "rate limited, or the batch queue is full (see Retry-After)",
    500: "a fault of the server (a stored file it cannot read, or a bug); the message says which",
    503: "not available now (see Retry-After where given)",
    504: "deadline passed, queued or computing (the message says which setting to raise)",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for these error statuses (descriptions overridable as
    `_404="unknown model"`); their bodies are documented by `document_error_bodies`."""
    return {
        code: {"description": descriptions.get(f"_{code}", ERROR_DESCRIPTIONS[code])}
        for code in codes
    }


def document_error_bodies(schema: dict[str, Any]) -> None:
    """Every documented 4xx and 5xx without a body of its own answers the `ErrorResponse` JSON
    body; FastAPI's default `HTTPValidationError` (which this API never sends) is replaced."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    default = "#/components/schemas/HTTPValidationError"
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if str(status)[:1] in {"4", "5"} and (not content or default in str(content)):
                    response["content"] = dict(body)
                    if response.get("description") == "Validation Error":
                        response["description"] = ERROR_DESCRIPTIONS[422]
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def error_response(
    status: int, error: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """The JSON body every error has."""
    return json_response({"error": error, "message": message, "detail": detail}, status, headers)


def _validation_detail(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def _not_json(request: Request, errors: list[Any]) -> str | None:
    """The media type a JSON body was sent as, when it was sent as something else (curl -d sends
    application/x-www-form-urlencoded unless told): the body then never reaches validation as
    an object. None when the header is not the problem."""
    sent = media_type(request)
    if not sent or sent == JSON_MEDIA_TYPE or sent.endswith("+json"):
        return None
    return sent if any(tuple(e.get("loc", ())) == ("body",) for e in errors) else None


def _json_error_message(error: dict[str, Any], body: Any) -> str:
    """Where and what: "the body is not valid JSON: Expecting value at line 2, column 7
    (character 15)", from FastAPI's json_invalid error (its loc carries the character offset)."""
    what = str((error.get("ctx") or {}).get("error") or "it cannot be parsed")
    loc = list(error.get("loc", ()))
    offset = loc[1] if len(loc) > 1 and type(loc[1]) is int else None
    if offset is None:
        return f"the body is not valid JSON: {what}"
    text = bytes(body).decode("utf-8", "replace") if type(body) in {bytes, bytearray} else str(body)
    before = text[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return (
        f"the body is not valid JSON: {what} at line {line}, column {column} (character {offset})"
    )


def _first_message(errors: list[Any]) -> str:
    if not errors:
        return "the request body is not valid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


async def _domain_error(_: Request, exc: Exception) -> Response:
    """A domain error answered as `DOMAIN_ERRORS` says (the nearest listed class in its MRO)."""
    mapping = next(DOMAIN_ERRORS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_ERRORS)
    if mapping.status == 500:  # a fault to fix on the server (503 and 504 pass by themselves)
        logger.error("%s: %s", type(exc).__name__, exc, exc_info=exc)
    return error_response(mapping.status, mapping.code, str(exc), headers=mapping.headers(exc))


def _method_message(request: Request, allowed: str) -> str:
    """What to do about a method a path does not take: the methods it does (and, for POST, that
    the body is JSON: `curl -d '{...}' -H 'content-type: application/json'`)."""
    path = request.url.path
    methods = [m.strip() for m in allowed.split(",") if m.strip()]
    if not methods:
        return f"{request.method} is not allowed on {path}"
    how = " with a JSON body (see /docs)" if "POST" in methods else ""
    return f"{path} does not take {request.method}: send {' or '.join(methods)} {path}{how}"


def _no_route_message(request: Request) -> str:
    """What to do about a path no route serves: where the routes are listed, and for a path under
    /models or /datasets the names a route there takes (a name with '/' or '..' in it names no
    model or dataset)."""
    path = request.url.path
    names = ""
    if path.startswith(("/models/", "/datasets/")):
        names = " (model and dataset names are 1-64 lowercase letters, digits, '-' or '_')"
    return f"no route serves {request.method} {path}{names}: the routes are listed at /docs"


def install_error_handlers(app: FastAPI) -> None:
    """Maps each failure to its status so that bad input never becomes a 500, and a fault of the
    server never becomes a 4xx: request validation (422, the request body and parameters only),
    the `DOMAIN_ERRORS` table (what routes raise), then anything else (500)."""

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        sent_as = _not_json(request, errors)
        if sent_as is not None:
            return error_response(
                415,
                "unsupported_media_type",
                f"send the body as JSON with the header Content-Type: {JSON_MEDIA_TYPE}, not "
                f"{sent_as} (curl -d sends {sent_as} unless given "
                f"-H 'content-type: {JSON_MEDIA_TYPE}')",
            )
        if errors and errors[0].get("type") == "json_invalid":
            message = _json_error_message(errors[0], exc.body)
            return error_response(422, "invalid_request", message, _validation_detail(errors))
        return error_response(
            422, "invalid_request", _first_message(errors), _validation_detail(errors)
        )

    for error_type in DOMAIN_ERRORS:
        app.add_exception_handler(error_type, _domain_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        error = "too_large" if exc.status_code == 413 else "http_error"
        headers = dict(exc.headers or {})
        message = str(exc.detail)
        if exc.status_code == 405:
            message = _method_message(request, headers.get("Allow", ""))
        elif exc.status_code == 404 and message == "Not Found":  # no route matched the path
            message = _no_route_message(request)
        return error_response(exc.status_code, error, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(
            500, "internal_error", "the server failed to answer; the error is logged"
        )

"""Errors as JSON with a message a person can act on, and the status each failure maps to."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.api.responses import json_response
from app.serving.batcher import DeadlineExceeded, QueueFull
from app.serving.imaging import ImageError
from app.serving.registry import ModelNotFound, ModelUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status; raise it anywhere in a route."""

    def __init__(
        self,
        status: int,
        message: str,
        error: str = "bad_request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.headers = headers or {}


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
    503: "not available now (see Retry-After where given)",
    504: "deadline passed",
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


def _first_message(errors: list[Any]) -> str:
    if not errors:
        return "the request body is not valid"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid"))


def install_error_handlers(app: FastAPI) -> None:
    """Maps each failure to its status so that bad input never becomes a 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        return error_response(
            422, "invalid_request", _first_message(errors), _validation_detail(errors)
        )

    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: ValidationError) -> Response:
        errors = list(exc.errors())
        return error_response(
            422, "invalid_request", _first_message(errors), _validation_detail(errors)
        )

    @app.exception_handler(ImageError)
    async def _image(_: Request, exc: ImageError) -> Response:
        return error_response(422, "invalid_image", str(exc))

    @app.exception_handler(ModelNotFound)
    async def _not_found(_: Request, exc: ModelNotFound) -> Response:
        return error_response(404, "model_not_found", str(exc))

    @app.exception_handler(ModelUnavailable)
    async def _unavailable(_: Request, exc: ModelUnavailable) -> Response:
        return error_response(503, "model_unavailable", str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(QueueFull)
    async def _queue_full(_: Request, exc: QueueFull) -> Response:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return error_response(429, "queue_full", str(exc), headers=headers)

    @app.exception_handler(DeadlineExceeded)
    async def _deadline(_: Request, exc: DeadlineExceeded) -> Response:
        return error_response(504, "deadline_exceeded", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        error = "too_large" if exc.status_code == 413 else "http_error"
        return error_response(
            exc.status_code, error, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(
            500, "internal_error", "the server failed to answer; the error is logged"
        )

"""The request-body size limit, for every route, before any of the body is parsed: the one place
it is enforced.

FastAPI reads a JSON body whole before validating it, with no limit of its own: a client could
stream gigabytes into POST /sample. `BodyLimitMiddleware` answers 413 at once when Content-Length
says the body is too large, and raises `BodyTooLarge` (answered 413) when a body without one
(chunked) grows past the limit while the route reads it. Dataset uploads (PUT /datasets/{name})
stream to disk and get their own, larger limit (`max_dataset_bytes`); every other body gets
`max_body_bytes`. Routes read their bodies without counting.

The same wrapper bounds how long a body may take (`BodyTimeout`, answered 408 with
`Connection: close`): `body_timeout_s` from the request's start, plus a second for every
`body_min_rate` bytes received (Apache's mod_reqtimeout rule), so a large upload on a slow link
is fine and a client trickling a byte a second is cut off. Once the body is complete, `receive`
is left alone: it then only waits for the client to go (app/api/disconnect.py).
"""

from __future__ import annotations

import asyncio
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.errors import error_response

UPLOAD_PREFIX = "/datasets/"


class BodyTooLarge(HTTPException):
    """Raised while a body is read, once it has grown past the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_message(limit))
        count_too_large()


def count_too_large() -> None:
    """One request refused for its body's size, in vae_rejections_total{reason="too_large"}
    (no model or graph: it was refused before any was chosen)."""
    metrics.REJECTIONS.labels("", "", "too_large").inc()


class BodyTimeout(HTTPException):
    """The body did not arrive in time (answered 408; the connection is closed after)."""

    def __init__(self) -> None:
        super().__init__(
            408, "the request body did not arrive in time", headers={"Connection": "close"}
        )


def body_too_large_message(limit: int) -> str:
    """What a client past the limit is told."""
    return f"the body is larger than {limit} bytes"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def is_upload(scope: Scope) -> bool:
    """True for a dataset upload (PUT /datasets/{name}), which has the larger limit."""
    return scope.get("method") == "PUT" and str(scope.get("path", "")).startswith(UPLOAD_PREFIX)


class BodyLimitMiddleware:
    """413 for a request body over its limit, declared or streamed: `upload_limit` bytes for a
    dataset upload, `limit` for everything else."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        upload_limit: int,
        body_timeout_s: float | None = None,
        body_min_rate: int = 1024,
    ) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.body_timeout_s = body_timeout_s
        self.body_min_rate = body_min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if is_upload(scope) else self.limit
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            count_too_large()
            response = error_response(413, "too_large", body_too_large_message(limit))
            await response(scope, receive, send)
            return
        received = 0
        complete = False
        started = time.monotonic()
        timeout = self.body_timeout_s

        async def counted() -> Message:
            nonlocal received, complete
            if complete or timeout is None:
                message = await receive()
            else:
                deadline = started + timeout + received / self.body_min_rate
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        message = await receive()
                except TimeoutError:
                    raise BodyTimeout() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)

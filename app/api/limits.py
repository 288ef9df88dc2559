"""A body size limit for every route, before any of it is parsed.

FastAPI reads a JSON body whole before validating it, with no limit of its own: a client could
stream gigabytes into POST /sample. `BodyLimitMiddleware` answers 413 at once when Content-Length
says the body is too large, and when a body without one (chunked) grows past the limit while the
route reads it. Dataset uploads (PUT /datasets/{name}) stream to disk under their own, larger cap
(`max_dataset_bytes`) and are left to that route.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response


class BodyTooLarge(HTTPException):
    """Raised while a body is read, once it has grown past the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimitMiddleware:
    """413 for a request body over `limit` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope.get("method") == "PUT" and scope.get("path", "").startswith("/datasets/")
        ):
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            response = error_response(
                413, "too_large", f"the body is larger than {self.limit} bytes"
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)

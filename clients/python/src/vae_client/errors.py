"""Typed errors: each carries the HTTP status and the service's JSON `message`; `error_for` picks
the one for an HTTP answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from vae_client.retry import retry_after_seconds

if TYPE_CHECKING:
    from vae_client.types import Job


@dataclass(eq=False)
class VaeError(Exception):
    """Base of every error this client raises.

    `status` is the HTTP status (None when the error is not an HTTP answer), `message` the
    service's human-readable `message`, `error` its machine-readable code (e.g. `queue_full`),
    `detail` its optional `detail` (validation errors list what was wrong where).
    """

    message: str
    status: int | None = None
    error: str | None = None
    detail: Any = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"


class BadRequest(VaeError):
    """A 4xx: the request was wrong (malformed, invalid, too large, a conflict)."""


class Unauthorized(BadRequest):
    """401 (no admin token) or 403 (a wrong one)."""


class NotFound(BadRequest):
    """404: an unknown model, dataset or job."""


@dataclass(eq=False)
class _ComeBackLater(VaeError):
    """An answer that says when to try again: `retry_after` is the service's `Retry-After` in
    seconds (None when it sent none)."""

    retry_after: float | None = None


class RateLimited(_ComeBackLater):
    """429: the batch queue is full or the client passed its rate limit (`retry_after`)."""


class Unavailable(_ComeBackLater):
    """503: the model or the job backend is not available now (`retry_after` seconds)."""


class ServerError(VaeError):
    """Any other 5xx (500, 502, 504: the request's deadline passed)."""


class ConnectionFailed(VaeError, ConnectionError):
    """No answer: the service could not be reached (connection attempts are retried as the
    retry policy allows; a request is never sent twice), or the connection broke."""


class RequestTimeout(VaeError, TimeoutError):
    """No answer within the client's `timeout`."""


def transport_error(error: httpx.TransportError) -> VaeError:
    """The client's error for an httpx transport failure."""
    if isinstance(error, httpx.TimeoutException):
        return RequestTimeout(f"no answer within the timeout: {error!r}")
    return ConnectionFailed(f"the service could not be reached: {error!r}")


class JobFailed(VaeError):
    """`wait` saw the job end `failed` or `cancelled`; `job` is its last snapshot."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or 'no error given'}")
        self.job = job


class WaitTimeout(VaeError, TimeoutError):
    """`wait` gave up before the job ended (or before the server answered with its version);
    `job` is the last snapshot seen."""

    def __init__(self, job: Job, timeout: float, waiting_for: str | None = None) -> None:
        super().__init__(f"job {job.id} {waiting_for or 'still ' + job.status} after {timeout:g} s")
        self.job = job


# The error of each status that has its own; any other 4xx is a BadRequest, 5xx a ServerError.
ERRORS: dict[int, type[VaeError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    429: RateLimited,
    503: Unavailable,
}


def error_for(response: httpx.Response) -> VaeError:
    """The typed error for a 4xx or 5xx answer, with the service's `message`."""
    status = response.status_code
    message, code, detail = response.reason_phrase or f"HTTP {status}", None, None
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        if text:
            message = text[:500]
    else:
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or message)
            code = body.get("error")
            detail = body.get("detail")
    kind = ERRORS.get(status) or (BadRequest if 400 <= status < 500 else ServerError)
    if issubclass(kind, _ComeBackLater):
        return kind(message, status, code, detail, retry_after_seconds(response))
    return kind(message, status, code, detail)

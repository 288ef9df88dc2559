"""Typed errors: each carries the HTTP status and the service's JSON `message`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vae_client.types import Job


class VaeError(Exception):
    """Base of every error this client raises.

    `status` is the HTTP status (None when the error is not an HTTP answer), `message` the
    service's human-readable `message`, `error` its machine-readable code (e.g. `queue_full`),
    `detail` its optional `detail` (validation errors list what was wrong where).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error
        self.detail = detail

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"


class BadRequest(VaeError):
    """A 4xx: the request was wrong (malformed, invalid, too large, a conflict)."""


class Unauthorized(BadRequest):
    """401 (no admin token) or 403 (a wrong one)."""


class NotFound(BadRequest):
    """404: an unknown model, dataset or job."""


class RateLimited(VaeError):
    """429: the batch queue is full or the client passed its rate limit.

    `retry_after` is the service's `Retry-After` in seconds (None when it sent none).
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error: str | None = None,
        detail: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status, error, detail)
        self.retry_after = retry_after


class Unavailable(VaeError):
    """503: the model or the job backend is not available now (`retry_after` seconds)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error: str | None = None,
        detail: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status, error, detail)
        self.retry_after = retry_after


class ServerError(VaeError):
    """Any other 5xx (500, 502, 504: the request's deadline passed)."""


class JobFailed(VaeError):
    """`wait` saw the job end `failed` or `cancelled`; `job` is its last snapshot."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or 'no error given'}")
        self.job = job


class WaitTimeout(VaeError, TimeoutError):
    """`wait` gave up before the job ended; `job` is the last snapshot seen."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} still {job.status} after {timeout:g} s")
        self.job = job

"""When to try a request again: 429 and 503 only, after the service's Retry-After, bounded."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The response's `Retry-After` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a request the service answered with one of `statuses` (429 and 503).

    Each wait is the answer's `Retry-After` (a small random `jitter` fraction added on top, so
    clients told the same second do not all come back at once), or without one an exponential
    backoff from `backoff` seconds up to `max_backoff`. A request is sent at most
    `max_attempts` times, and the client gives up (raising the last answer's error) rather than
    wait past `max_wait` seconds in all. No other status is retried; of transport errors, only a
    connection that could not be made (the request was never sent), up to `max_attempts`.
    """

    max_attempts: int = 5
    max_wait: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 503}))
    backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1: no retries)")
        if self.max_wait < 0 or self.backoff < 0 or self.max_backoff < 0 or self.jitter < 0:
            raise ValueError("waits and jitter must not be negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that sends every request once."""
        return cls(max_attempts=1, max_wait=0.0)

    def delay(
        self,
        response: httpx.Response,
        attempt: int,
        waited: float,
        only: frozenset[int] | None = None,
    ) -> float | None:
        """Seconds to wait before sending again after `response` to attempt number `attempt`
        (1 for the first), having waited `waited` seconds so far; None to give up. `only`
        narrows the statuses retried for one call."""
        statuses = self.statuses if only is None else self.statuses & only
        if response.status_code not in statuses or attempt >= self.max_attempts:
            return None
        told = retry_after_seconds(response)
        if told is None:
            wait = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        else:
            wait = told * (1.0 + random.uniform(0.0, self.jitter))
        if waited + (told if told is not None else wait) > self.max_wait:
            return None
        return min(wait, max(told or 0.0, self.max_wait - waited))

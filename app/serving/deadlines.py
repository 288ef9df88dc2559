"""A request's deadline: when it must be answered by, worked out from the settings and the pixels
it computes, and whether any of its work has run yet, so that a 504 says which setting to raise
and whether the request was still queued or already computing.

A `Deadline` is a `time.monotonic()` value (a float: the runners compare it as one) that also
knows how it was made. A batch already computing when its requests' deadline passes is not
interrupted (an engine call cannot be) and its result is returned: the work is paid for by then,
and a 504 would only make the client send it again. A request with more parts to run (tiles, or
rows past one batch) stops before its next part, with a 504 that says it was computing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.config import Settings

MEGAPIXEL = 1_000_000


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before its next batch ran (504); the message says whether it
    was still queued or already computing, and which setting to raise."""


@dataclass(frozen=True)
class Timeout:
    """How long a request may take: VAE_REQUEST_TIMEOUT_S, plus VAE_TIMEOUT_PER_MEGAPIXEL_S for
    each megapixel of the images it computes, capped at VAE_MAX_REQUEST_TIMEOUT_S (a cap below
    VAE_REQUEST_TIMEOUT_S never shortens that)."""

    base: float
    per_megapixel: float
    cap: float
    megapixels: float = 0.0

    @classmethod
    def of(cls, settings: Settings, pixels: int = 0) -> Timeout:
        """The timeout of a request computing `pixels` image pixels (in or out; 0: none)."""
        return cls(
            settings.request_timeout_s,
            settings.timeout_per_megapixel_s,
            settings.max_request_timeout_s,
            max(0, pixels) / MEGAPIXEL,
        )

    @property
    def grown(self) -> float:
        """The timeout before the cap."""
        return self.base + self.per_megapixel * self.megapixels

    @property
    def capped(self) -> bool:
        """Whether the cap shortened it."""
        return self.grown > max(self.cap, self.base)

    @property
    def seconds(self) -> float:
        """The timeout in seconds."""
        return min(self.grown, max(self.cap, self.base))

    def explained(self) -> str:
        """'12.1 s: VAE_REQUEST_TIMEOUT_S=10 + VAE_TIMEOUT_PER_MEGAPIXEL_S=30 x 0.07
        megapixels' (and the cap when it applied)."""
        text = f"{seconds(self.seconds)}: VAE_REQUEST_TIMEOUT_S={self.base:g}"
        if self.megapixels > 0:
            text += (
                f" + VAE_TIMEOUT_PER_MEGAPIXEL_S={self.per_megapixel:g} x "
                f"{self.megapixels:.2f} megapixels"
            )
        if self.capped:
            text += f", capped at VAE_MAX_REQUEST_TIMEOUT_S={self.cap:g}"
        return text

    def setting_to_raise(self, computing: bool) -> str:
        """The setting that gives such a request more time: the cap when it applied; for a
        request computing images, the time per megapixel; else the base timeout."""
        if self.capped:
            return "VAE_MAX_REQUEST_TIMEOUT_S"
        if computing and self.megapixels > 0:
            return "VAE_TIMEOUT_PER_MEGAPIXEL_S"
        return "VAE_REQUEST_TIMEOUT_S"


class Deadline(float):
    """When a request must be answered by (a time.monotonic() value), its `Timeout`, when it
    started and when its first part began computing (None while all of it is queued)."""

    __slots__ = ("computing_since", "started", "timeout")

    timeout: Timeout
    started: float
    computing_since: float | None

    def __new__(cls, timeout: Timeout, started: float | None = None) -> Deadline:
        """A deadline `timeout` after `started` (now when None)."""
        start = time.monotonic() if started is None else started
        deadline = super().__new__(cls, start + timeout.seconds)
        deadline.timeout = timeout
        deadline.started = start
        deadline.computing_since = None
        return deadline

    def exceeded(self, now: float) -> DeadlineExceeded:
        """The 504 of this request, its deadline having passed at `now` before its next part."""
        timeout = self.timeout
        if self.computing_since is None:
            return DeadlineExceeded(
                f"the request was still queued {seconds(now - self.started)} after it came in, and "
                f"its deadline ({timeout.explained()}) passed before any of it was computed: "
                "the server is busier than that allows. Retry later, or raise "
                f"{timeout.setting_to_raise(computing=False)}"
            )
        return DeadlineExceeded(
            f"the request had been computing for {seconds(now - self.computing_since)} when its "
            f"deadline ({timeout.explained()}) passed; it was stopped before its next part (a "
            f"tile, or a batch of its rows). Raise {timeout.setting_to_raise(computing=True)}"
        )


def seconds(value: float) -> str:
    """'12.3 s', or '0.005 s' below a second."""
    return f"{value:.1f} s" if value >= 1 else f"{value:.2g} s"


def mark_computing(deadline: float | None, now: float) -> None:
    """Records that a part of the request with this deadline starts computing at `now`."""
    if isinstance(deadline, Deadline) and deadline.computing_since is None:
        deadline.computing_since = now


def exceeded(deadline: float, now: float) -> DeadlineExceeded:
    """The 504 of a request whose `deadline` passed at `now` before its next part ran (a plain
    float deadline, made without the settings, says only that)."""
    if isinstance(deadline, Deadline):
        return deadline.exceeded(now)
    return DeadlineExceeded(
        "the request's deadline passed before its next part was computed: raise "
        "VAE_REQUEST_TIMEOUT_S"
    )

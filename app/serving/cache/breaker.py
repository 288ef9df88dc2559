"""CircuitBreaker: stops callers from waiting on a dependency that keeps failing.

Closed, calls go through and consecutive failures are counted. After `failure_threshold` of
them in a row it opens: for `reset_timeout_s` every call is refused at once, without touching the
dependency. Then it is half-open: exactly one trial call goes through; success closes the breaker,
failure opens it for another cool-down. The breaker itself never sleeps or does I/O, so it is
equally usable from sync and async code (the event loop makes its state changes atomic).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a single half-open trial."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout_s <= 0:
            raise ValueError("reset_timeout_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker past its cool-down reports half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def seconds_until_trial(self) -> float:
        """How long until a trial call is allowed (0 when calls may go through now)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go through now. A True in half-open hands out the one trial:
        its caller must report `record_success`, `record_failure` or `release`."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._set_state(BreakerState.HALF_OPEN)
        if self._trial_out:
            return False
        self._trial_out = True
        return True

    def record_success(self) -> None:
        """A call succeeded: the breaker closes and the failure count resets."""
        self._failures = 0
        self._trial_out = False
        if self._state is not BreakerState.CLOSED:
            self._set_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call failed: counts towards opening, or reopens a half-open breaker."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._trial_out = False
            self._open()
        elif self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()
        # already open: calls that started before it opened change nothing

    def release(self) -> None:
        """A call that was allowed ended with neither verdict (it was cancelled): frees the
        half-open trial so another caller can try."""
        if self._state is BreakerState.HALF_OPEN:
            self._trial_out = False

    def _cooled_down(self) -> bool:
        return self._clock() >= self._opened_at + self.reset_timeout_s

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set_state(BreakerState.OPEN)

    def _set_state(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self.on_change is not None:
            self.on_change(state)

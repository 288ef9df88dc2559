"""CircuitBreaker: opening, cool-down, the single half-open trial, recovery."""

from __future__ import annotations

import pytest

from app.serving.cache.breaker import BreakerState, CircuitBreaker


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    threshold: int = 3, reset: float = 2.0
) -> tuple[CircuitBreaker, FakeClock, list[BreakerState]]:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(threshold, reset, clock=clock, on_change=changes.append)
    return breaker, clock, changes


def test_closed_breaker_lets_every_call_through() -> None:
    breaker, _, changes = make()
    assert all(breaker.allow() for _ in range(10))
    assert breaker.state is BreakerState.CLOSED
    assert changes == []


def test_opens_after_threshold_consecutive_failures_only() -> None:
    breaker, _, changes = make(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the run
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]


def test_open_breaker_refuses_calls_until_the_cool_down_ends() -> None:
    breaker, clock, _ = make(threshold=1, reset=2.0)
    breaker.record_failure()
    assert not breaker.allow()
    assert breaker.seconds_until_trial() == pytest.approx(2.0)
    clock.now += 1.9
    assert not breaker.allow()
    assert breaker.seconds_until_trial() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.seconds_until_trial() == 0.0


def test_half_open_hands_out_exactly_one_trial() -> None:
    breaker, clock, changes = make(threshold=1, reset=1.0)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    assert not breaker.allow()
    assert not breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_successful_trial_closes_the_breaker() -> None:
    breaker, clock, changes = make(threshold=2, reset=1.0)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(5))
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_trial_reopens_for_a_fresh_cool_down() -> None:
    breaker, clock, changes = make(threshold=3, reset=1.0)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5.0
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 0.99
    assert not breaker.allow()
    clock.now += 0.01
    assert breaker.allow()
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
    ]


def test_released_trial_lets_another_caller_try() -> None:
    breaker, clock, _ = make(threshold=1, reset=1.0)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.release()  # the trial's caller was cancelled
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_late_failures_of_calls_started_before_opening_do_not_extend_the_cool_down() -> None:
    breaker, clock, _ = make(threshold=1, reset=1.0)
    breaker.record_failure()
    clock.now += 0.5
    breaker.record_failure()
    clock.now += 0.5
    assert breaker.allow()


def test_release_outside_half_open_changes_nothing() -> None:
    breaker, _, changes = make(threshold=1)
    breaker.release()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    breaker.release()
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_rejects_meaningless_settings(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, reset)

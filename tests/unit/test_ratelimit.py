"""The per-client token bucket on a fake clock, and who counts as the client."""

from __future__ import annotations

import pytest

from app.api.ratelimit import RateLimiter, TokenBucket, client_key, is_limited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token at 2 a second
    assert bucket.take(0.25) == pytest.approx(0.25)  # waiting takes nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_a_bucket_refills_up_to_its_burst_only() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert bucket.take(0.0, cost=2) == 0.0
    assert bucket.take(3600.0) == 0.0 and bucket.take(3600.0) == 0.0
    assert bucket.take(3600.0) == pytest.approx(1.0)


def test_clients_have_buckets_of_their_own() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    assert limiter.check("a") == 0 and limiter.check("a") == 0
    assert limiter.check("a") == pytest.approx(1.0)
    assert limiter.check("b") == 0 and limiter.check("b") == 0
    clock.now += 1.0
    assert limiter.check("a") == 0
    assert limiter.check("a") == pytest.approx(1.0)


def test_the_number_of_buckets_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_clients=3)
    for client in ("a", "b", "c"):
        assert limiter.check(client) == 0
    assert limiter.check("a") > 0  # seen again: now the most recent
    assert limiter.check("d") == 0  # drops b, the least recently seen
    assert len(limiter._buckets) == 3 and "b" not in limiter._buckets
    assert limiter.check("a") > 0  # a kept its empty bucket


def test_a_limiter_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0.0, burst=1)
    with pytest.raises(ValueError):
        RateLimiter(rate=1.0, burst=0)


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return {"type": "http", "client": (peer, 5000), "headers": headers}


def test_the_client_is_the_peer_unless_proxies_are_trusted() -> None:
    assert client_key(scope("10.0.0.9", "1.2.3.4"), trusted_proxies=0) == "10.0.0.9"
    # nginx appends the address it saw: the entries left of it are the client's own word
    assert client_key(scope("10.0.0.9", "6.6.6.6, 1.2.3.4"), trusted_proxies=1) == "1.2.3.4"
    assert client_key(scope("10.0.0.9", "1.2.3.4, 10.0.0.2"), trusted_proxies=2) == "1.2.3.4"
    assert client_key(scope("10.0.0.9"), trusted_proxies=1) == "10.0.0.9"
    assert client_key({"type": "http", "headers": []}, trusted_proxies=0) == "unknown"


@pytest.mark.parametrize(
    ("method", "path", "limited"),
    [
        ("POST", "/encode", True),
        ("POST", "/decode", True),
        ("POST", "/sample", True),
        ("POST", "/interpolate", True),
        ("POST", "/jobs", True),
        ("PUT", "/datasets/faces", True),
        ("POST", "/remote/taesd/decode", True),
        ("POST", "/remote/taesd/encode", True),
        ("GET", "/sample", False),
        ("GET", "/jobs", False),
        ("POST", "/jobs/abc/cancel", False),
        ("GET", "/datasets/faces", False),
        ("GET", "/models", False),
        ("GET", "/remote/taesd/decode", False),
        ("GET", "/metrics", False),
    ],
)
def test_only_the_expensive_routes_are_limited(method: str, path: str, limited: bool) -> None:
    assert is_limited({"method": method, "path": path}) is limited

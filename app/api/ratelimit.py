"""Per-client rate limiting of the expensive routes: a token bucket per client, configurable.

Routes: POST /encode, /decode, /sample, /interpolate, /jobs, /remote/{model}/decode and /encode,
and PUT /datasets/{name}. Each client has a bucket of `VAE_RATE_LIMIT_BURST` tokens refilled at
`VAE_RATE_LIMIT_PER_S` tokens a second (0, the default, turns limiting off). Over the limit: 429
with Retry-After and the usual JSON error, counted in `vae_rejections_total{reason="rate_limited"}`.

Cost: one token per request, not per sample. The middleware decides before the body is read, so a
client over its limit costs no parsing at all, and VAE_MAX_ITEMS already caps what one request may
ask for: a client's work is at most PER_S x MAX_ITEMS samples a second. Per-sample cost would need
the body parsed first, which is the work the limit is there to avoid.

The client is the peer address. Behind proxies (the compose file's nginx gateway) set
`VAE_RATE_LIMIT_TRUSTED_PROXIES` to their number: the client is then the X-Forwarded-For entry that
many hops from the right, the one the outermost trusted proxy saw (nginx appends the peer it saw
to whatever the client sent, so the entries further left are the client's own word). Note that
uvicorn itself rewrites the peer from X-Forwarded-For for connections from FORWARDED_ALLOW_IPS
(127.0.0.1 by default).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from app import metrics
from app.api.errors import error_response

LIMITED_POSTS = frozenset({"/encode", "/decode", "/sample", "/interpolate", "/jobs"})
MAX_CLIENTS = 65536  # buckets kept; the least recently seen client's is dropped past this


class TokenBucket:
    """`burst` tokens, refilled continuously at `rate` a second."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Takes `cost` tokens and returns 0, or returns the seconds until they will be there
        (taking nothing)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """A token bucket per client key, at most `max_clients` of them (least recently seen
    dropped first, which only ever gives that client a full bucket again)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, client: str, cost: float = 1.0) -> float:
        """0 when `client` may go ahead (its tokens taken), else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket.take(now, cost)


def client_key(scope: Scope, trusted_proxies: int) -> str:
    """The peer address, or with `trusted_proxies` > 0 the X-Forwarded-For entry that many hops
    from the right (the peer when the header has fewer entries)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if trusted_proxies <= 0:
        return peer
    forwarded = [
        part.strip()
        for name, value in scope.get("headers", ())
        if name == b"x-forwarded-for"
        for part in value.decode("latin-1").split(",")
        if part.strip()
    ]
    return forwarded[-trusted_proxies] if len(forwarded) >= trusted_proxies else peer


def is_limited(scope: Scope) -> bool:
    """True for the expensive routes."""
    method, path = scope.get("method"), scope.get("path", "")
    if method == "POST":
        path = path.rstrip("/")
        return path in LIMITED_POSTS or path.startswith("/remote/")
    return method == "PUT" and path.startswith("/datasets/")


class RateLimitMiddleware:
    """429 with Retry-After for a client past its bucket on the expensive routes."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, trusted_proxies: int = 0) -> None:
        self.app = app
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_limited(scope):
            wait = self.limiter.check(client_key(scope, self.trusted_proxies))
            if wait > 0:
                metrics.REJECTIONS.labels("", "", "rate_limited").inc()
                retry_after = max(1, math.ceil(wait))
                response = error_response(
                    429,
                    "rate_limited",
                    f"too many requests from this client: at most {self.limiter.rate:g} a "
                    f"second (bursts of {self.limiter.burst:g}); retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

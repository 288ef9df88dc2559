"""Steady client load on a running service from background threads, for the tests that break
something under load and count what was lost: `BackgroundLoad` (what one request is, the
subclass says) and `Load` (/decode, /encode and /sample, counted by model and status)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Self

import httpx
import numpy as np

LATENT_DIM = 32  # the shipped model's
ROUTES = ("decode", "encode", "sample")
DEFAULT = "default"


class BackgroundLoad:
    """Client threads, each with its own httpx client and seeded rng, calling `send` in a loop
    until stopped (or until `limit` requests in all). A transport error is kept as a failure:
    a lost request. Subclasses say what one request is and what of its answer they keep."""

    def __init__(self, url: str, threads: int, limit: int | None = None) -> None:
        self.url = url
        self.limit = limit
        self.failures: list[str] = []
        self.answered = 0
        self.last_answer_at: dict[int, float] = {}  # by thread: when its last request finished
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def send(self, http: httpx.Client, rng: np.random.Generator, turn: int) -> None:
        """Sends request number `turn` and records its answer (under `self._lock`)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def count(self) -> int:
        """Requests finished so far (answered or lost)."""
        with self._lock:
            return self.answered + len(self.failures)

    def wait_for(self, more: int, timeout: float = 60) -> None:
        """Waits until `more` further requests have finished."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if not any(thread.is_alive() for thread in self._threads):
                raise AssertionError(f"the load stopped before {more} more answers: {self.state()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{more} more answers not in {timeout}s: {self.state()}")
            time.sleep(0.05)

    def state(self) -> str:
        """Its threads, whether they run, and how long ago each last finished a request."""
        now = time.monotonic()
        with self._lock:
            ages = {i: f"{now - at:.1f}s ago" for i, at in sorted(self.last_answer_at.items())}
            return (
                f"load on {self.url}: {self.answered} answered, {len(self.failures)} lost "
                f"(last: {self.failures[-3:]}); threads alive "
                f"{[t.is_alive() for t in self._threads]}; last finished {ages}"
            )

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            turn = seed
            while not self._stop.is_set() and (self.limit is None or self.count() < self.limit):
                try:
                    self.send(http, rng, turn)
                except Exception as error:  # a transport error, or a bug: lost, not silent
                    with self._lock:
                        self.failures.append(f"request {turn}: {error!r}")
                        self.last_answer_at[seed] = time.monotonic()
                    continue
                finally:
                    turn += 1
                with self._lock:
                    self.answered += 1
                    self.last_answer_at[seed] = time.monotonic()


def body_for(route: str, ref: str | None, rng: np.random.Generator, digits: np.ndarray) -> Any:
    """A small valid request body for `route`, naming the model `ref` (the default when None)."""
    body: dict[str, Any]
    if route == "decode":
        body = {"latents": rng.standard_normal((1, LATENT_DIM)).round(4).tolist()}
    elif route == "encode":
        digit = digits[int(rng.integers(0, len(digits)))]
        body = {"arrays": [(digit.astype(np.float64) / 255.0).round(4).tolist()]}
    else:
        body = {"n": 2, "seed": int(rng.integers(0, 1000))}
    if ref is not None:
        body["model"] = ref
    return body


class Load(BackgroundLoad):
    """Client threads looping over /decode, /encode and /sample until stopped (or until `limit`
    answers in all, when given). Every answer is counted by (model ref, status)."""

    def __init__(
        self,
        url: str,
        digits: np.ndarray,
        refs: Sequence[str | None] = (None,),
        threads: int = 3,
        limit: int | None = None,
    ) -> None:
        super().__init__(url, threads, limit)
        self.digits = digits
        self.refs = list(refs)
        self.counts: Counter[tuple[str, int]] = Counter()

    def by_status(self, ref: str | None = None) -> dict[int, int]:
        """Answers by status, for one model ref or (None) for all."""
        with self._lock:
            found: Counter[int] = Counter()
            for (seen, status), n in self.counts.items():
                if ref is None or seen == ref:
                    found[status] += n
            return dict(sorted(found.items()))

    def summary(self) -> dict[str, Any]:
        """Counts by ref and status, and the lost requests."""
        with self._lock:
            refs: dict[str, dict[int, int]] = {}
            for (ref, status), n in sorted(self.counts.items()):
                refs.setdefault(ref, {})[status] = n
            return {"by_ref": refs, "lost": len(self.failures)}

    def send(self, http: httpx.Client, rng: np.random.Generator, turn: int) -> None:
        route = ROUTES[turn % len(ROUTES)]
        ref = self.refs[(turn // len(ROUTES)) % len(self.refs)]
        reply = http.post(f"/{route}", json=body_for(route, ref, rng, self.digits))
        with self._lock:
            self.counts[(ref or DEFAULT, reply.status_code)] += 1

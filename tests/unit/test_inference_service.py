"""The service every adapter shares: the latent cache first, identical rows in flight computed
once, and a request that waited on another's computation is not failed by that request going
away."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.arrays import FloatArray
from app.config import Settings
from app.serving.cache.memory import LatentCache, MemoryBackend
from app.serving.inference import InferenceService

WIDTH = 3


class BlockingEncoder:
    """A fake encoder: each call records its rows and waits until released, then gives row i
    the moments (i, -i)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, rows: list[int]) -> tuple[FloatArray, FloatArray]:
        self.calls.append(rows)
        await self.release.wait()
        mean = np.array([[float(row)] * WIDTH for row in rows], np.float32)
        return mean, -mean


def service() -> InferenceService:
    return InferenceService(LatentCache(MemoryBackend(100), 60.0), Settings())


async def _until(condition: object) -> None:
    for _ in range(100):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_identical_rows_in_flight_are_computed_once() -> None:
    async def scenario() -> None:
        shared, encoder = service(), BlockingEncoder()
        first = asyncio.create_task(shared.moments(["k"], WIDTH, encoder))
        await _until(lambda: encoder.calls)
        second = asyncio.create_task(shared.moments(["k", "k"], WIDTH, encoder))
        await asyncio.sleep(0)
        encoder.release.set()
        a, b = await first, await second
        assert encoder.calls == [[0]]
        assert np.array_equal(b.mean, np.repeat(a.mean, 2, axis=0))

    asyncio.run(scenario())


def test_a_waiter_computes_the_rows_itself_when_their_owner_is_cancelled() -> None:
    async def scenario() -> None:
        shared, encoder = service(), BlockingEncoder()
        owner = asyncio.create_task(shared.moments(["k"], WIDTH, encoder))
        await _until(lambda: encoder.calls)
        waiter = asyncio.create_task(shared.moments(["x", "k", "k"], WIDTH, encoder))
        await _until(lambda: len(encoder.calls) == 2)  # "x" is its own; "k" is the owner's
        owner.cancel()  # its client hung up
        await asyncio.sleep(0)
        encoder.release.set()
        got = await waiter
        assert owner.cancelled()
        assert encoder.calls == [[0], [0], [1]]
        assert got.mean[1].tolist() == [1.0] * WIDTH and got.mean[2].tolist() == [1.0] * WIDTH
        assert got.cached == [False, False, False]

    asyncio.run(scenario())


def test_a_waiter_that_is_cancelled_itself_stays_cancelled() -> None:
    async def scenario() -> None:
        shared, encoder = service(), BlockingEncoder()
        owner = asyncio.create_task(shared.moments(["k"], WIDTH, encoder))
        await _until(lambda: encoder.calls)
        waiter = asyncio.create_task(shared.moments(["k"], WIDTH, encoder))
        await asyncio.sleep(0)
        waiter.cancel()
        encoder.release.set()
        await owner
        await asyncio.gather(waiter, return_exceptions=True)
        assert waiter.cancelled() and encoder.calls == [[0]]

    asyncio.run(scenario())


def test_a_requests_deadline_grows_with_its_pixels_up_to_the_cap() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        request_timeout_s=10,
        timeout_per_megapixel_s=30,
        max_request_timeout_s=600,
    )
    shared = InferenceService(LatentCache(MemoryBackend(100), 60.0), settings)
    flat = shared.deadline()
    assert flat - flat.started == pytest.approx(10)
    image = shared.deadline(2048 * 2048)
    assert image - image.started == pytest.approx(10 + 30 * 4.194304)
    huge = shared.deadline(20_000 * 20_000)
    assert huge - huge.started == pytest.approx(600)
    assert huge.computing_since is None  # nothing of it has run yet

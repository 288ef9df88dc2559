"""What every model's adapter shares: the latent cache, looked up first for a request's images,
with identical images in flight encoded once, and the settings (limits, tiling, the deadline).

Built once, in the app's lifespan, and handed to the registry, which gives it to the adapter of
each version it loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.serving.cache.memory import LatentCache
from app.serving.deadlines import Deadline, Timeout

Moments = tuple[FloatArray, FloatArray]
"""Means and log-variances, one flat row [width] per image."""
ComputeMoments = Callable[[list[int]], Awaitable[Moments]]


@dataclass
class CachedMoments:
    """A batch's means and log-variances [N, width], and which rows the cache answered."""

    mean: FloatArray
    logvar: FloatArray
    cached: list[bool]


class InferenceService:
    """The latent cache with in-flight deduplication, and the settings every adapter reads."""

    def __init__(self, cache: LatentCache, settings: Settings) -> None:
        self.cache = cache
        self.settings = settings
        self._in_flight: dict[str, asyncio.Future[Moments]] = {}

    def deadline(self, pixels: int = 0) -> Deadline:
        """When a request started now must be answered by (a time.monotonic() value):
        VAE_REQUEST_TIMEOUT_S, plus VAE_TIMEOUT_PER_MEGAPIXEL_S for each megapixel of the image
        `pixels` it computes (in or out), capped at VAE_MAX_REQUEST_TIMEOUT_S."""
        return Deadline(Timeout.of(self.settings, pixels))

    async def moments(self, keys: list[str], width: int, compute: ComputeMoments) -> CachedMoments:
        """The moments of a batch whose rows have these cache `keys`: the cache first, then
        `compute(rows)` for the rows it misses (identical keys requested at the same moment are
        computed once), stored back in the cache."""
        found = await self.cache.lookup(keys, width)
        mean = np.empty((len(keys), width), dtype=np.float32)
        logvar = np.empty((len(keys), width), dtype=np.float32)
        cached = [entry is not None for entry in found]
        waits: dict[int, asyncio.Future[Moments]] = {}
        todo: dict[str, int] = {}  # key -> first index needing it
        for index, (key, entry) in enumerate(zip(keys, found, strict=True)):
            if entry is not None:
                mean[index], logvar[index] = entry
            elif key in self._in_flight:
                waits[index] = self._in_flight[key]
            elif key not in todo:
                todo[key] = index
        if todo:
            await self._compute_misses(todo, compute, mean, logvar)
        orphans = await self._await_shared(waits, keys, mean, logvar)
        if orphans:  # the requests computing them went away: compute them here
            await self._compute_misses(orphans, compute, mean, logvar)
            todo.update(orphans)
        for index, key in enumerate(keys):
            if not cached[index] and key in todo and todo[key] != index:
                mean[index], logvar[index] = mean[todo[key]], logvar[todo[key]]
        return CachedMoments(mean, logvar, cached)

    @staticmethod
    async def _await_shared(
        waits: dict[int, asyncio.Future[Moments]],
        keys: list[str],
        mean: FloatArray,
        logvar: FloatArray,
    ) -> dict[str, int]:
        """Fills the rows another request is computing; returns those (key -> first index) whose
        computation was cancelled because that request went away (its client hung up, its
        deadline passed): they are not this request's failure."""
        orphans: dict[str, int] = {}
        for index, future in waits.items():
            try:
                mean[index], logvar[index] = await asyncio.shield(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not future.cancelled() or (task is not None and task.cancelling()):
                    raise  # this request itself is cancelled
                orphans.setdefault(keys[index], index)
        return orphans

    async def _compute_misses(
        self, todo: dict[str, int], compute: ComputeMoments, mean: FloatArray, logvar: FloatArray
    ) -> None:
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in todo}
        self._in_flight.update(futures)
        try:
            out_mean, out_logvar = await compute(list(todo.values()))
            for position, (key, index) in enumerate(todo.items()):
                mean[index], logvar[index] = out_mean[position], out_logvar[position]
                futures[key].set_result((out_mean[position], out_logvar[position]))
            await self.cache.store(list(todo), out_mean, out_logvar)
        except BaseException as error:
            for future in futures.values():
                _fail(future, error)
            raise
        finally:
            for key in todo:
                self._in_flight.pop(key, None)


def _fail(future: asyncio.Future[Moments], error: BaseException) -> None:
    """Passes an encoder failure to requests waiting on the same image."""
    if future.done():
        return
    if isinstance(error, Exception):
        future.set_exception(error)
        future.exception()  # marks it retrieved: there may be no waiter at all
    else:
        future.cancel()

"""Where a video graph's engine calls queue: a `Lane` runs at most `slots` calls at once (one by
default, VAE_BATCHES_IN_FLIGHT), first come first served, in worker threads of its own, so the
clips of concurrent requests take turns chunk by chunk and every stream keeps moving. A call
whose caller went away (its client hung up) keeps its slot until the engine has finished it: an
engine call cannot be interrupted, and another started beside it would only slow both down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from app import metrics
from app.arrays import FloatArray
from app.runtime.graph import Graph
from app.serving.deadlines import exceeded, mark_computing

Outputs = dict[str, FloatArray]


class LaneClosed(RuntimeError):
    """The version was unloaded while a clip was still being walked (a reader that paused past
    the registry's quiet time): the rest of the clip is not computed."""


class Lane:
    """The engine calls of one graph (or of a video model's pair of graphs: the first chunk's
    and the later chunks'), at most `slots` at a time, in arrival order."""

    def __init__(self, model: str, which: str, slots: int = 1) -> None:
        self.model = model
        self.which = which
        self._slots = asyncio.Semaphore(slots)
        self._executor = ThreadPoolExecutor(slots, thread_name_prefix=f"video-{which}")
        self._calls = 0  # waiting for a slot or computing
        self.ran = 0  # calls the engine has run, for tests and metrics
        self._compute = metrics.COMPUTE_SECONDS.labels(model, which)

    @property
    def busy(self) -> bool:
        """Whether a call is waiting for a slot or computing."""
        return self._calls > 0

    async def run(
        self, graph: Graph, feeds: dict[str, np.ndarray], deadline: float | None = None
    ) -> Outputs:
        """`graph`'s outputs for `feeds`, once a slot is free; DeadlineExceeded (504) when the
        deadline passes before the call starts."""
        loop = asyncio.get_running_loop()
        self._calls += 1
        try:
            await self._slots.acquire()
            try:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    metrics.REJECTIONS.labels(self.model, self.which, "deadline").inc()
                    raise exceeded(deadline, now)
                mark_computing(deadline, now)
                try:
                    call = self._executor.submit(self._timed, graph, feeds)
                except RuntimeError:  # shut down
                    raise LaneClosed(f"model {self.model} was unloaded during the clip") from None
            except BaseException:
                self._slots.release()
                raise
            call.add_done_callback(lambda _: _call_soon(loop, self._slots.release))
            outcome = asyncio.wrap_future(call)
            try:
                return await asyncio.shield(outcome)
            except asyncio.CancelledError:
                outcome.add_done_callback(_retrieved)  # nobody waits for it now
                raise
        finally:
            self._calls -= 1

    def _timed(self, graph: Graph, feeds: dict[str, np.ndarray]) -> Outputs:
        started = time.monotonic()
        outputs = graph.run_feeds(feeds)
        self._compute.observe(time.monotonic() - started)
        self.ran += 1
        return outputs

    def stop(self) -> None:
        """Lets running calls finish in their threads; no more start."""
        self._executor.shutdown(wait=False)


def _call_soon(loop: asyncio.AbstractEventLoop, release: Callable[[], None]) -> None:
    """Frees a slot on the lane's loop (from the worker thread); nothing once the loop closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(release)


def _retrieved(outcome: asyncio.Future[Outputs]) -> None:
    """Marks an abandoned call's failure as seen (asyncio would log it as never retrieved)."""
    if not outcome.cancelled():
        outcome.exception()

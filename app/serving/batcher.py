"""Micro-batching: concurrent requests to one graph share ONNX Runtime calls.

One `MicroBatcher` per (model, version, graph). A batch goes out when the samples queued behind
the oldest request fill it, or when the oldest request has waited `max_delay`, or (with
`dispatch_when_idle`, the default) at once when no batch is running and the last batch was small:
under light load waiting only adds latency. Under load the window still applies: closed-loop
clients answered by the last batch need the event loop for a moment before they send again, and
a batch sent before they have would split them into small out-of-step groups (measured: smaller
batches, and a p99 ten times the median at 256 clients). Batch size counts
samples (rows), not requests; a request larger than the batch is split. Requests of different
shapes never share a batch, and `max_rows_for` may cap a batch of one shape by what its rows hold
(a spatial model's image pixels). The graph runs in a worker thread so the event loop stays free; a
finished batch frees its slot before its callers are woken, so the next batch is computing
while the event loop renders and sends this one's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from app import metrics
from app.serving.deadlines import DeadlineExceeded as DeadlineExceeded
from app.serving.deadlines import exceeded, mark_computing

logger = logging.getLogger(__name__)

Outputs = dict[str, NDArray[np.float32]]
LEAVING_TURNS = 3
CLIENT_GONE = "client_gone"
"""The cancellation message of a caller whose client went away (app/api/disconnect.py): its
queued requests are counted as rejections for that reason."""
RunBatch = Callable[[NDArray[np.float32]], Outputs]


class QueueFull(RuntimeError):
    """The queue holds as many samples as it may: the caller should retry later (429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("the inference queue is full; retry shortly")
        self.retry_after = retry_after


class LargerThanQueue(ValueError):
    """A request with more samples than the queue ever holds: retrying cannot help (413)."""


@dataclass(eq=False)
class _Pending:
    inputs: NDArray[np.float32]
    future: asyncio.Future[Outputs]
    enqueued: float
    deadline: float | None
    key: tuple[int, ...] = field(init=False)
    queued: bool = True  # counted in the queue's samples (False once taken or abandoned)

    def __post_init__(self) -> None:
        self.key = tuple(self.inputs.shape[1:])

    @property
    def size(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class BatcherLabels:
    """How the batcher's metrics are labelled (never an id)."""

    model: str
    graph: str


class MicroBatcher:
    """Queues requests for one graph and runs them in shared batches."""

    def __init__(
        self,
        run: RunBatch,
        labels: BatcherLabels,
        max_batch_size: int = 64,
        max_delay: float = 0.002,
        max_queue: int = 2048,
        in_flight: int = 1,
        dispatch_when_idle: bool = True,
        max_rows_for: Callable[[tuple[int, ...]], int] | None = None,
    ) -> None:
        self._run = run
        self._max_rows_for = max_rows_for
        self.dispatch_when_idle = dispatch_when_idle
        self.labels = labels
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.max_queue = max_queue
        self._queue: deque[_Pending] = deque()
        self._queued_samples = 0
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(in_flight)
        self._executor = ThreadPoolExecutor(in_flight, thread_name_prefix=f"ort-{labels.graph}")
        self._loop_task: asyncio.Task[None] | None = None
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._mean_batch_seconds = 0.01
        self._running = 0  # batches handed to the worker thread and not finished
        self._last_rows = 0  # rows of the last batch sent: how loaded the batcher is
        self._pending_gauge = metrics.PENDING_REQUESTS.labels(labels.model, labels.graph)

    def batch_limit(self, key: tuple[int, ...]) -> int:
        """The most rows of shape `key` one batch takes: `max_batch_size`, or fewer where
        `max_rows_for` caps a batch by what its rows hold (a spatial model's pixels)."""
        if self._max_rows_for is None:
            return self.max_batch_size
        return max(1, min(self.max_batch_size, self._max_rows_for(key)))

    @property
    def queued_samples(self) -> int:
        """Samples waiting for a batch."""
        return self._queued_samples

    @property
    def busy(self) -> bool:
        """Whether requests are queued or a batch is computing."""
        return self._queued_samples > 0 or self._running > 0

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._loop(), name=f"batcher-{self.labels}"
            )

    async def stop(self) -> None:
        """Stops the loop; queued requests fail, batches already running finish."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the model was unloaded"))
        self._queued_samples = 0
        self._pending_gauge.set(0)
        if self._batch_tasks:
            await asyncio.gather(*self._batch_tasks, return_exceptions=True)
        self._executor.shutdown(wait=False)

    async def submit(self, inputs: NDArray[np.float32], deadline: float | None = None) -> Outputs:
        """Runs `inputs` (rows = samples) through the graph as part of a batch.

        `deadline` is a time.monotonic() value; past it the request is dropped and answered with
        DeadlineExceeded. Raises QueueFull when the queue cannot take the samples now, and
        LargerThanQueue when it never could.
        """
        if self._loop_task is None:
            self.start()
        size = int(inputs.shape[0])
        if size > self.max_queue:
            metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, "too_large").inc()
            raise LargerThanQueue(
                f"this request's {size} samples are more than the inference queue ever holds "
                f"({self.max_queue}, VAE_MAX_QUEUE): send fewer at a time"
            )
        if self._queued_samples + size > self.max_queue:
            # Callers whose clients have just gone are cancelled a loop turn or two after their
            # disconnect was read: let them leave before refusing a live one.
            for _ in range(LEAVING_TURNS):
                await asyncio.sleep(0)
        if self._queued_samples + size > self.max_queue:
            metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, "queue_full").inc()
            raise QueueFull(retry_after=self._retry_after())
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        step = self.batch_limit(tuple(inputs.shape[1:]))
        chunks = [inputs[i : i + step] for i in range(0, size, step)]
        items = [_Pending(chunk, loop.create_future(), now, deadline) for chunk in chunks]
        self._queue.extend(items)
        self._queued_samples += size
        self._pending_gauge.set(self._queued_samples)
        self._wakeup.set()
        try:
            if len(items) == 1:  # the common case: no gather, one hop fewer on the event loop
                return await items[0].future
            parts = await asyncio.gather(*(item.future for item in items))
        except BaseException as error:
            self._abandon(items, _reason(error))
            raise
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _abandon(self, items: list[_Pending], reason: str) -> None:
        """The caller gave up (its client went away, or it was cancelled): its chunks still
        queued leave the queue's count at once, freeing their slots, and are never computed."""
        freed = 0
        for item in items:
            item.future.cancel()
            if item.queued:
                item.queued = False
                freed += item.size
        if freed:
            self._queued_samples -= freed
            self._pending_gauge.set(self._queued_samples)
            metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, reason).inc()

    def _retry_after(self) -> float:
        batches_ahead = self._queued_samples / self.max_batch_size
        return max(1.0, round(batches_ahead * self._mean_batch_seconds, 1))

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            self._launch(batch)

    def _discard_head(self) -> None:
        """Drops finished (cancelled) and expired requests at the head of the queue."""
        now = time.monotonic()
        while self._queue:
            head = self._queue[0]
            if not head.queued:  # abandoned: already uncounted
                self._queue.popleft()
                continue
            if head.future.done():
                reason = "cancelled"
            elif head.deadline is not None and head.deadline <= now:
                head.future.set_exception(exceeded(head.deadline, now))
                reason = "deadline"
            else:
                return
            self._queue.popleft()
            head.queued = False
            self._queued_samples -= head.size
            metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, reason).inc()

    async def _next_batch(self) -> list[_Pending]:
        while True:
            self._discard_head()
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            oldest = self._queue[0]
            ready_at = oldest.enqueued + self.max_delay
            now = time.monotonic()
            light = self._last_rows * 4 <= self.max_batch_size
            idle = self.dispatch_when_idle and self._running == 0 and light
            full = self._samples_like(oldest.key) >= self.batch_limit(oldest.key)
            if idle or now >= ready_at or full:
                return self._take(oldest.key)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=ready_at - now)

    def _samples_like(self, key: tuple[int, ...]) -> int:
        total = 0
        limit = self.batch_limit(key)
        for item in self._queue:
            if item.key == key and item.queued and not item.future.done():
                total += item.size
                if total >= limit:
                    break
        return total

    def _take(self, key: tuple[int, ...]) -> list[_Pending]:
        """Removes the oldest requests of shape `key` that fit in one batch, in FIFO order."""
        batch: list[_Pending] = []
        kept: deque[_Pending] = deque()
        total = 0
        limit = self.batch_limit(key)
        now = time.monotonic()
        while self._queue and total < limit:
            item = self._queue.popleft()
            if not item.queued:  # abandoned: already uncounted
                continue
            if item.key != key or total + item.size > limit:
                kept.append(item)
                continue
            item.queued = False
            self._queued_samples -= item.size
            if item.future.done():
                metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, "cancelled").inc()
            elif item.deadline is not None and item.deadline <= now:
                item.future.set_exception(exceeded(item.deadline, now))
                metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, "deadline").inc()
            else:
                batch.append(item)
                total += item.size
        kept.extend(self._queue)
        self._queue = kept
        self._pending_gauge.set(self._queued_samples)
        return batch

    def _launch(self, batch: list[_Pending]) -> None:
        """Hands the batch to the worker thread now; a task awaits it and wakes the callers."""
        live = [item for item in batch if not item.future.done()]
        if not live:
            self._slots.release()
            return
        inputs = live[0].inputs if len(live) == 1 else np.concatenate([i.inputs for i in live])
        started = time.monotonic()
        for item in live:
            mark_computing(item.deadline, started)
            metrics.QUEUE_SECONDS.labels(self.labels.model, self.labels.graph).observe(
                started - item.enqueued
            )
        metrics.BATCH_SIZE.labels(self.labels.model, self.labels.graph).observe(len(inputs))
        self._last_rows = len(inputs)
        self._running += 1
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._executor, self._run, inputs)
        task = loop.create_task(self._finish(live, len(inputs), running, started))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _finish(
        self, live: list[_Pending], rows: int, running: asyncio.Future[Outputs], started: float
    ) -> None:
        try:
            outputs = await running
        except Exception as error:  # every caller in the batch hears of it; the loop goes on
            logger.exception("batch of %d on %s failed", rows, self.labels)
            for item in live:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        finally:
            # Free the slot before waking the callers: the loop hands the next batch to the
            # worker first, which computes it while the event loop renders and sends this one.
            self._running -= 1
            self._slots.release()
        elapsed = time.monotonic() - started
        self._mean_batch_seconds = 0.9 * self._mean_batch_seconds + 0.1 * elapsed
        metrics.COMPUTE_SECONDS.labels(self.labels.model, self.labels.graph).observe(elapsed)
        offset = 0
        for item in live:
            part = slice(offset, offset + item.size)
            offset += item.size
            if not item.future.done():
                item.future.set_result({name: value[part] for name, value in outputs.items()})


def _reason(error: BaseException) -> str:
    """Why a caller left: `client_gone` when its client went away, else `cancelled`."""
    if isinstance(error, asyncio.CancelledError) and CLIENT_GONE in error.args:
        return CLIENT_GONE
    return "cancelled"


class DirectRunner:
    """Batching turned off: every request runs on its own, in a bounded pool of threads; a
    request larger than `max_rows_for(shape)` rows (a spatial model's pixel budget) runs as
    several calls one after another, so one request never holds more in the engine than a
    batch may."""

    def __init__(
        self,
        run: RunBatch,
        labels: BatcherLabels,
        in_flight: int = 1,
        max_rows_for: Callable[[tuple[int, ...]], int] | None = None,
    ) -> None:
        self._run = run
        self.labels = labels
        self._max_rows_for = max_rows_for
        self._executor = ThreadPoolExecutor(in_flight, thread_name_prefix=f"ort-{labels.graph}")
        self.queued_samples = 0
        self._calls = 0  # submitted and not answered

    @property
    def busy(self) -> bool:
        """Whether a request is waiting for a thread or computing."""
        return self._calls > 0

    def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Lets running calls finish in their threads."""
        self._executor.shutdown(wait=False)

    async def submit(self, inputs: NDArray[np.float32], deadline: float | None = None) -> Outputs:
        """Runs `inputs` as one call of its own; a request whose deadline passes while it waits
        for a thread, or between its parts, is dropped (DeadlineExceeded) before computing on."""

        def call() -> Outputs:
            started = time.monotonic()
            outputs = self._run_in_parts(inputs, deadline)
            metrics.COMPUTE_SECONDS.labels(self.labels.model, self.labels.graph).observe(
                time.monotonic() - started
            )
            return outputs

        metrics.BATCH_SIZE.labels(self.labels.model, self.labels.graph).observe(len(inputs))
        self._calls += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        finally:
            self._calls -= 1

    def _run_in_parts(self, inputs: NDArray[np.float32], deadline: float | None) -> Outputs:
        rows = len(inputs)
        limit = rows if self._max_rows_for is None else self._max_rows_for(inputs.shape)
        limit = max(1, limit)
        parts = [
            self._run_part(inputs[start : start + limit], deadline)
            for start in range(0, max(1, rows), limit)
        ]
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _run_part(self, part: NDArray[np.float32], deadline: float | None) -> Outputs:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            metrics.REJECTIONS.labels(self.labels.model, self.labels.graph, "deadline").inc()
            raise exceeded(deadline, now)
        mark_computing(deadline, now)
        return self._run(part)


Runner = MicroBatcher | DirectRunner

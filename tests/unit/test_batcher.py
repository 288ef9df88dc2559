"""MicroBatcher behaviour, with a fake graph (a function of numpy arrays) standing in for ORT."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from app import metrics
from app.serving.batcher import (
    CLIENT_GONE,
    BatcherLabels,
    DeadlineExceeded,
    DirectRunner,
    LargerThanQueue,
    MicroBatcher,
    Outputs,
    QueueFull,
)

LABELS = BatcherLabels(model="test", graph="decoder")


class RecordingGraph:
    """Doubles its input and records every batch it ran; can be held at a gate or made to fail."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False

    def __call__(self, inputs: np.ndarray) -> Outputs:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(inputs.copy())
        if self.fail_next:
            self.fail_next = False
            raise ValueError("the graph failed")
        return {"y": inputs * 2}


def scenario(body: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Makes an async test body a test: it runs in a fresh event loop, for 20 s at the most."""

    def test() -> None:
        asyncio.run(asyncio.wait_for(body(), 20))

    test.__doc__ = body.__doc__
    return test


def recording_batcher(**options: Any) -> tuple[RecordingGraph, MicroBatcher]:
    """A fresh RecordingGraph and a MicroBatcher over it (`options` are the batcher's)."""
    graph = RecordingGraph()
    return graph, MicroBatcher(graph, LABELS, **options)


def rows(n: int, width: int = 2, start: float = 0.0) -> np.ndarray:
    return (np.arange(n * width, dtype=np.float32) + start).reshape(n, width)


async def busy_with_a_first_request(
    graph: RecordingGraph, runner: MicroBatcher | DirectRunner, first: np.ndarray
) -> asyncio.Task[Outputs]:
    """Holds `graph` at its gate and submits `first`; returns once the graph has entered that
    call, so the engine is busy until the test opens the gate. The task is that first request."""
    graph.gate.clear()
    task = asyncio.create_task(runner.submit(first))
    await asyncio.to_thread(graph.entered.wait, 5)
    return task


@scenario
async def test_window_counts_from_the_oldest_request() -> None:
    graph, batcher = recording_batcher(max_batch_size=1000, max_delay=0.1, dispatch_when_idle=False)
    tasks = []
    for i in range(30):  # a steady stream for ~0.6 s, longer than the window
        tasks.append(asyncio.create_task(batcher.submit(rows(1, start=i))))
        await asyncio.sleep(0.02)
    await asyncio.gather(*tasks)
    await batcher.stop()
    # A window restarted by every newcomer would hold everything in one batch.
    assert len(graph.batches) >= 3
    assert sum(len(b) for b in graph.batches) == 30


@scenario
async def test_a_lone_request_on_an_idle_engine_does_not_wait_for_the_window() -> None:
    _, batcher = recording_batcher(max_batch_size=64, max_delay=30.0)
    result = await asyncio.wait_for(batcher.submit(rows(1)), timeout=5)
    await batcher.stop()
    np.testing.assert_array_equal(result["y"], rows(1) * 2)


@scenario
async def test_requests_arriving_while_a_batch_runs_share_the_next_one() -> None:
    graph, batcher = recording_batcher(max_batch_size=64, max_delay=30.0)
    first = await busy_with_a_first_request(graph, batcher, rows(1))
    queued = [asyncio.create_task(batcher.submit(rows(1, start=i))) for i in range(5)]
    await asyncio.sleep(0.05)
    assert batcher.queued_samples == 5
    graph.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *queued), timeout=5)
    await batcher.stop()
    assert [len(b) for b in graph.batches] == [1, 5]


@scenario
async def test_after_a_large_batch_the_window_applies_even_when_idle() -> None:
    graph, batcher = recording_batcher(max_batch_size=8, max_delay=0.5)
    await asyncio.wait_for(batcher.submit(rows(8)), timeout=5)  # a full batch: loaded
    first = asyncio.create_task(batcher.submit(rows(1)))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(batcher.submit(rows(1, start=1)))
    await asyncio.wait_for(asyncio.gather(first, second), timeout=5)
    await batcher.stop()
    assert [len(b) for b in graph.batches] == [8, 2]  # the two waited for each other


@scenario
async def test_a_full_batch_goes_out_without_waiting_for_the_window() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=30.0)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(rows(1, start=i)) for i in range(4))), timeout=5
    )
    await batcher.stop()
    assert [len(b) for b in graph.batches] == [4]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], rows(1, start=i) * 2)


@scenario
async def test_a_request_larger_than_the_batch_is_split_and_reassembled() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.001)
    result = await batcher.submit(rows(10))
    await batcher.stop()
    assert sorted(len(b) for b in graph.batches) == [2, 4, 4]
    np.testing.assert_array_equal(result["y"], rows(10) * 2)


@scenario
async def test_batch_size_counts_samples_not_requests() -> None:
    graph, batcher = recording_batcher(max_batch_size=8, max_delay=30.0)
    # two requests of 4 rows fill a batch of 8 at once
    await asyncio.wait_for(asyncio.gather(batcher.submit(rows(4)), batcher.submit(rows(4))), 5)
    await batcher.stop()
    assert [len(b) for b in graph.batches] == [8]


@scenario
async def test_requests_of_different_shapes_never_share_a_batch() -> None:
    graph, batcher = recording_batcher(max_batch_size=64, max_delay=0.05)
    narrow = [batcher.submit(rows(1, width=2)) for _ in range(3)]
    wide = [batcher.submit(rows(1, width=3)) for _ in range(3)]
    results = await asyncio.gather(*narrow, *wide)
    await batcher.stop()
    assert sorted((b.shape[1], len(b)) for b in graph.batches) == [(2, 3), (3, 3)]
    assert [r["y"].shape[1] for r in results] == [2, 2, 2, 3, 3, 3]


@scenario
async def test_a_full_queue_answers_queue_full_with_a_retry_hint() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0, max_queue=4)
    running = await busy_with_a_first_request(graph, batcher, rows(4))  # the only slot
    queued = asyncio.create_task(batcher.submit(rows(4)))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as refused:
        await batcher.submit(rows(1))
    assert refused.value.retry_after >= 1
    graph.gate.set()
    await asyncio.gather(running, queued)
    await batcher.stop()


async def check_a_late_request_is_dropped_before_compute(
    graph: RecordingGraph, runner: MicroBatcher | DirectRunner
) -> None:
    """With the engine busy on a first request, a request whose deadline passes while it waits
    fails with DeadlineExceeded and never reaches the graph."""
    first = await busy_with_a_first_request(graph, runner, rows(1, start=0))
    late = asyncio.create_task(runner.submit(rows(1, start=100), deadline=time.monotonic() + 0.05))
    await asyncio.sleep(0.2)
    graph.gate.set()
    await first
    with pytest.raises(DeadlineExceeded):
        await late
    await runner.stop()
    assert all(100 not in batch for batch in graph.batches)
    assert [len(b) for b in graph.batches] == [1]  # only the first request ran


@scenario
async def test_a_request_past_its_deadline_is_dropped_before_compute() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0)
    await check_a_late_request_is_dropped_before_compute(graph, batcher)


@scenario
async def test_a_request_whose_client_went_away_is_skipped() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0)
    first = await busy_with_a_first_request(graph, batcher, rows(1, start=0))
    gone = asyncio.create_task(batcher.submit(rows(1, start=100)))
    stays = asyncio.create_task(batcher.submit(rows(1, start=200)))
    await asyncio.sleep(0.01)
    gone.cancel()
    graph.gate.set()
    await first
    result = await stays
    await batcher.stop()
    np.testing.assert_array_equal(result["y"], rows(1, start=200) * 2)
    assert all(100 not in batch for batch in graph.batches)
    assert batcher.queued_samples == 0


@scenario
async def test_a_caller_whose_client_went_away_frees_its_queue_slots_at_once() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0, max_queue=4)
    first = await busy_with_a_first_request(graph, batcher, rows(4))  # the only slot
    gone = asyncio.create_task(batcher.submit(rows(4, start=100)))  # fills the queue
    await asyncio.sleep(0.01)
    gone.cancel(CLIENT_GONE)
    await asyncio.gather(gone, return_exceptions=True)
    assert batcher.queued_samples == 0  # before any batch ran: the slots are free now
    live = asyncio.create_task(batcher.submit(rows(4, start=200)))  # no QueueFull
    graph.gate.set()
    await first
    np.testing.assert_array_equal((await live)["y"], rows(4, start=200) * 2)
    await batcher.stop()
    assert all(100 not in batch for batch in graph.batches)
    gone_count = metrics.REJECTIONS.labels(LABELS.model, LABELS.graph, CLIENT_GONE)._value.get()
    assert gone_count >= 1


@scenario
async def test_an_error_reaches_every_caller_in_the_batch_and_the_loop_survives() -> None:
    graph = RecordingGraph()
    graph.fail_next = True
    batcher = MicroBatcher(graph, LABELS, max_batch_size=8, max_delay=0.05)
    outcomes = await asyncio.gather(
        *(batcher.submit(rows(1, start=i)) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, ValueError) for o in outcomes)
    after = await batcher.submit(rows(2))
    np.testing.assert_array_equal(after["y"], rows(2) * 2)
    await batcher.stop()


@scenario
async def test_several_batches_may_run_at_once_when_configured() -> None:
    graph = RecordingGraph()
    graph.gate.clear()
    batcher = MicroBatcher(graph, LABELS, max_batch_size=1, max_delay=0.0, in_flight=2)
    tasks = [asyncio.create_task(batcher.submit(rows(1, start=i))) for i in range(2)]
    await asyncio.sleep(0.2)
    # both calls are inside the graph (held at the gate) at the same time
    assert batcher.queued_samples == 0
    graph.gate.set()
    await asyncio.gather(*tasks)
    await batcher.stop()
    assert len(graph.batches) == 2


@scenario
async def test_with_batching_off_a_request_past_its_deadline_is_dropped_before_compute() -> None:
    graph = RecordingGraph()
    # one thread: while it is busy, the next request waits for it
    runner = DirectRunner(graph, LABELS, in_flight=1)
    await check_a_late_request_is_dropped_before_compute(graph, runner)


@scenario
async def test_with_batching_off_a_request_over_the_row_limit_runs_in_parts() -> None:
    graph = RecordingGraph()
    runner = DirectRunner(graph, LABELS, in_flight=1, max_rows_for=lambda shape: 3)
    inputs = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
    outputs = await runner.submit(inputs)
    np.testing.assert_array_equal(outputs["y"], inputs * 2)  # whole, in order
    assert [len(batch) for batch in graph.batches] == [3, 3, 2]
    await runner.stop()


@scenario
async def test_a_request_larger_than_the_queue_is_refused_for_good_not_asked_to_retry() -> None:
    graph, batcher = recording_batcher(max_queue=8)
    with pytest.raises(LargerThanQueue, match="VAE_MAX_QUEUE"):
        await batcher.submit(rows(9))
    assert graph.batches == []
    await batcher.submit(rows(8))  # as large as the queue: taken
    await batcher.stop()

"""A request's deadline: how it grows with pixels and where it is capped, and the 504 the runners
answer when it passes, which says whether the request was still queued or already computing and
which setting to raise (the batcher's RecordingGraph stands in for the engine)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from app.config import Settings
from app.serving.batcher import DeadlineExceeded, DirectRunner, MicroBatcher
from app.serving.deadlines import Deadline, Timeout
from tests.unit.test_batcher import (
    LABELS,
    RecordingGraph,
    busy_with_a_first_request,
    recording_batcher,
    rows,
    scenario,
)


def test_the_timeout_grows_by_the_megapixel_and_stops_at_the_cap() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        request_timeout_s=10,
        timeout_per_megapixel_s=30,
        max_request_timeout_s=600,
    )
    assert Timeout.of(settings).seconds == 10
    large = Timeout.of(settings, 2048 * 2048)
    assert large.seconds == pytest.approx(10 + 30 * 4.194304)
    assert not large.capped
    huge = Timeout.of(settings, 8192 * 8192)
    assert huge.seconds == 600 and huge.capped
    assert "capped at VAE_MAX_REQUEST_TIMEOUT_S=600" in huge.explained()


def test_a_cap_below_the_base_timeout_never_shortens_it() -> None:
    assert Timeout(base=20, per_megapixel=30, cap=5, megapixels=1).seconds == 20
    assert Timeout(base=20, per_megapixel=0, cap=5).seconds == 20


def test_the_setting_to_raise_is_the_one_that_ran_out() -> None:
    images = Timeout(base=10, per_megapixel=30, cap=600, megapixels=4)
    assert images.setting_to_raise(computing=True) == "VAE_TIMEOUT_PER_MEGAPIXEL_S"
    assert images.setting_to_raise(computing=False) == "VAE_REQUEST_TIMEOUT_S"
    assert Timeout(10, 30, 600).setting_to_raise(computing=True) == "VAE_REQUEST_TIMEOUT_S"
    capped = Timeout(base=10, per_megapixel=30, cap=50, megapixels=4)
    assert capped.setting_to_raise(computing=True) == "VAE_MAX_REQUEST_TIMEOUT_S"


def short(megapixels: float = 0.5, cap: float = 600.0) -> Deadline:
    """A deadline 0.1 s away, made as an image request's would be."""
    return Deadline(Timeout(base=0.05, per_megapixel=0.1, cap=cap, megapixels=megapixels))


async def past(deadline: float) -> None:
    while time.monotonic() <= deadline:
        await asyncio.sleep(0.01)


async def check_a_queued_request_is_told_it_was_queued(
    graph: RecordingGraph, runner: MicroBatcher | DirectRunner
) -> None:
    first = await busy_with_a_first_request(graph, runner, rows(1))
    deadline = short()
    late = asyncio.create_task(runner.submit(rows(1, start=100), deadline))
    await past(deadline)
    graph.gate.set()
    await first
    with pytest.raises(DeadlineExceeded) as refused:
        await late
    await runner.stop()
    message = str(refused.value)
    assert "still queued" in message and "before any of it was computed" in message
    assert "Retry later, or raise VAE_REQUEST_TIMEOUT_S" in message
    assert "VAE_TIMEOUT_PER_MEGAPIXEL_S=0.1 x 0.50 megapixels" in message  # how it was made
    assert len(graph.batches) == 1  # the late one never reached the graph


async def check_a_request_stopped_between_its_parts_was_computing(
    graph: RecordingGraph, runner: MicroBatcher | DirectRunner
) -> None:
    """Two rows, one per part: the deadline passes while the first part computes, and the
    request stops before its second."""
    graph.gate.clear()
    deadline = short()
    task = asyncio.create_task(runner.submit(rows(2), deadline))
    await asyncio.to_thread(graph.entered.wait, 5)
    await past(deadline)
    graph.gate.set()
    with pytest.raises(DeadlineExceeded) as refused:
        await task
    await runner.stop()
    message = str(refused.value)
    assert "had been computing for" in message and "stopped before its next part" in message
    assert message.endswith("Raise VAE_TIMEOUT_PER_MEGAPIXEL_S")
    assert [len(batch) for batch in graph.batches] == [1]


@scenario
async def test_a_request_past_its_deadline_in_the_queue_is_told_it_was_queued() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0)
    await check_a_queued_request_is_told_it_was_queued(graph, batcher)


@scenario
async def test_unbatched_a_request_past_its_deadline_waiting_is_told_it_was_queued() -> None:
    graph = RecordingGraph()
    await check_a_queued_request_is_told_it_was_queued(graph, DirectRunner(graph, LABELS))


@scenario
async def test_a_request_past_its_deadline_between_batches_is_told_it_was_computing() -> None:
    graph, batcher = recording_batcher(max_batch_size=1, max_delay=0.0)
    await check_a_request_stopped_between_its_parts_was_computing(graph, batcher)


@scenario
async def test_unbatched_a_request_past_its_deadline_between_parts_was_computing() -> None:
    graph = RecordingGraph()
    runner = DirectRunner(graph, LABELS, max_rows_for=lambda shape: 1)
    await check_a_request_stopped_between_its_parts_was_computing(graph, runner)


@scenario
async def test_a_batch_computing_when_the_deadline_passes_answers_its_result() -> None:
    """The engine call cannot be interrupted; once it has run, its result is the answer."""
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0)
    graph.gate.clear()
    deadline = short()
    task = asyncio.create_task(batcher.submit(rows(2), deadline))
    await asyncio.to_thread(graph.entered.wait, 5)
    await past(deadline)
    graph.gate.set()
    np.testing.assert_array_equal((await task)["y"], rows(2) * 2)
    await batcher.stop()


@scenario
async def test_a_capped_deadline_says_to_raise_the_cap() -> None:
    graph, batcher = recording_batcher(max_batch_size=1, max_delay=0.0)
    graph.gate.clear()
    deadline = short(megapixels=100, cap=0.1)
    task = asyncio.create_task(batcher.submit(rows(2), deadline))
    await asyncio.to_thread(graph.entered.wait, 5)
    await past(deadline)
    graph.gate.set()
    with pytest.raises(DeadlineExceeded, match=r"Raise VAE_MAX_REQUEST_TIMEOUT_S$"):
        await task
    await batcher.stop()


@scenario
async def test_a_plain_float_deadline_still_names_the_setting() -> None:
    graph, batcher = recording_batcher(max_batch_size=4, max_delay=0.0)
    first = await busy_with_a_first_request(graph, batcher, rows(1))
    late = asyncio.create_task(batcher.submit(rows(1), time.monotonic() + 0.05))
    await asyncio.sleep(0.1)
    graph.gate.set()
    await first
    with pytest.raises(DeadlineExceeded, match="VAE_REQUEST_TIMEOUT_S"):
        await late
    await batcher.stop()

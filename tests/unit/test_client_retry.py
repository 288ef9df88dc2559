"""vae_client's retry policy and error mapping, over httpx.MockTransport (no server; a closed
port for a connection refused)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from vae_client import (
    AsyncClient,
    BadRequest,
    Client,
    ConnectionFailed,
    NotFound,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    Unauthorized,
    Unavailable,
    VaeError,
)
from vae_client.retry import retry_after_seconds

from tests.support.processes import free_port

FAST = RetryPolicy(max_attempts=4, max_wait=5.0, jitter=0.0, backoff=0.01)


def error(status: int, message: str, retry_after: str | None = None) -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return httpx.Response(
        status, json={"error": "x", "message": message, "detail": None}, headers=headers
    )


def sampled() -> httpx.Response:
    return httpx.Response(200, json={"model": "m", "version": 1, "arrays": [[[[0.5]]]]})


def scripted(answers: list[httpx.Response]) -> tuple[httpx.MockTransport, list[float]]:
    """A transport answering with `answers` in turn; records when each request came."""
    times: list[float] = []
    replies: Iterator[httpx.Response] = iter(answers)

    def handle(_: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(replies)

    return httpx.MockTransport(handle), times


def client_for(answers: list[httpx.Response], retry: RetryPolicy | None = FAST) -> Client:
    transport, _ = scripted(answers)
    return Client("http://vae.test", transport=transport, retry=retry)


def test_a_429_is_retried_after_retry_after_and_then_succeeds() -> None:
    transport, times = scripted([error(429, "queue full", "0.2"), sampled()])
    with Client("http://vae.test", transport=transport, retry=FAST) as client:
        images = client.sample(n=1)
    assert images.shape == (1, 1, 1, 1)
    assert len(times) == 2 and times[1] - times[0] >= 0.2


def test_a_503_is_retried_too() -> None:
    with client_for([error(503, "loading", "0"), error(503, "loading", "0"), sampled()]) as c:
        assert c.sample(n=1).shape == (1, 1, 1, 1)


def test_without_retry_after_the_wait_backs_off() -> None:
    transport, times = scripted([error(503, "busy"), error(503, "busy"), sampled()])
    policy = RetryPolicy(max_attempts=3, jitter=0.0, backoff=0.05, max_backoff=1.0)
    with Client("http://vae.test", transport=transport, retry=policy) as client:
        client.sample(n=1)
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1


def test_retries_stop_after_max_attempts_with_the_last_error() -> None:
    transport, times = scripted([error(429, f"full {i}", "0") for i in range(10)])
    with (
        Client("http://vae.test", transport=transport, retry=FAST) as client,
        pytest.raises(RateLimited) as caught,
    ):
        client.sample(n=1)
    assert len(times) == FAST.max_attempts
    assert caught.value.message == "full 3" and caught.value.retry_after == 0.0


def test_a_retry_after_past_the_total_wait_budget_is_not_waited_for() -> None:
    transport, times = scripted([error(429, "come back later", "120"), sampled()])
    started = time.monotonic()
    with (
        Client("http://vae.test", transport=transport, retry=FAST) as client,
        pytest.raises(RateLimited) as caught,
    ):
        client.sample(n=1)
    assert time.monotonic() - started < 1.0 and len(times) == 1
    assert caught.value.retry_after == 120.0 and caught.value.status == 429


def test_the_total_wait_is_bounded_across_retries() -> None:
    policy = RetryPolicy(max_attempts=100, max_wait=0.5, jitter=0.0)
    transport, times = scripted([error(503, "busy", "0.2") for _ in range(100)])
    with (
        Client("http://vae.test", transport=transport, retry=policy) as client,
        pytest.raises(Unavailable),
    ):
        client.sample(n=1)
    assert len(times) == 3  # waited 0.2 + 0.2; a third wait would pass 0.5
    assert times[-1] - times[0] < 1.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, BadRequest), (401, Unauthorized), (403, Unauthorized), (404, NotFound),
     (409, BadRequest), (413, BadRequest), (422, BadRequest), (500, ServerError),
     (504, ServerError)],
)  # fmt: skip
def test_other_statuses_are_not_retried_and_raise_their_typed_error(
    status: int, kind: type[Exception]
) -> None:
    transport, times = scripted([error(status, "what went wrong", "0"), sampled()])
    with (
        Client("http://vae.test", transport=transport, retry=FAST) as client,
        pytest.raises(kind) as caught,
    ):
        client.sample(n=1)
    assert len(times) == 1
    assert str(caught.value) == f"{status}: what went wrong"


def test_no_retry_policy_sends_once() -> None:
    transport, times = scripted([error(429, "full", "0"), sampled()])
    with (
        Client("http://vae.test", transport=transport, retry=None) as client,
        pytest.raises(RateLimited),
    ):
        client.sample(n=1)
    assert len(times) == 1


def test_a_non_json_error_body_still_gives_a_message() -> None:
    client = client_for([httpx.Response(502, text="<html>bad gateway</html>")])
    with client, pytest.raises(ServerError, match="bad gateway"):
        client.models()


def test_the_async_client_retries_the_same_way() -> None:
    transport, times = scripted([error(429, "full", "0.1"), sampled()])

    async def call() -> np.ndarray:
        async with AsyncClient("http://vae.test", transport=transport, retry=FAST) as client:
            return await client.sample(n=1)

    assert asyncio.run(call()).shape == (1, 1, 1, 1)
    assert len(times) == 2 and times[1] - times[0] >= 0.1


def test_retry_after_may_be_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after_seconds(httpx.Response(429, headers={"Retry-After": when}))
    assert seconds is not None and 25 <= seconds <= 30


def test_admin_calls_carry_the_bearer_token_and_others_do_not() -> None:
    seen: dict[str, str | None] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        seen[request.url.path] = request.headers.get("authorization")
        return httpx.Response(200, json={"id": "j1", "status": "queued", "dataset": "d",
                                         "name": "n"})  # fmt: skip

    transport = httpx.MockTransport(handle)
    with Client("http://vae.test", transport=transport, token="secret") as client:
        client.start_job("d", "n")
        client.job("j1")
    assert seen == {"/jobs": "Bearer secret", "/jobs/j1": None}


def test_an_upload_is_streamed_from_the_file_and_sent_again_on_a_retry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.npy"
    payload = bytes(range(256)) * 12_000  # about 3 MB: several 1 MiB chunks
    path.write_bytes(payload)
    bodies: list[bytes] = []
    answers: list[Callable[[], httpx.Response]] = [
        lambda: error(429, "slow down", "0"),
        lambda: httpx.Response(201, json={"name": "big", "count": 1}),
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-length"] == str(len(payload))
        assert "transfer-encoding" not in request.headers
        bodies.append(request.read())
        return answers[len(bodies) - 1]()

    transport = httpx.MockTransport(handle)
    with Client("http://vae.test", transport=transport, token="t", retry=FAST) as client:
        assert client.upload_dataset("big", path)["count"] == 1
    assert bodies == [payload, payload]


def queued_job() -> httpx.Response:
    return httpx.Response(
        202,
        json={"id": "j1", "status": "queued", "dataset": "d", "name": "n", "progress": {},
              "result": None, "error": None, "config": {}},
    )  # fmt: skip


def test_starting_a_job_is_not_sent_again_after_a_503_it_may_have_queued_already() -> None:
    transport, times = scripted([error(503, "redis blinked", "0"), queued_job()])
    with (
        Client("http://vae.test", transport=transport, retry=FAST) as client,
        pytest.raises(Unavailable),
    ):
        client.start_job("d", "n")
    assert len(times) == 1  # one job at most


def test_starting_a_job_is_sent_again_after_a_429_which_comes_before_the_route() -> None:
    transport, times = scripted([error(429, "slow down", "0"), queued_job()])
    with Client("http://vae.test", transport=transport, retry=FAST) as client:
        assert client.start_job("d", "n").id == "j1"
    assert len(times) == 2


def test_no_answer_at_all_is_one_of_the_client_s_errors() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", retry=FAST) as client,
        pytest.raises(ConnectionFailed) as refused,
    ):
        client.models()
    assert isinstance(refused.value, VaeError) and isinstance(refused.value, ConnectionError)

    def hang(_: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer")

    transport = httpx.MockTransport(hang)
    with (
        Client("http://vae.test", transport=transport, retry=FAST) as client,
        pytest.raises(RequestTimeout),
    ):
        client.models()

    async def from_async() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as client:
            await client.models()

    with pytest.raises(ConnectionFailed):
        asyncio.run(from_async())


def test_a_conditional_model_s_label_goes_with_every_inference_call() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/interpolate":
            return httpx.Response(
                200, json={"model": "c", "version": 1, "latents": [[0.0]], "arrays": [[[[0.5]]]]}
            )
        if request.headers.get("accept") == "application/x-npy":
            buffer = io.BytesIO()
            np.save(buffer, np.zeros((1, 2, 2), np.float32))
            return httpx.Response(200, content=buffer.getvalue(), headers={"x-model": "c",
                                  "x-model-version": "1"})  # fmt: skip
        return sampled()

    with Client("http://vae.test", transport=httpx.MockTransport(handle)) as client:
        client.sample(n=1, model="c", label=7)
        client.encode(np.zeros((1, 1, 4, 4), np.float32), model="c", label=7)
        client.decode(np.zeros((1, 2), np.float32), model="c", label=7)
        client.interpolate(np.zeros(2), np.ones(2), model="c", label=7)
    json_bodies = [r for r in seen if r.headers.get("content-type") == "application/json"]
    npy_calls = [r for r in seen if r not in json_bodies]
    assert [json.loads(r.content)["label"] for r in json_bodies] == [7, 7]
    assert [r.url.params["label"] for r in npy_calls] == ["7", "7"]

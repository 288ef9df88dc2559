"""vae_client's video calls over httpx.MockTransport (no server): what decode_video, encode_video
and stream_video send, how they read the answers, and that a streamed answer is retried after a
503, read whole when it is an error, and closed once read. tests/integration/test_client_video.py
runs them against a real `vae serve`."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from vae_client import AsyncClient, BadRequest, Client, RetryPolicy

FAST = RetryPolicy(max_attempts=3, max_wait=5.0, jitter=0.0, backoff=0.01)
MP4 = b"\x00\x00\x00\x18ftypiso5" + bytes(range(200))


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class Recorder:
    """A transport answering with `answers` in turn, keeping every request it was sent."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._answers: Iterator[httpx.Response] = iter(answers)
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return next(self._answers)


class ClosingStream(httpx.SyncByteStream):
    """An answer body in chunks that remembers whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


def test_decode_video_sends_npy_latents_and_reads_each_format() -> None:
    frames = np.random.default_rng(0).random((9, 3, 8, 8)).astype(np.float32)
    raw = (frames.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    recorder = Recorder(
        httpx.Response(200, content=MP4, headers={"content-type": "video/mp4"}),
        httpx.Response(200, content=npy(frames)),
        httpx.Response(200, content=raw.tobytes(), headers={"shape": "[9, 8, 8, 3]"}),
    )
    latents = np.zeros((16, 3, 1, 1), np.float64)
    with Client("http://vae", transport=recorder.transport, retry=FAST) as vae:
        assert vae.decode_video(latents, model="m", fps=12.5, normalized=True) == MP4
        got = vae.decode_video(latents, format="npy")
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_array_equal(got, frames)
        got = vae.decode_video(latents, format="raw")
        assert isinstance(got, np.ndarray) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, raw)
    first, second, third = recorder.requests
    assert dict(first.url.params) == {
        "format": "mp4", "model": "m", "fps": "12.5", "normalized": "true",
    }  # fmt: skip
    assert first.headers["content-type"] == "application/x-npy"
    assert first.headers["accept"] == "video/mp4"
    sent = np.load(io.BytesIO(first.content))
    assert sent.shape == (16, 3, 1, 1) and sent.dtype == np.float32
    assert second.headers["accept"] == "application/x-npy"
    assert third.headers["accept"] == "application/octet-stream"


def test_encode_video_sends_frames_files_and_paths(tmp_path: Path) -> None:
    means = np.ones((1, 16, 3, 2, 2), np.float32)
    recorder = Recorder(*[httpx.Response(200, content=npy(means)) for _ in range(3)])
    (tmp_path / "clip.webm").write_bytes(b"webm bytes")
    with Client("http://vae", transport=recorder.transport, retry=FAST) as vae:
        one = vae.encode_video(np.zeros((9, 8, 8, 3), np.uint8), normalized=True)
        from_bytes = vae.encode_video(MP4, model="m")
        from_path = vae.encode_video(tmp_path / "clip.webm")
    assert one.shape == from_bytes.shape == from_path.shape == (16, 3, 2, 2)
    frames, mp4, webm = recorder.requests
    assert frames.headers["content-type"] == "application/x-npy"
    assert dict(frames.url.params) == {"normalized": "true"}
    assert np.load(io.BytesIO(frames.content)).dtype == np.uint8
    assert (mp4.headers["content-type"], mp4.content) == ("video/mp4", MP4)
    assert (webm.headers["content-type"], webm.content) == ("video/webm", b"webm bytes")


def test_frames_and_latents_of_the_wrong_shape_are_refused_before_sending() -> None:
    recorder = Recorder()
    with Client("http://vae", transport=recorder.transport) as vae:
        with pytest.raises(ValueError, match=r"\[F, H, W, C\]"):
            vae.encode_video(np.zeros((2, 9, 8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match=r"\[C, T, h, w\]"):
            vae.decode_video(np.zeros((16, 3, 2), np.float32))
        with pytest.raises(ValueError, match="format"):
            vae.decode_video(np.zeros((16, 3, 2, 2), np.float32), format="png")
    assert recorder.requests == []


def test_stream_video_retries_a_503_then_yields_the_chunks_and_closes() -> None:
    body = ClosingStream([MP4[:10], MP4[10:100], MP4[100:]])
    recorder = Recorder(
        httpx.Response(503, json={"message": "loading"}, headers={"Retry-After": "0"}),
        httpx.Response(200, stream=body, headers={"content-type": "video/mp4"}),
    )
    with Client("http://vae", transport=recorder.transport, retry=FAST) as vae:
        chunks = vae.stream_video(np.zeros((16, 3, 2, 2), np.float32))
        assert recorder.requests == []  # sent at the first iteration
        assert b"".join(chunks) == MP4
    assert len(recorder.requests) == 2 and body.closed


def test_stream_video_raises_the_services_message() -> None:
    recorder = Recorder(httpx.Response(422, json={"message": "expected 16 channels, got 4"}))
    vae = Client("http://vae", transport=recorder.transport, retry=FAST)
    with vae, pytest.raises(BadRequest, match="expected 16 channels") as raised:
        list(vae.stream_video(np.zeros((4, 3, 2, 2), np.float32)))
    assert raised.value.status == 422


def test_the_async_client_streams_the_same_chunks() -> None:
    chunks = [MP4[:50], MP4[50:]]

    def handle(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.url.params.get("normalized", "false")) is False
        return httpx.Response(200, content=b"".join(chunks))

    async def stream() -> bytes:
        transport = httpx.MockTransport(handle)
        async with AsyncClient("http://vae", transport=transport) as vae:
            return b"".join([c async for c in vae.stream_video(np.zeros((16, 3, 2, 2)))])

    assert asyncio.run(stream()) == MP4

"""Rendering a decoded video: a stand-in `DecodedVideo` whose pieces are counted as they are
computed, so that each test can see what left before the last piece existed; the ASGI answer
read as a server would send it (its `http.response.*` messages)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import pytest
from starlette.responses import Response

from app.api.video_rendering import ClipResponse, StreamBroken, video_response
from app.serving.adapters.errors import InvalidLatent, InvalidRequest
from app.serving.adapters.results import DecodedVideo


@dataclass
class Model:
    """What rendering reads of a loaded model."""

    name: str = "clip"
    version: int = 3


@dataclass
class Pieces:
    """A clip's pieces [N, 3, t, H, W] in [-1, 1], made as they are read; `fail_at` raises
    InvalidLatent when that piece is asked for."""

    clips: int = 1
    sizes: tuple[int, ...] = (1, 4, 4, 4)
    height: int = 32
    width: int = 48
    fail_at: int | None = None
    made: int = 0
    closed: bool = False
    output: list[np.ndarray] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(self.sizes)

    async def generate(self) -> AsyncIterator[np.ndarray]:
        try:
            for index, size in enumerate(self.sizes):
                if index == self.fail_at:
                    raise InvalidLatent("the decoder overflowed")
                await asyncio.sleep(0)
                t = np.arange(self.made_frames(), self.made_frames() + size, dtype=np.float32)
                y = np.linspace(-1, 1, self.height, dtype=np.float32)[:, None]
                x = np.linspace(-1, 1, self.width, dtype=np.float32)[None, :]
                piece = np.stack(
                    [
                        np.stack([np.sin(x + y + k / 5 + n) * 0.9 for k in t])
                        for n in range(self.clips)
                    ]
                )  # [N, t, H, W]
                piece = np.stack([piece, piece * 0.5, -piece], axis=1).astype(np.float32)
                self.output.append(piece)
                self.made += 1
                yield piece
        finally:
            self.closed = True

    def made_frames(self) -> int:
        return sum(p.shape[2] for p in self.output)

    def video(self, fmt: str, batched: bool = False) -> DecodedVideo:
        return DecodedVideo(
            self.generate(), self.clips, self.frames, self.height, self.width, 3, 16.0, fmt,
            (-1.0, 1.0), batched=batched, tiled=None,
        )  # fmt: skip

    def unit_frames(self) -> np.ndarray:
        """All frames [N, F, C, H, W] in [0, 1], as a renderer should give them."""
        whole = np.concatenate(self.output, axis=2)
        return np.clip((np.moveaxis(whole, 2, 1) + 1) / 2, 0, 1)


async def answer(response: Response) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The messages an ASGI server would send for `response`: its start, its body parts."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never hangs up
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    return sent[0], sent[1:]


def body_of(parts: list[dict[str, Any]]) -> bytes:
    return b"".join(part.get("body", b"") for part in parts)


def headers_of(start: dict[str, Any]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in start["headers"]}


def test_mp4_leaves_before_the_last_piece_is_decoded() -> None:
    async def run() -> None:
        pieces = Pieces()
        response = await video_response(Model(), pieces.video("mp4"))  # type: ignore[arg-type]
        assert isinstance(response, ClipResponse)
        assert response.headers["x-vae-frames"] == "13"
        assert response.headers["x-vae-fps"] == "16"
        assert response.media_type == "video/mp4"
        chunks = response.body_iterator
        first = await anext(chunks)  # type: ignore[call-overload]
        assert first[4:8] == b"ftyp"
        assert pieces.made < len(pieces.sizes)  # the clip was not all decoded yet
        rest = [chunk async for chunk in chunks]  # type: ignore[attr-defined]
        assert pieces.made == len(pieces.sizes) and pieces.closed
        with av.open(io.BytesIO(first + b"".join(rest))) as container:
            frames = np.array([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        assert frames.shape == (13, 32, 48, 3)
        expected = pieces.unit_frames()[0].transpose(0, 2, 3, 1)
        psnr = 10 * np.log10(1 / np.mean((frames / 255.0 - expected) ** 2))
        assert psnr >= 30

    asyncio.run(run())


def test_one_clips_npy_streams_what_numpy_saves() -> None:
    async def run() -> None:
        pieces = Pieces()
        start, parts = await answer(await video_response(Model(), pieces.video("npy")))  # type: ignore[arg-type]
        body = body_of(parts)
        assert int(headers_of(start)["content-length"]) == len(body)
        assert headers_of(start)["content-type"] == "application/x-npy"
        frames = np.load(io.BytesIO(body))
        assert frames.dtype == np.float32 and frames.shape == (13, 3, 32, 48)
        np.testing.assert_allclose(frames, pieces.unit_frames()[0], atol=1e-6)
        assert parts[-1]["more_body"] is False

    asyncio.run(run())


def test_one_clips_raw_frames_are_uint8_channels_last() -> None:
    async def run() -> None:
        pieces = Pieces()
        start, parts = await answer(await video_response(Model(), pieces.video("raw")))  # type: ignore[arg-type]
        headers = headers_of(start)
        assert json.loads(headers["shape"]) == [13, 32, 48, 3] and headers["dtype"] == "uint8"
        frames = np.frombuffer(body_of(parts), np.uint8).reshape(13, 32, 48, 3)
        expected = np.rint(pieces.unit_frames()[0].transpose(0, 2, 3, 1) * 255)
        assert np.abs(frames.astype(int) - expected).max() <= 1

    asyncio.run(run())


@pytest.mark.parametrize("fmt", ["npy", "raw", "png"])
def test_a_batch_is_answered_whole_with_its_batch_axis(fmt: str) -> None:
    async def run() -> None:
        pieces = Pieces(clips=2, sizes=(1, 4))
        start, parts = await answer(await video_response(Model(), pieces.video(fmt, True)))  # type: ignore[arg-type]
        body, expected = body_of(parts), pieces.unit_frames()
        if fmt == "npy":
            np.testing.assert_allclose(np.load(io.BytesIO(body)), expected, atol=1e-6)
        elif fmt == "raw":
            assert json.loads(headers_of(start)["shape"]) == [2, 5, 32, 48, 3]
        else:
            answer_ = json.loads(body)
            assert (answer_["model"], answer_["version"], answer_["fps"]) == ("clip", 3, 16.0)
            assert [len(clip) for clip in answer_["clips"]] == [5, 5]

    asyncio.run(run())


def test_png_frames_of_one_clip() -> None:
    async def run() -> None:
        pieces = Pieces(sizes=(1, 4))
        _, parts = await answer(await video_response(Model(), pieces.video("png")))  # type: ignore[arg-type]
        assert len(json.loads(body_of(parts))["frames"]) == 5

    asyncio.run(run())


def test_a_failure_at_the_first_piece_is_an_ordinary_error() -> None:
    async def run() -> None:
        pieces = Pieces(fail_at=0)
        with pytest.raises(InvalidLatent, match="overflowed"):
            await video_response(Model(), pieces.video("mp4"))  # type: ignore[arg-type]
        assert pieces.closed

    asyncio.run(run())


def test_mp4_of_two_clips_is_refused_before_decoding() -> None:
    async def run() -> None:
        pieces = Pieces(clips=2)
        with pytest.raises(InvalidRequest, match="one clip"):
            await video_response(Model(), pieces.video("mp4", True))  # type: ignore[arg-type]
        assert pieces.made == 0

    asyncio.run(run())


@pytest.mark.parametrize("fmt", ["mp4", "npy"])
def test_a_failure_mid_stream_leaves_the_response_unfinished(
    fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> None:
        pieces = Pieces(fail_at=2)
        response = await video_response(Model(), pieces.video(fmt))  # type: ignore[arg-type]
        start, parts = await answer(response)
        assert start["status"] == 200
        assert all(part["more_body"] for part in parts)  # the body's end never went
        assert pieces.closed

    with caplog.at_level(logging.WARNING, "app.api.video_rendering"):
        asyncio.run(run())
    assert "broke after 5 of 13 frames: InvalidLatent: the decoder overflowed" in caplog.text


def test_a_stream_let_go_early_stops_decoding() -> None:
    async def run() -> None:
        pieces = Pieces(sizes=(1, 4, 4, 4, 4, 4))
        response = await video_response(Model(), pieces.video("mp4"))  # type: ignore[arg-type]
        chunks = response.body_iterator
        await anext(chunks)  # type: ignore[call-overload]
        await chunks.aclose()  # type: ignore[attr-defined]
        assert pieces.closed and pieces.made < len(pieces.sizes)

    asyncio.run(run())


def test_stream_broken_is_raised_by_the_body_iterator() -> None:
    async def run() -> None:
        pieces = Pieces(fail_at=1)
        response = await video_response(Model(), pieces.video("raw"))  # type: ignore[arg-type]
        with pytest.raises(StreamBroken):
            async for _ in response.body_iterator:
                pass

    asyncio.run(run())

"""Rendering a decoded video (`DecodedVideo`) as an HTTP answer: mp4 (fragmented H.264, streamed
as the clip's time chunks are decoded), .npy float32 frames and raw uint8 frames (streamed for
one clip, whose size is known up front), PNG frames as JSON.

The first piece is decoded before the answer starts, so what fails early (a latent the model
cannot take, the memory budget, the deadline) is an ordinary error response. Once the headers
have gone, a failure can no longer change the status: it is logged and the response is left
unfinished, so the connection closes without the body's end and a client never takes a cut
clip for a whole one."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from numpy.lib import format as npy_format
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from app.api.negotiation import RAW_MEDIA_TYPE
from app.api.rendering import raw_response, version_headers
from app.api.responses import NPY_MEDIA_TYPE, json_response, npy_response
from app.arrays import FloatArray
from app.serving.adapters.errors import InvalidRequest
from app.serving.adapters.results import DecodedVideo
from app.serving.imaging import encode_pngs_base64, to_uint8
from app.serving.registry import LoadedModel
from app.serving.video.mp4 import Mp4Stream

logger = logging.getLogger(__name__)

MP4_MEDIA_TYPE = "video/mp4"
FRAMES_HEADER = "X-VAE-Frames"
FPS_HEADER = "X-VAE-FPS"


class StreamBroken(RuntimeError):
    """A streamed answer failed after its headers were sent (logged; the response is left
    unfinished)."""


class ClipResponse(StreamingResponse):
    """A streamed clip. When its stream breaks, the response is left unfinished: the server then
    closes the connection without the body's end (chunked) or short of its Content-Length, which
    every HTTP client reports as an incomplete answer. However it ends (sent, broken, the client
    gone before the first byte), the decoding behind it stops."""

    def __init__(
        self, stream: AsyncIterator[bytes], feed: PieceFeed, media_type: str,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        super().__init__(stream, media_type=media_type, headers=headers)
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamBroken:
            return
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            await self.feed.close()


class PieceFeed:
    """A decoded video's pieces, read one at a time and closed once, however the answer ends (a
    closed feed stops the decoding behind it). The adapter computes each piece ahead of its
    reader, so the next one decodes while this one is encoded and sent."""

    def __init__(self, pieces: AsyncIterator[FloatArray]) -> None:
        self._pieces = pieces
        self._closed = False

    async def next(self) -> FloatArray | None:
        """The next piece [N, C, t, H, W]; None after the last; the decoder's error if it failed."""
        try:
            return await anext(self._pieces)
        except StopAsyncIteration:
            return None

    async def close(self) -> None:
        """Stops decoding (the rest is not wanted, or all of it was read)."""
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._pieces, "aclose", None)
        if aclose is not None:
            await aclose()


def video_headers(model: LoadedModel, video: DecodedVideo) -> dict[str, str]:
    """The model and version that answered, the frames a clip, the frame rate, the tiling."""
    return {
        **version_headers(model, video.tiled),
        FRAMES_HEADER: str(video.frames),
        FPS_HEADER: f"{video.fps:g}",
    }


async def video_response(model: LoadedModel, video: DecodedVideo) -> Response:
    """The answer for a decoded video in its `format`, its first piece decoded before the
    answer starts (so early failures are ordinary error responses)."""
    if video.format == "mp4":
        check_one_clip(video, "format npy, raw or png")
    feed, first = await started(video)
    try:
        headers = video_headers(model, video)
        if video.format == "mp4":
            return mp4_response(model, video, feed, first, headers)
        if video.format in {"npy", "raw"} and not video.batched:
            return _frames_stream(model, video, feed, first, headers)
        return await _collected(model, video, feed, first, headers)
    except BaseException:
        await feed.close()
        raise


def check_one_clip(video: DecodedVideo, instead: str) -> None:
    """InvalidRequest for an mp4 of more than one clip, naming what to ask for `instead`."""
    if video.clips != 1:
        raise InvalidRequest(
            f"an mp4 holds one clip; {video.clips} were sent: send them one by one, or ask for "
            f"{instead}"
        )


async def started(video: DecodedVideo) -> tuple[PieceFeed, FloatArray]:
    """The video's pieces as a feed, and its first piece (decoded now: a failure raises here)."""
    feed = PieceFeed(video.pieces)
    try:
        first = await feed.next()
        if first is None:
            raise InvalidRequest("the latents decode to no frames")
    except BaseException:
        await feed.close()
        raise
    return feed, first


def mp4_response(
    model: LoadedModel,
    video: DecodedVideo,
    feed: PieceFeed,
    first: FloatArray,
    headers: dict[str, str],
) -> ClipResponse:
    """One clip as a fragmented MP4, streamed as its pieces are decoded."""
    stream = _streamed(model, video, feed, first, lambda: _Mp4Pieces(video))
    return ClipResponse(stream, feed, MP4_MEDIA_TYPE, headers)


def unit_clip_frames(video: DecodedVideo, piece: FloatArray) -> FloatArray:
    """One clip's frames of a piece, [t, C, H, W] float32 in [0,1]."""
    return video.unit_frames(piece)[0]


def uint8_frames(video: DecodedVideo, piece: FloatArray) -> np.ndarray:
    """A piece as uint8 frames [N, t, H, W, C] (channels last, as video files and raw hold them)."""
    return np.ascontiguousarray(to_uint8(video.unit_frames(piece)).transpose(0, 1, 3, 4, 2))


class _PieceWriter:
    """Turns each piece into the bytes that go out, and ends the body (in a worker thread: see
    `_streamed`)."""

    def write(self, piece: FloatArray) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        return b""

    def abandon(self) -> None:
        """Releases what the writer holds when the stream ends early."""


class _Mp4Pieces(_PieceWriter):
    """One clip as a fragmented MP4 (grey frames repeated to RGB, a fourth channel dropped)."""

    def __init__(self, video: DecodedVideo) -> None:
        self.video = video
        self.stream = Mp4Stream(video.width, video.height, video.fps)

    def write(self, piece: FloatArray) -> bytes:
        frames = uint8_frames(self.video, piece)[0]
        if frames.shape[-1] == 1:
            frames = np.repeat(frames, 3, axis=-1)
        return self.stream.add(frames[..., :3])

    def close(self) -> bytes:
        return self.stream.close()

    def abandon(self) -> None:
        self.stream.abandon()


class _NpyPieces(_PieceWriter):
    """One clip's float32 frames [F, C, H, W], after the .npy header."""

    def __init__(self, video: DecodedVideo) -> None:
        self.video = video

    def write(self, piece: FloatArray) -> bytes:
        return np.ascontiguousarray(unit_clip_frames(self.video, piece)).tobytes()


class _RawPieces(_PieceWriter):
    """One clip's uint8 frames [F, H, W, C]."""

    def __init__(self, video: DecodedVideo) -> None:
        self.video = video

    def write(self, piece: FloatArray) -> bytes:
        return uint8_frames(self.video, piece)[0].tobytes()


async def _streamed(
    model: LoadedModel,
    video: DecodedVideo,
    feed: PieceFeed,
    first: FloatArray,
    make_writer: Callable[[], _PieceWriter],
    lead: bytes = b"",
) -> AsyncIterator[bytes]:
    """The body: `lead`, then each piece written (in a worker thread) as it is decoded, then
    the writer's end. A failure is logged and breaks the stream (StreamBroken). The writer is
    made when the body starts, so an answer never sent holds no encoder."""
    writer = make_writer()
    sent, work = 0, _WriterThread(writer)
    try:
        if lead:
            yield lead
        piece: FloatArray | None = first
        while piece is not None:
            data = await work.run(writer.write, piece)
            sent += piece.shape[2]
            if data:
                yield data
            piece = await feed.next()
        yield await work.run(writer.close)
    except Exception as error:
        logger.warning(
            "the %s stream of %s:%s broke after %d of %d frames: %s: %s", video.format,
            model.name, model.version, sent, video.frames, type(error).__name__, error,
        )  # fmt: skip
        raise StreamBroken(str(error)) from error
    finally:
        await feed.close()
        await work.finish()


class _WriterThread:
    """A writer's calls, each in a worker thread; `finish` waits for one still running (a stream
    cancelled meanwhile) before the writer is abandoned, as an encoder is not thread-safe."""

    def __init__(self, writer: _PieceWriter) -> None:
        self.writer = writer
        self.pending: asyncio.Future[bytes] | None = None

    async def run(self, call: Callable[..., bytes], *args: Any) -> bytes:
        self.pending = asyncio.ensure_future(asyncio.to_thread(call, *args))
        return await asyncio.shield(self.pending)

    async def finish(self) -> None:
        if self.pending is not None and not self.pending.done():
            await asyncio.wait([self.pending])
        self.writer.abandon()


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The header of a float32 .npy of `shape` (what numpy.save writes before the data)."""
    header = {"descr": npy_format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": shape}  # fmt: skip
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _frames_stream(
    model: LoadedModel,
    video: DecodedVideo,
    feed: PieceFeed,
    first: FloatArray,
    headers: dict[str, str],
) -> Response:
    """One clip's frames streamed: .npy float32 [F, C, H, W] or raw uint8 [F, H, W, C] (with
    `shape` and `dtype` headers); the length is known up front."""
    frames, channels, height, width = video.frames, video.channels, video.height, video.width
    writer: Callable[[], _PieceWriter]
    if video.format == "npy":
        lead, writer, media_type = (
            _npy_header((frames, channels, height, width)),
            lambda: _NpyPieces(video),
            NPY_MEDIA_TYPE,
        )
        length = len(lead) + frames * channels * height * width * 4  # float32
    else:
        lead, writer, media_type = b"", lambda: _RawPieces(video), RAW_MEDIA_TYPE
        length = frames * height * width * channels  # uint8
        headers = {**headers, "shape": json.dumps([frames, height, width, channels]),
                   "dtype": "uint8"}  # fmt: skip
    headers = {**headers, "Content-Length": str(length)}
    stream = _streamed(model, video, feed, first, writer, lead)
    return ClipResponse(stream, feed, media_type, headers)


async def whole_output(feed: PieceFeed, first: FloatArray) -> FloatArray:
    """Every piece, concatenated on time: the decoder's output [N, C, F, H, W]."""
    pieces = [first]
    try:
        while (piece := await feed.next()) is not None:
            pieces.append(piece)
    finally:
        await feed.close()
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=2)


async def _collected(
    model: LoadedModel,
    video: DecodedVideo,
    feed: PieceFeed,
    first: FloatArray,
    headers: dict[str, str],
) -> Response:
    """A batch as .npy [N, F, C, H, W] or raw [N, F, H, W, C], or PNG frames as JSON, once every
    piece is decoded."""
    output = await whole_output(feed, first)
    if video.format == "npy":
        return await asyncio.to_thread(_npy, video, output, headers)
    if video.format == "raw":
        return await asyncio.to_thread(_raw, video, output, headers)
    return await asyncio.to_thread(_png_frames, model, video, output, headers)


def _npy(video: DecodedVideo, output: FloatArray, headers: dict[str, str]) -> Response:
    return npy_response(video.unit_frames(output), headers)


def _raw(video: DecodedVideo, output: FloatArray, headers: dict[str, str]) -> Response:
    return raw_response(uint8_frames(video, output), "uint8", headers)


def _png_frames(
    model: LoadedModel, video: DecodedVideo, output: FloatArray, headers: dict[str, str]
) -> Response:
    """{"model", "version", "fps", "frames": [base64 PNG]} (a batch: "clips": [[...], ...])."""
    clips = [encode_pngs_base64(clip) for clip in video.unit_frames(output)]
    body: dict[str, Any] = {"model": model.name, "version": model.version, "fps": video.fps}
    if video.batched:
        body["clips"] = clips
    else:
        body["frames"] = clips[0]
    return json_response(body, headers=headers)

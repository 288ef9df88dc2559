"""Video files <-> frames with PyAV (FFmpeg): any video FFmpeg reads -> uint8 frames, with limits
that bound the memory a body can make the server spend; and frames -> fragmented MP4 (H.264,
yuv420p) written piece by piece, so a clip's first bytes can leave before its last frame exists.

Both are synchronous and CPU-bound (FFmpeg releases the GIL while it works): callers on the event
loop run them in a worker thread."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from numpy.typing import NDArray

# x264 at crf 18 is visually lossless; `veryfast` keeps encoding a small share of decoding, and
# `zerolatency` (no lookahead, no B-frames) makes each frame's packet leave the encoder as soon
# as it is given, which is what lets a fragment leave with every piece.
CRF = 18
PRESET = "veryfast"
TUNE = "zerolatency"
# empty_moov: the header goes out first; frag_every_frame: every frame is a fragment, written
# once the next frame arrives (or at close); default_base_moof: what browsers' MSE expects.
MOVFLAGS = "frag_keyframe+frag_every_frame+empty_moov+default_base_moof"
MAX_FRAME_PIXELS = 4096 * 4096
FPS_DENOMINATOR = 1001


class VideoError(ValueError):
    """The bytes are not a video FFmpeg can read, or not one this server takes (the message
    says why)."""


class VideoTooLarge(VideoError):
    """A video with more frames or pixels than one request may hold."""


def frame_rate(fps: float | Fraction) -> Fraction:
    """Frames per second as the exact fraction a container stores (29.97 -> 2997/100)."""
    rate = Fraction(fps).limit_denominator(FPS_DENOMINATOR)
    if rate <= 0:
        raise ValueError(f"frames per second must be positive, got {fps}")
    return rate


def read_frames(
    data: bytes, max_frames: int, max_pixels: int, max_frame_pixels: int = MAX_FRAME_PIXELS
) -> NDArray[np.uint8]:
    """The frames of the first video stream in `data` as uint8 RGB [F, H, W, 3].

    VideoError when FFmpeg cannot read the bytes, they hold no video stream or no frame, or
    frames change size; VideoTooLarge past `max_frames` frames, `max_pixels` pixels in all
    (F * H * W), or `max_frame_pixels` in one frame (refused before decoding when the stream
    says its size, so a bomb is never decoded whole)."""
    frames: list[NDArray[np.uint8]] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise VideoError("the file holds no video stream")
            stream = container.streams.video[0]
            context = stream.codec_context
            _check_frame_size(context.width, context.height, max_frame_pixels)
            for frame in container.decode(stream):
                if frames:
                    _check_same_size(frame, frames[0], len(frames))
                else:
                    _check_frame_size(frame.width, frame.height, max_frame_pixels)
                _check_room(len(frames) + 1, frame.height * frame.width, max_frames, max_pixels)
                frames.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as error:
        raise VideoError(f"the bytes are not a video FFmpeg can read: {error}") from None
    if not frames:
        raise VideoError("the video holds no frame")
    return np.stack(frames)


def _check_same_size(frame: av.VideoFrame, first: NDArray[np.uint8], index: int) -> None:
    if (frame.height, frame.width) != first.shape[:2]:
        raise VideoError(
            f"frame {index} is {frame.width}x{frame.height} pixels, the first "
            f"{first.shape[1]}x{first.shape[0]}: every frame must have one size"
        )


def _check_room(frames: int, frame_pixels: int, max_frames: int, max_pixels: int) -> None:
    if frames > max_frames:
        raise VideoTooLarge(
            f"the video has more than {max_frames} frames, the most one request may hold"
        )
    if frames * frame_pixels > max_pixels:
        raise VideoTooLarge(
            f"the video has more than {max_pixels} pixels in all (frames x height x width): "
            f"at most {max_pixels // frame_pixels} frames of its size"
        )


def _check_frame_size(width: int, height: int, max_frame_pixels: int) -> None:
    if width * height > max_frame_pixels:
        raise VideoTooLarge(
            f"a frame of {width}x{height} pixels is larger than the {max_frame_pixels} pixels "
            "a frame may have"
        )


class _Sink(io.RawIOBase):
    """Where the muxer writes: bytes collected until taken (it never seeks: fragmented MP4)."""

    def __init__(self) -> None:
        super().__init__()
        self._written = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._written += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self._written)
        self._written.clear()
        return out


class Mp4Stream:
    """A fragmented MP4 (H.264, yuv420p) of `width` x `height` frames at `fps`, written as frames
    come: `add` encodes frames and gives the bytes the muxer wrote so far (the header with the
    first frames, then about a fragment per frame), `close` the rest. The bytes concatenated are
    one playable file. Not thread-safe: call it from one thread at a time."""

    def __init__(self, width: int, height: int, fps: float | Fraction) -> None:
        if width % 2 or height % 2 or width < 2 or height < 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.width, self.height = width, height
        self.frames = 0
        self._sink = _Sink()
        self._container = av.open(
            self._sink, mode="w", format="mp4", options={"movflags": MOVFLAGS}
        )
        self._stream = self._container.add_stream("libx264", rate=frame_rate(fps))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(CRF), "preset": PRESET, "tune": TUNE}
        self._closed = False

    def add(self, frames: NDArray[np.uint8]) -> bytes:
        """Encodes uint8 RGB frames [t, H, W, 3]; the bytes the muxer wrote meanwhile."""
        if self._closed:
            raise ValueError("the stream is closed")
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"expected frames [t, {self.height}, {self.width}, 3], got {list(frames.shape)}"
            )
        for pixels in np.ascontiguousarray(frames, dtype=np.uint8):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = self.frames
            self.frames += 1
            self._container.mux(self._stream.encode(frame))
        return self._sink.take()

    def close(self) -> bytes:
        """Flushes the encoder and ends the file; the last bytes."""
        if self._closed:
            return b""
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
        return self._sink.take()

    def abandon(self) -> None:
        """Releases the encoder without finishing the file (a stream that ended in an error)."""
        if not self._closed:
            self._closed = True
            self._container.close()


def write_mp4(frames: NDArray[np.uint8], fps: float | Fraction) -> bytes:
    """One whole clip, uint8 RGB frames [F, H, W, 3], as MP4 bytes (fragmented, as a stream)."""
    stream = Mp4Stream(frames.shape[2], frames.shape[1], fps)
    try:
        return stream.add(frames) + stream.close()
    finally:
        stream.abandon()

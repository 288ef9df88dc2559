"""Video files <-> frames: the fragmented MP4 writer read back by FFmpeg's own demuxer (PyAV),
and the reader on files PyAV writes directly, in more than one container."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from app.serving.video.mp4 import (
    Mp4Stream,
    VideoError,
    VideoTooLarge,
    frame_rate,
    read_frames,
    write_mp4,
)


def smooth_clip(frames: int, height: int, width: int) -> np.ndarray:
    """Float frames [F, H, W, 3] in [0,1] that move, smooth at any size (a cycle or two across
    the frame: yuv420p halves the chroma resolution, so steep colour ramps lose a few dB)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    clip = [
        np.stack(
            [
                0.5 + 0.45 * np.sin(2 * np.pi * (x + t / 10)),
                0.5 + 0.45 * np.cos(2 * np.pi * (y - t / 13)),
                0.5 + 0.3 * np.sin(2 * np.pi * (2 * x * y + t / 7)),
            ],
            axis=-1,
        )
        for t in range(frames)
    ]
    return np.array(clip, dtype=np.float32)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def pyav_frames(data: bytes) -> tuple[np.ndarray, Fraction | None, str]:
    """The frames FFmpeg reads from `data`, the stream's frame rate and codec."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = np.array([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.average_rate, stream.codec_context.name


def test_a_clip_round_trips_frames_size_rate_and_quality() -> None:
    clip = smooth_clip(17, 64, 96)
    data = write_mp4(to_uint8(clip), 16.0)
    frames, rate, codec = pyav_frames(data)
    assert frames.shape == (17, 64, 96, 3)
    assert rate == 16
    assert codec == "h264"
    assert psnr(frames / 255.0, clip) >= 30.0


def test_the_stream_writes_bytes_as_pieces_come() -> None:
    clip = to_uint8(smooth_clip(9, 32, 48))
    stream = Mp4Stream(48, 32, Fraction(24000, 1001))
    first = stream.add(clip[:1])
    second = stream.add(clip[1:5])
    third = stream.add(clip[5:])
    last = stream.close()
    assert first.startswith(b"\x00\x00\x00") and first[4:8] == b"ftyp"
    assert len(second) > 0 and len(third) > 0  # fragments left before the clip ended
    assert b"moof" in second
    frames, rate, _ = pyav_frames(first + second + third + last)
    assert frames.shape == (9, 32, 48, 3)
    assert rate == Fraction(24000, 1001)
    assert stream.frames == 9


def test_the_stream_refuses_odd_sizes_and_wrong_frames() -> None:
    with pytest.raises(ValueError, match="even"):
        Mp4Stream(33, 32, 16)
    stream = Mp4Stream(32, 32, 16)
    with pytest.raises(ValueError, match=r"\[t, 32, 32, 3\]"):
        stream.add(np.zeros((1, 16, 32, 3), dtype=np.uint8))
    stream.abandon()


def test_frame_rates_are_exact_fractions() -> None:
    assert frame_rate(16.0) == 16
    assert frame_rate(29.97) == Fraction(2997, 100)
    assert frame_rate(24000 / 1001) == Fraction(24000, 1001)
    with pytest.raises(ValueError):
        frame_rate(0)


def test_read_frames_reads_back_the_writers_clip() -> None:
    clip = smooth_clip(5, 48, 64)
    frames = read_frames(write_mp4(to_uint8(clip), 8), max_frames=5, max_pixels=5 * 48 * 64)
    assert frames.dtype == np.uint8
    assert frames.shape == (5, 48, 64, 3)
    assert psnr(frames / 255.0, clip) >= 30.0


def test_read_frames_reads_other_containers_and_codecs() -> None:
    clip = to_uint8(smooth_clip(4, 32, 32))
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for pixels in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    frames = read_frames(buffer.getvalue(), max_frames=10, max_pixels=10**6)
    assert frames.shape == (4, 32, 32, 3)


@pytest.mark.parametrize(
    "data", [b"", b"not a video at all", b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64]
)
def test_undecodable_bytes_are_a_video_error(data: bytes) -> None:
    with pytest.raises(VideoError, match=r"not a video|no video|no frame"):
        read_frames(data, max_frames=10, max_pixels=10**6)


def test_a_truncated_file_is_a_video_error_or_its_first_frames() -> None:
    data = write_mp4(to_uint8(smooth_clip(8, 32, 32)), 8)
    try:
        frames = read_frames(data[: len(data) // 2], max_frames=10, max_pixels=10**6)
    except VideoError:
        return
    assert 0 < len(frames) < 8


def test_read_frames_refuses_past_the_frame_and_pixel_limits() -> None:
    data = write_mp4(to_uint8(smooth_clip(6, 32, 32)), 8)
    with pytest.raises(VideoTooLarge, match="more than 5 frames"):
        read_frames(data, max_frames=5, max_pixels=10**6)
    with pytest.raises(VideoTooLarge, match="at most 3 frames"):
        read_frames(data, max_frames=100, max_pixels=3 * 32 * 32 + 1)
    with pytest.raises(VideoTooLarge, match="32x32"):
        read_frames(data, max_frames=100, max_pixels=10**6, max_frame_pixels=1000)

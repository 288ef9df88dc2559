"""What the video operations send and how they read the answers, with no I/O of their own: a
video autoencoder's latents [C, T, h, w] (a batch [N, C, T, h, w]) and clips (an mp4 file, or
frames as arrays) in the layouts `/decode` and `/encode` take."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import numpy as np

VIDEO_FORMATS = ("mp4", "npy", "raw")
MP4 = "video/mp4"

# What an `encode_video` clip may be: the bytes of a video file, its path, or frames.
VideoLike = bytes | bytearray | str | Path | np.ndarray


def video_latents(latents: np.ndarray) -> np.ndarray:
    """Latents as `/decode` takes them for a video model: one clip [C, T, h, w] or a batch
    [N, C, T, h, w], as float32."""
    array = np.asarray(latents)
    if array.ndim not in (4, 5):
        raise ValueError(
            f"video latents must be [C, T, h, w] or [N, C, T, h, w], got shape {array.shape}"
        )
    return array.astype(np.float32, copy=False)


def decode_params(
    model: str | None, format: str, fps: float | None, normalized: bool
) -> dict[str, str]:
    """The query of a video `/decode`: model, output format, frame rate, normalisation."""
    if format not in VIDEO_FORMATS:
        raise ValueError(f"format must be one of {', '.join(VIDEO_FORMATS)}, got {format!r}")
    params = {"format": format}
    if model is not None:
        params["model"] = model
    if fps is not None:
        params["fps"] = f"{fps:g}"
    if normalized:
        params["normalized"] = "true"
    return params


def video_frames(frames: np.ndarray) -> np.ndarray:
    """Frames as `/encode` takes them: uint8 [F, H, W, C] as they are, floats [F, C, H, W] or
    [N, F, C, H, W] in [0, 1] as float32."""
    array = np.asarray(frames)
    if array.dtype == np.uint8:
        if array.ndim != 4:
            raise ValueError(f"uint8 frames must be [F, H, W, C], got shape {array.shape}")
        return array
    if array.ndim not in (4, 5):
        raise ValueError(
            f"float frames must be [F, C, H, W] or [N, F, C, H, W], got shape {array.shape}"
        )
    return array.astype(np.float32, copy=False)


def is_batch(video: VideoLike) -> bool:
    """Whether `video` is several clips (5-D frames) rather than one."""
    return isinstance(video, np.ndarray) and video.ndim == 5


def video_file_type(path: Path) -> str:
    """The Content-Type of a video file by its name: video/* as guessed, else video/mp4."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed if guessed is not None and guessed.startswith("video/") else MP4


def clip_means(means: np.ndarray, batched: bool) -> np.ndarray:
    """`/encode`'s latent means [N, C, T, h, w] as float32: the batch when `batched`, else its
    one clip [C, T, h, w]."""
    array = np.asarray(means).astype(np.float32, copy=False)
    if array.ndim != 5:
        raise ValueError(f"/encode answered means of shape {array.shape}, not [N, C, T, h, w]")
    return array if batched else array[0]


def raw_frames(body: bytes, headers: Any) -> np.ndarray:
    """A `raw` answer as uint8 frames of its `shape` header: [F, H, W, C] or [N, F, H, W, C]."""
    shape = [int(size) for size in str(headers.get("shape", "")).strip("[]()").split(",") if size]
    dtype = headers.get("dtype", "uint8")
    return np.frombuffer(body, dtype=dtype).reshape(shape)

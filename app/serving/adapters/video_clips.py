"""A video model's inputs read and checked: latent clips [N, C, T, h, w] (a single [C, T, h, w]
gets a batch axis), their model normalisation undone, and video frames in any layout a client
sends ([F, H, W, C] uint8 as a video file decodes to, or [F, C, H, W] / [N, F, C, H, W]) as
[N, F, C, H, W] in [0, 1]; refusals say what the model takes."""

from __future__ import annotations

import numpy as np

from app.arrays import FloatArray
from app.repository.manifest import Manifest, SpatialSpec, VideoSpec
from app.serving.adapters.errors import ImageSizeError, InvalidLatent, InvalidRequest
from app.serving.adapters.inputs import as_float32
from app.serving.adapters.spatial_sizes import check_image_size
from app.serving.imaging import ImageError

RGB = 3


def video_spec(manifest: Manifest) -> tuple[SpatialSpec, VideoSpec]:
    """The manifest's latent grid and time axis; ImageSizeError for a model without them."""
    if manifest.spatial is None or manifest.video is None:
        raise ImageSizeError(f"model {manifest.name} is not a video model")
    return manifest.spatial, manifest.video


def latent_clips(value: object) -> tuple[FloatArray, bool]:
    """Latents as float32 [N, C, T, h, w] and whether they came with a batch axis."""
    try:
        z = as_float32(value)
    except (ValueError, TypeError):
        raise InvalidLatent("latents must be equal-size nested lists of numbers") from None
    if z.ndim == 4:
        return z[None], False
    if z.ndim == 5:
        return z, True
    raise InvalidLatent(
        "a video model's latents are one clip [C, T, h, w] or clips [N, C, T, h, w], got shape "
        f"{list(z.shape)}"
    )


def check_latents(manifest: Manifest, z: FloatArray, max_pixels: int) -> None:
    """InvalidLatent for latents [N, C, T, h, w] of the wrong channels, no frames or values that
    are not finite; ImageSizeError for a frame size the model does not give."""
    spec, _ = video_spec(manifest)
    channels = spec.latent_channels
    if z.shape[1] != channels:
        raise InvalidLatent(
            f"model {manifest.name} takes latents of {channels} channels [N, {channels}, T, h, w], "
            f"got {z.shape[1]} (shape {list(z.shape)})"
        )
    if z.shape[0] < 1 or z.shape[2] < 1:
        raise InvalidLatent(f"latents need at least one clip and one frame, got {list(z.shape)}")
    height, width = z.shape[3] * spec.downscale, z.shape[4] * spec.downscale
    if min(z.shape[3], z.shape[4]) * spec.downscale < spec.min_size:
        smallest = -(-spec.min_size // spec.downscale)
        raise ImageSizeError(
            f"model {manifest.name} takes latents of at least {smallest}x{smallest} cells "
            f"({spec.min_size} pixels a side), got {z.shape[4]}x{z.shape[3]}"
        )
    check_image_size(manifest, height, width, max_pixels)
    if not np.isfinite(z).all():
        raise InvalidLatent("latents must not contain NaN or infinity")


def unnormalized(
    manifest: Manifest,
    z: FloatArray,
    normalized: bool,
    scaling: float | None = None,
    shift: float | None = None,
) -> FloatArray:
    """The decoder's latents: with `normalized`, a pipeline's latents with the model's
    normalisation undone, z = (latents / scaling + shift) * latents_std + latents_mean (the
    given scaling and shift in place of the model's); else z / scaling + shift where given."""
    if scaling == 0 or (normalized and scaling is None and manifest.scaling_factor == 0):
        raise InvalidRequest("scaling_factor must not be 0: decoding divides by it")
    if normalized:
        scaling = manifest.scaling_factor if scaling is None else scaling
        shift = manifest.shift_factor if shift is None else shift
    if scaling is not None and scaling != 1:
        z = z / np.float32(scaling)
    if shift:
        z = z + np.float32(shift)
    if normalized:
        mean, std = per_channel(manifest)
        if std is not None:
            z = z * std
        if mean is not None:
            z = z + mean
    return z.astype(np.float32, copy=False)


def per_channel(manifest: Manifest) -> tuple[FloatArray | None, FloatArray | None]:
    """latents_mean and latents_std shaped to broadcast over [N, C, T, h, w] (None: 0 and 1)."""

    def shaped(values: list[float]) -> FloatArray | None:
        if not values:
            return None
        return np.asarray(values, np.float32).reshape(1, -1, 1, 1, 1)

    return shaped(manifest.latents_mean), shaped(manifest.latents_std)


def normalize(
    manifest: Manifest, mean: FloatArray, sigma: FloatArray | None
) -> tuple[FloatArray, FloatArray | None]:
    """Latent means (and sigmas) [N, C, T, h, w] as a pipeline holds them:
    ((mu - latents_mean) / latents_std - shift) * scaling (sigma * scaling / latents_std)."""
    channel_mean, channel_std = per_channel(manifest)
    scale = np.float32(manifest.scaling_factor)
    if channel_mean is not None:
        mean = mean - channel_mean
    if channel_std is not None:
        mean = mean / channel_std
        sigma = None if sigma is None else sigma / channel_std
    mean = (mean - np.float32(manifest.shift_factor)) * scale
    sigma = None if sigma is None else sigma * abs(scale)
    return mean.astype(np.float32, copy=False), sigma


def unit_clips(array: np.ndarray) -> FloatArray:
    """Frames as [N, F, C, H, W] float32 in [0, 1], from uint8 (0..255) or floats in [0, 1]:
    [F, H, W, C] or [N, F, H, W, C] (channels last: what a video file decodes to), or
    [F, C, H, W] or [N, F, C, H, W] (channels first). Which is told by where the 3 channels
    are (channels last for uint8 when both could be)."""
    if array.ndim not in (4, 5):
        raise ImageError(
            "frames are [F, H, W, 3] or [F, 3, H, W] (one clip), or [N, F, H, W, 3] or "
            f"[N, F, 3, H, W] (clips), got shape {list(array.shape)}"
        )
    clips = array if array.ndim == 5 else array[None]
    last, first = clips.shape[-1] == RGB, clips.shape[2] == RGB
    if last and (not first or array.dtype == np.uint8):
        clips = clips.transpose(0, 1, 4, 2, 3)
    elif not first:
        raise ImageError(f"frames must have {RGB} channels (RGB), got shape {list(array.shape)}")
    if clips.dtype == np.uint8:
        return clips.astype(np.float32) / np.float32(255.0)
    frames = as_float32(clips)
    if not np.isfinite(frames).all():
        raise ImageError("frames must not contain NaN or infinity")
    if frames.size and (frames.min() < 0.0 or frames.max() > 1.0):
        raise ImageError("frame values must lie in [0, 1] (or send uint8)")
    return np.ascontiguousarray(frames)


def check_frames(manifest: Manifest, clips: FloatArray, max_pixels: int) -> int:
    """The latent frames clips [N, F, C, H, W] encode to; ImageSizeError naming the nearest
    frame counts the model takes, or a frame size it does not take."""
    _, video = video_spec(manifest)
    frames = clips.shape[1]
    latent = video.latent_frames(frames)
    if latent is None:
        step = video.temporal_downscale
        below = max(1, (frames - 1) // step * step + 1)
        above = below + step if below < frames else below
        nearest = f"{below} or {above}" if below != above else f"{below}"
        raise ImageSizeError(
            f"model {manifest.name} encodes clips of (T - 1) x {step} + 1 frames (1, {1 + step}, "
            f"{1 + 2 * step}, ...), got {frames}: send {nearest} frames"
        )
    check_image_size(manifest, clips.shape[3], clips.shape[4], max_pixels)
    return latent

"""Pixels in and out for spatial models, whose images come in any size: PNG/JPEG bytes to
float32 [C,H,W] in [0,1] (checked against a pixel limit before decoding), images out as PNG,
JPEG or raw uint8 [H,W,C], and [0,1] to and from the value range the model's graphs take."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from app.arrays import FloatArray
from app.repository.manifest import Manifest
from app.serving import png
from app.serving.imaging import ImageError, to_uint8

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
JPEG_QUALITY = 95


def decode_any_size(data: bytes, channels: int, max_pixels: int) -> FloatArray:
    """PNG/JPEG bytes of any size up to `max_pixels` -> float32 [C,H,W] in [0,1]."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in {"PNG", "JPEG"}:
                raise ImageError(f"expected a PNG or JPEG image, got {image.format}")
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{width}x{height} is more than the {max_pixels} pixels this server takes"
                )
            pixels = np.asarray(image.convert(_MODES[channels]), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageError("the bytes are not a PNG or JPEG image") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"image refused: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageError):
            raise
        raise ImageError(f"the image is damaged or truncated: {error}") from None
    array = pixels.astype(np.float32) / np.float32(255.0)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def same_size(images: list[FloatArray]) -> FloatArray:
    """Images of one size stacked [N,C,H,W]; ImageError when their sizes differ."""
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        raise ImageError(f"the images of one request must share a size, got {sorted(sizes)}")
    return np.stack(images).astype(np.float32, copy=False)


def as_unit_images(array: np.ndarray) -> FloatArray:
    """An image batch [N,C,H,W] (or one [C,H,W]) as uint8 or floats in [0,1] -> float32."""
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ImageError(f"images must be [N,C,H,W], got shape {list(array.shape)}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    images = np.asarray(array, np.float32)
    if not np.isfinite(images).all():
        raise ImageError("image arrays must not contain NaN or infinity")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise ImageError("image values must lie in [0, 1] (or send uint8)")
    return images


def encode_image(image: FloatArray, fmt: str) -> bytes:
    """One image [C,H,W] in [0,1] as PNG or JPEG bytes."""
    pixels = to_uint8(image)
    if fmt == "png":
        return png.encode(pixels)
    buffer = io.BytesIO()
    picture = Image.fromarray(pixels[0] if len(pixels) == 1 else pixels.transpose(1, 2, 0))
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def raw_uint8(images: FloatArray) -> NDArray[np.uint8]:
    """Images [N,C,H,W] in [0,1] -> uint8 [N,H,W,C] (what diffusers' partial postprocess gives)."""
    return np.ascontiguousarray(to_uint8(images).transpose(0, 2, 3, 1))


def to_model_range(manifest: Manifest, images: FloatArray) -> FloatArray:
    """Images in [0,1] -> the range the graphs take."""
    if manifest.value_range[0] < 0:
        return (images * np.float32(2.0) - np.float32(1.0)).astype(np.float32)
    return images


def to_unit_range(manifest: Manifest, images: FloatArray) -> FloatArray:
    """Graph output -> images in [0,1] (clipped, as diffusers' postprocessing does)."""
    if manifest.value_range[0] < 0:
        images = images / np.float32(2.0) + np.float32(0.5)
    return np.clip(images, 0.0, 1.0).astype(np.float32)

"""Images <-> arrays: PNG/JPEG decoding with size checks, PNG encoding, and image grids."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from app.serving import png

# Pillow refuses images above this many pixels, which stops decompression bombs early.
MAX_IMAGE_PIXELS = 4096 * 4096
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS

ImageShape = tuple[int, int, int]
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class ImageError(ValueError):
    """The bytes are not an image this model can take; the message says why."""


def decode_base64(text: str) -> bytes:
    """Strict base64 (an optional `data:...;base64,` prefix is allowed)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageError(f"not valid base64: {error}") from None


def decode_image(data: bytes, shape: ImageShape) -> NDArray[np.float32]:
    """PNG/JPEG bytes -> float32 [C,H,W] in [0,1], converted to the model's channel count.

    The image must already have the model's height and width: resizing silently would change
    what the model sees.
    """
    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in {"PNG", "JPEG"}:
                raise ImageError(f"expected a PNG or JPEG image, got {image.format}")
            if image.size != (width, height):
                raise ImageError(
                    f"the image is {image.size[0]}x{image.size[1]} pixels; the model takes "
                    f"{width}x{height} (width x height): resize it first"
                )
            converted = image.convert(_MODES[channels])
            pixels = np.asarray(converted, dtype=np.uint8)
    except ImageError:
        raise  # a readable image this model cannot take: its own message, not "damaged"
    except UnidentifiedImageError:
        raise ImageError("the bytes are not a PNG or JPEG image") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"image refused: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"the image is damaged or truncated: {error}") from None
    array = pixels.astype(np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def to_uint8(images: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Float pixels in [0,1] -> uint8, rounding to nearest."""
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def encode_png(image: NDArray[np.floating]) -> bytes:
    """One float image [C,H,W] in [0,1] -> PNG bytes."""
    return png.encode(to_uint8(image))


def encode_png_base64(image: NDArray[np.floating]) -> str:
    """One float image [C,H,W] -> base64 PNG text."""
    return base64.b64encode(encode_png(image)).decode("ascii")


def encode_pngs_base64(images: NDArray[np.floating]) -> list[str]:
    """Float images [N,C,H,W] -> base64 PNG texts (the pixels converted in one numpy pass)."""
    return [base64.b64encode(png.encode(pixels)).decode("ascii") for pixels in to_uint8(images)]


def tile(images: NDArray[np.floating], columns: int, padding: int = 2) -> NDArray[np.float32]:
    """[N,C,H,W] -> one [C, rows*(H+p)+p, columns*(W+p)+p] grid image, padded with white."""
    count, channels, height, width = images.shape
    rows = max(1, -(-count // columns))
    grid = np.ones(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
        dtype=np.float32,
    )
    for index in range(count):
        row, col = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[:, top : top + height, left : left + width] = images[index]
    return grid


def upscale(image: NDArray[np.floating], factor: int) -> NDArray[np.floating]:
    """Nearest-neighbour enlargement of a [C,H,W] image, for figures people look at."""
    return np.asarray(image).repeat(factor, axis=1).repeat(factor, axis=2)


def canonical_pixels(images: NDArray[np.floating]) -> NDArray[np.float32]:
    """Snaps pixels that are 8-bit values (k/255) to exactly the float32 a PNG decodes to, so an
    image sent as an array and as a PNG reaches the encoder, and the cache, as the same bytes."""
    values = np.asarray(images, dtype=np.float32)
    levels = np.rint(values * 255.0)
    if np.all(np.abs(values * 255.0 - levels) < 1e-3):
        return (levels / np.float32(255.0)).astype(np.float32)
    return values

"""Image decoding, encoding and canonical pixels."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from app.serving.imaging import (
    ImageError,
    canonical_pixels,
    decode_base64,
    decode_image,
    encode_png,
    tile,
)


def png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_png_round_trip_is_exact_for_8_bit_values() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (1, 5, 7)).astype(np.float32) / 255.0
    decoded = decode_image(encode_png(pixels), (1, 5, 7))
    np.testing.assert_array_equal(decoded, canonical_pixels(pixels))


def test_colour_images_convert_to_the_models_channels() -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    assert decode_image(png(rgb, "RGB"), (1, 4, 4)).shape == (1, 4, 4)
    assert decode_image(png(rgb, "RGB"), (3, 4, 4))[0].min() == 1.0


def test_wrong_size_is_refused_not_resized() -> None:
    with pytest.raises(ImageError, match="4x4"):
        decode_image(png(np.zeros((5, 5), np.uint8)), (1, 4, 4))


def test_truncated_and_foreign_bytes_are_refused() -> None:
    data = png(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 2], (1, 4, 4))
    with pytest.raises(ImageError):
        decode_image(b"GIF89a....", (1, 4, 4))


def test_a_decompression_bomb_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")  # tiny file, 400 Mpixels
    with pytest.raises(ImageError):
        decode_image(buffer.getvalue(), (1, 28, 28))


def test_base64_is_strict_and_accepts_data_urls() -> None:
    assert decode_base64("data:image/png;base64," + base64.b64encode(b"abc").decode()) == b"abc"
    with pytest.raises(ImageError):
        decode_base64("not*base64")


def test_canonical_pixels_snap_8_bit_values_only() -> None:
    near = np.array([10 / 255.0 + 1e-7, 128 / 255.0], dtype=np.float64)
    assert canonical_pixels(near)[0] == np.float32(10) / np.float32(255)
    odd = np.array([0.123456, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(canonical_pixels(odd), odd)


def test_tile_lays_images_out_in_a_grid() -> None:
    grid = tile(np.zeros((5, 1, 4, 4), np.float32), columns=3, padding=1)
    assert grid.shape == (1, 2 * 5 + 1, 3 * 5 + 1)

"""The PNG writer: files Pillow (a second, independent decoder) reads back exactly."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from app.serving import png
from app.serving.imaging import encode_png_base64, encode_pngs_base64


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_pillow_reads_back_every_pixel(channels: int, mode: str) -> None:
    pixels = np.random.default_rng(channels).integers(0, 256, (channels, 9, 13), dtype=np.uint8)
    with Image.open(io.BytesIO(png.encode(pixels))) as image:
        image.load()  # checks every chunk's CRC and the zlib stream
        assert image.mode == mode
        assert image.size == (13, 9)
        back = np.asarray(image)
    back = back[None] if back.ndim == 2 else back.transpose(2, 0, 1)
    np.testing.assert_array_equal(back, pixels)


def test_the_chunks_are_ihdr_idat_iend_with_valid_crcs() -> None:
    data = png.encode(np.zeros((1, 2, 3), dtype=np.uint8))
    assert data.startswith(png.SIGNATURE)
    offset, kinds = len(png.SIGNATURE), []
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(data[offset + 8 + length : offset + 12 + length], "big")
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        offset += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_two_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        png.encode(np.zeros((2, 4, 4), dtype=np.uint8))


def test_a_batch_renders_as_each_image_alone() -> None:
    images = np.random.default_rng(0).random((5, 3, 6, 4)).astype(np.float32)
    assert encode_pngs_base64(images) == [encode_png_base64(image) for image in images]

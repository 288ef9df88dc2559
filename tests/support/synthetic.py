"""Small MNIST-like data made on the spot: white strokes on black, with class-dependent shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def stroke_digits(count: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [count, size, size] images of lines and ellipses, and labels 0..3 (the shape drawn)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), dtype=np.uint8)
    labels = rng.integers(0, 4, count)
    for index, label in enumerate(labels):
        canvas = Image.new("L", (size, size))
        draw = ImageDraw.Draw(canvas)
        x0, y0 = rng.integers(3, size // 2, 2)
        x1, y1 = rng.integers(size // 2, size - 3, 2)
        width = int(rng.integers(2, 4))
        if label == 0:
            draw.ellipse((x0, y0, x1, y1), outline=255, width=width)
        elif label == 1:
            draw.line((x0, y0, x1, y1), fill=255, width=width)
        elif label == 2:
            draw.line((x0, y1, x1, y0), fill=255, width=width)
        else:
            draw.rectangle((x0, y0, x1, y1), outline=255, width=width)
        images[index] = np.asarray(canvas)
    return images, labels.astype(np.int64)


def write_npz(path: Path, count: int, seed: int = 0) -> Path:
    """Writes `count` stroke digits to a .npz with `images` and `labels`."""
    images, labels = stroke_digits(count, seed=seed)
    np.savez(path, images=images, labels=labels)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte array in the IDX format MNIST ships in (magic 0x0000080N, dims, data)."""
    data = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, data.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in data.shape
    )
    return header + data.tobytes()


def mnist_style_zip(count: int, seed: int = 0) -> bytes:
    """A zip holding train-images-idx3-ubyte and train-labels-idx1-ubyte, as MNIST ships them."""
    import io
    import zipfile

    images, labels = stroke_digits(count, seed=seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train-images-idx3-ubyte", idx_bytes(images))
        archive.writestr("train-labels-idx1-ubyte", idx_bytes(labels))
    return buffer.getvalue()

"""Raw tensors on the wire: bytes with a shape and a dtype (float32, float16, bfloat16, uint8),
as diffusers' remote VAE protocol sends them, and Flux-style packed latents.

bfloat16 needs no extra package: it is the top half of a float32's bits.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from app.arrays import FloatArray

WireDtype = Literal["float32", "float16", "bfloat16", "uint8"]
WIRE_DTYPES: tuple[str, ...] = get_args(WireDtype)
_ITEM_SIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "uint8": 1}
MAX_DIMS = 6


class TensorError(ValueError):
    """A raw tensor whose bytes, shape or dtype do not agree (422)."""


def check_dtype(dtype: str) -> WireDtype:
    """The dtype's name if it is one the wire carries; TensorError otherwise."""
    if dtype not in WIRE_DTYPES:
        raise TensorError(f"dtype must be one of {', '.join(WIRE_DTYPES)}, got {dtype!r}")
    return dtype  # type: ignore[return-value]


def parse_shape(values: list[str]) -> tuple[int, ...]:
    """A shape given as repeated query values (`shape=1&shape=4`), one comma list (`1,4`) or a
    JSON list (`[1, 4]`)."""
    text = ",".join(values).replace("[", "").replace("]", "")
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise TensorError(f"shape must be integers, got {text!r}") from None
    if not shape or len(shape) > MAX_DIMS or min(shape) < 1:
        raise TensorError(f"shape must be 1 to {MAX_DIMS} positive sizes, got {list(shape)}")
    return shape


def from_bytes(data: bytes, shape: tuple[int, ...], dtype: str) -> FloatArray:
    """The tensor in `data` as float32 (uint8 as its values); TensorError when the byte count
    is not shape x dtype or a value is not finite."""
    wire = check_dtype(dtype)
    expected = math.prod(shape) * _ITEM_SIZE[wire]
    if len(data) != expected:
        raise TensorError(
            f"a {wire} tensor of shape {list(shape)} is {expected} bytes, the body has {len(data)}"
        )
    if wire == "bfloat16":
        bits = np.frombuffer(data, np.uint16).astype(np.uint32) << 16
        array = bits.view(np.float32)
    else:
        array = np.frombuffer(data, wire).astype(np.float32)
    if not np.isfinite(array).all():
        raise TensorError("the tensor holds NaN or infinity")
    return array.reshape(shape)


def to_bytes(array: NDArray[np.floating] | NDArray[np.uint8], dtype: str) -> bytes:
    """`array` as raw bytes of `dtype` (bfloat16 rounded to nearest even)."""
    wire = check_dtype(dtype)
    if wire == "bfloat16":
        bits = np.ascontiguousarray(array, np.float32).view(np.uint32)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return rounded.astype(np.uint16).tobytes()
    return np.ascontiguousarray(array, wire).tobytes()


def unpack_latents(packed: FloatArray, height: int, width: int, downscale: int) -> FloatArray:
    """Flux's packed latents [N, (h/2)(w/2), C*4] for an image height x width -> [N,C,h,w]
    (diffusers' `FluxPipeline._unpack_latents`)."""
    if packed.ndim != 3:
        raise TensorError(f"packed latents are [N, patches, channels], got {list(packed.shape)}")
    batch, patches, channels = packed.shape
    if height < 1 or width < 1:
        raise TensorError(f"height and width are pixels, at least 1: got {height}x{width}")
    h = 2 * (height // (downscale * 2))
    w = 2 * (width // (downscale * 2))
    if channels % 4 or h == 0 or w == 0 or patches != (h // 2) * (w // 2):
        raise TensorError(
            f"packed latents {list(packed.shape)} do not fit a {height}x{width} image "
            f"(expected [N, {(h // 2) * (w // 2)}, 4*C] at {downscale}x downscaling)"
        )
    grid = packed.reshape(batch, h // 2, w // 2, channels // 4, 2, 2)
    return np.ascontiguousarray(grid.transpose(0, 3, 1, 4, 2, 5).reshape(batch, -1, h, w))

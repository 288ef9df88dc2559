"""What a model's adapter takes: typed requests. The HTTP layer reads them from a JSON body, a
.npy, raw tensor bytes or an image file (`app/api/negotiation.py`); the model's adapter decides
what it makes of each source (a flat model reads images of its own size only, a spatial one any
size it allows; only a spatial model reads raw tensors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.arrays import FloatArray
from app.serving.adapters.errors import InvalidRequest
from app.serving.latents import Method
from app.serving.tensors import from_bytes, parse_shape

Layers = Literal["top", "all"]


@dataclass(frozen=True, slots=True)
class Accepts:
    """What the client takes back (its Accept header): a .npy, raw tensor bytes, an image file."""

    npy: bool = False
    raw: bool = False
    png: bool = False
    jpeg: bool = False

    def image(self, fmt: str) -> bool:
        """Whether the client takes one image file of this format (png or jpeg) back."""
        return (fmt == "png" and self.png) or (fmt == "jpeg" and self.jpeg)

    def first_image(self) -> str | None:
        """The image file format the client asks for, png first; None when it asks for none."""
        return "png" if self.png else "jpeg" if self.jpeg else None


NO_PREFERENCE = Accepts()


@dataclass(frozen=True, slots=True)
class Base64Images:
    """Images as base64 PNG or JPEG texts."""

    texts: list[str]


@dataclass(frozen=True, slots=True)
class ListImages:
    """Images as nested lists of pixel values."""

    values: list[Any]


@dataclass(frozen=True, slots=True)
class NpyArray:
    """A .npy body: images to encode, or latents (a VQ-VAE's: integer code grids) to decode."""

    array: np.ndarray


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One image file (PNG or JPEG) as the whole body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class VideoFile:
    """One video file (mp4, or anything FFmpeg reads) as the whole body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RawTensor:
    """Raw tensor bytes with the `shape` and `dtype` the client gave. Images are in [0,1] (uint8:
    0..255), or in the model's own value range with `model_range` (diffusers' remote encode)."""

    data: bytes
    shape: list[str]
    dtype: str = "float32"
    model_range: bool = False

    def array(self) -> FloatArray:
        """The tensor as float32 (uint8 as its values); InvalidRequest without a shape,
        TensorError when the bytes do not fit it."""
        if not self.shape:
            raise InvalidRequest("a raw tensor needs its `shape` (and `dtype`) as query parameters")
        return from_bytes(self.data, parse_shape(self.shape), self.dtype)


@dataclass(frozen=True, slots=True)
class NestedLatents:
    """Latents as nested lists, or a VQ-VAE's code grids (JSON)."""

    latents: Any
    codes: Any = None


@dataclass(frozen=True, slots=True)
class LatentPoint:
    """An interpolation end given as a latent (a vector, or a spatial model's grid)."""

    value: Any


@dataclass(frozen=True, slots=True)
class CodesPoint:
    """An interpolation end given as a VQ-VAE's code grid."""

    value: Any


ImageSource = Base64Images | ListImages | NpyArray | ImageFile | RawTensor | VideoFile
LatentSource = NestedLatents | NpyArray | RawTensor | ImageFile
Endpoint = LatentPoint | CodesPoint | Base64Images | ListImages


@dataclass(frozen=True, slots=True)
class EncodeCall:
    """Images to encode; `samples` draws of z per image and `layers` "all" where they apply;
    `exact`: on the fp32 encoder whatever precision was chosen for it (where a model has one
    at a lower precision: diffusers' remote VAE protocol promises the local model's results);
    `normalized`: a video model's latents as a pipeline holds them (its normalisation applied)."""

    images: ImageSource
    label: int | None = None
    samples: int = 0
    seed: int | None = None
    layers: Layers = "top"
    accepts: Accepts = NO_PREFERENCE
    exact: bool = False
    normalized: bool = False


@dataclass(frozen=True, slots=True)
class DecodeCall:
    """Latents to decode, in the `format` asked for (None: the adapter picks by what the client
    accepts); `height` and `width` in pixels for packed latents; latents scaled for a diffusion
    model are decoded as z / scaling_factor + shift_factor, and with `normalized` the model's own
    normalisation is undone (its scaling and shift, and a video model's per-channel
    latents_mean and latents_std); `exact`: on the fp32 decoder whatever precision was chosen
    for it (as for `EncodeCall`); `fps`: a video model's frames per second (None: the model's)."""

    latents: LatentSource
    label: int | None = None
    format: str | None = None
    height: int | None = None
    width: int | None = None
    accepts: Accepts = NO_PREFERENCE
    scaling_factor: float | None = None
    shift_factor: float | None = None
    exact: bool = False
    normalized: bool = False
    fps: float | None = None


@dataclass(frozen=True, slots=True)
class SampleCall:
    """`n` draws from the prior at `temperature`, reproducible with `seed`."""

    n: int
    temperature: float = 1.0
    seed: int | None = None
    label: int | None = None


@dataclass(frozen=True, slots=True)
class InterpolateCall:
    """A path of `steps` points from `start` to `end` by `method`."""

    start: Endpoint
    end: Endpoint
    steps: int
    method: Method = "slerp"
    label: int | None = None

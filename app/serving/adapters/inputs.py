"""Reading a flat-latent model's inputs, with a clear refusal for anything it cannot take: images
of its own size (base64 files, nested lists, a .npy batch), latent vectors, a VQ-VAE's code grids,
a conditional model's label; and the check that a decoder's output is finite."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.arrays import CodeArray, FloatArray
from app.repository.manifest import Manifest
from app.serving.adapters.errors import InvalidCodes, InvalidLabel, InvalidLatent
from app.serving.imaging import ImageError, decode_base64, decode_image

FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float32(value: Any) -> FloatArray:
    """Numbers (nested lists or an array) as float32. A number past float32's range becomes
    infinity quietly (numpy would warn on the cast, in the server's log), for the callers'
    finiteness checks to refuse."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(value, dtype=np.float32)


def array_image(value: Any, shape: tuple[int, int, int]) -> FloatArray:
    """One image given as nested lists ([C][H][W], [H][W] or [H][W][C]) -> float32 [C,H,W]."""
    try:
        array = as_float32(value)
    except (ValueError, TypeError):
        raise ImageError("an image array must be a rectangular nested list of numbers") from None
    return conform_image(array, shape)


def conform_image(array: np.ndarray, shape: tuple[int, int, int]) -> FloatArray:
    """Checks an image array against the model's shape and value range."""
    channels, _height, _width = shape
    if array.ndim == 2 and channels == 1:
        array = array[None]
    elif array.ndim == 3 and array.shape[0] != channels and array.shape[-1] == channels:
        array = array.transpose(2, 0, 1)
    if array.shape != shape:
        raise ImageError(
            f"image array has shape {list(array.shape)}, the model takes {list(shape)} (C,H,W)"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    array = as_float32(array)
    if not np.isfinite(array).all():
        raise ImageError("image arrays must not contain NaN or infinity")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ImageError("image array values must lie in [0, 1]")
    return array


def image_batch(
    images: list[str] | None, arrays: list[Any] | None, manifest: Manifest
) -> FloatArray:
    """Base64 images or arrays -> float32 [N,C,H,W]."""
    shape = manifest.image.shape
    if images is not None:
        decoded = [decode_image(decode_base64(text), shape) for text in images]
    else:
        decoded = [array_image(value, shape) for value in arrays or []]
    return np.stack(decoded).astype(np.float32, copy=False)


def npy_images(array: np.ndarray, manifest: Manifest) -> FloatArray:
    """A .npy of images -> float32 [N,C,H,W]. A 4-d array is a batch [N,C,H,W] (or [N,H,W,C]).
    For a one-channel model a 3-d array is a batch [N,H,W] and a 2-d array one image [H,W];
    for a model of C > 1 channels a 3-d array is one image [C,H,W] (or [H,W,C])."""
    channels, height, width = manifest.image.shape
    if array.ndim == 2 and channels == 1:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[:, None] if channels == 1 else array[None]
    if array.ndim != 4:
        one = "[H,W]" if channels == 1 else f"[{channels},H,W]"
        raise ImageError(
            f"a .npy of images must be a batch [N,{channels},{height},{width}]"
            + (f" or [N,{height},{width}]" if channels == 1 else "")
            + f", or one image {one}; got shape {list(array.shape)}"
        )
    if array.dtype != np.uint8:
        array = as_float32(array)
    return np.stack([conform_image(image, manifest.image.shape) for image in array])


def latent_batch(latents: Any, manifest: Manifest) -> FloatArray:
    """Latent vectors -> float32 [N,D], with the model's D and finite values."""
    try:
        z = as_float32(latents)
    except (ValueError, TypeError):
        raise InvalidLatent("latents must be a list of equal-length lists of numbers") from None
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != manifest.latent_dim:
        raise InvalidLatent(
            f"each latent must have {manifest.latent_dim} numbers (got shape {list(z.shape)})"
        )
    if not np.isfinite(z).all():
        raise InvalidLatent(
            f"latents must be finite numbers within float32's range (|z| <= {FLOAT32_MAX:.3g}): "
            "no NaN or infinity"
        )
    return z


def code_batch(codes: Any, manifest: Manifest) -> CodeArray:
    """A VQ-VAE's code grids (N x h x w, or one h x w grid) -> int64 [N,h,w], each code an
    index into its codebook."""
    try:
        array = np.asarray(codes)
    except (ValueError, TypeError):
        array = np.asarray([], dtype=object)
    if array.dtype.kind not in "iu":
        raise InvalidCodes("codes must be equal-size grids of integer code indices")
    if array.ndim == 2:
        array = array[None]
    grid = list(manifest.grid)
    if array.ndim != 3 or list(array.shape[1:]) != grid:
        raise InvalidCodes(
            f"each code grid must be {grid[0]} x {grid[1]} (got shape {list(array.shape)})"
        )
    if array.size and (array.min() < 0 or array.max() >= manifest.codebook_size):
        raise InvalidCodes(
            f"codes must lie in 0..{manifest.codebook_size - 1} (the codebook's size is "
            f"{manifest.codebook_size})"
        )
    return array.astype(np.int64)


def check_label(label: int | None, manifest: Manifest) -> int | None:
    """The graph's class index for `label`: required by a conditional model (one of its
    labels), refused by any other."""
    if not manifest.conditional:
        if label is not None:
            raise InvalidLabel(f"model {manifest.name} is not conditional: leave out 'label'")
        return None
    if label is None:
        raise InvalidLabel(
            f"model {manifest.name} is conditional: give 'label', one of {manifest.label_values}"
        )
    try:
        return manifest.label_index(label)
    except ValueError as error:
        raise InvalidLabel(str(error)) from None


def label_column(index: int | None, rows: int) -> np.ndarray | None:
    """The class index repeated for every row (None for an unconditional model)."""
    return None if index is None else np.full(rows, index, dtype=np.int64)


def check_finite_output(images: FloatArray) -> FloatArray:
    """Decoded images, or InvalidLatent when the decoder overflowed (finite latents far outside
    the prior, e.g. 3e38, make NaN pixels that would go out as nulls or garbage PNGs)."""
    if not np.isfinite(images).all():
        raise InvalidLatent(
            "the decoder overflowed on these latents: keep them near the prior (|z| of a few units)"
        )
    return images

"""Rendering what a model's adapter gives as an HTTP answer, whatever the kind: an encoding as
JSON, .npy or raw tensor bytes; images as base64 PNG or JPEG texts, float arrays, .npy, raw uint8
[N,H,W,C] or one image file. Large batches are rendered off the event loop."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from app.api.negotiation import RAW_MEDIA_TYPE
from app.api.responses import json_response, npy_response
from app.arrays import FloatArray
from app.serving.adapters.results import Decoded, Drawn, Encoding
from app.serving.imaging import encode_pngs_base64
from app.serving.registry import LoadedModel
from app.serving.spatial_io import encode_image, raw_uint8
from app.serving.tensors import to_bytes

# Images of up to this many values (a batch of small digits, say) are rendered on the event loop:
# a thread hop would cost more than the work. Larger ones are rendered in a worker thread.
INLINE_VALUES = 1 << 16

_T = TypeVar("_T")
TILING_HEADER = "X-VAE-Tiling"


def small(images: FloatArray) -> bool:
    """Whether images are rendered on the event loop (else in a worker thread)."""
    return images.size <= INLINE_VALUES


async def off_loop_when_large(images: FloatArray, render: Callable[[], _T]) -> _T:
    """`render()`, on the event loop for small images, in a worker thread for large ones."""
    if small(images):
        return render()
    return await asyncio.to_thread(render)


def version_headers(model: LoadedModel, tiling: str | None = None) -> dict[str, str]:
    """The headers naming the model and version that answered a binary response, and how the
    request was tiled (X-VAE-Tiling) when it was."""
    headers = {"X-Model": model.name, "X-Model-Version": str(model.version)}
    if tiling is not None:
        headers[TILING_HEADER] = tiling
    return headers


def raw_response(array: np.ndarray, dtype: str, headers: dict[str, str]) -> Response:
    """Raw tensor bytes with their `shape` (a JSON list) and `dtype` as headers (the names
    diffusers' remote VAE client reads)."""
    shape = json.dumps(list(array.shape))
    return Response(
        to_bytes(array, dtype),
        media_type=RAW_MEDIA_TYPE,
        headers={**headers, "shape": shape, "dtype": dtype},
    )


def images_body(images: FloatArray, fmt: str) -> dict[str, Any]:
    """Images as base64 PNGs or JPEGs (`images`) or float arrays (`arrays`)."""
    if fmt == "array":
        return {"arrays": images}
    if fmt == "jpeg":
        return {"images": [base64.b64encode(encode_image(i, "jpeg")).decode() for i in images]}
    return {"images": encode_pngs_base64(images)}


def encoding_response(request: Request, model: LoadedModel, encoding: Encoding) -> Response:
    """An encoding as .npy, raw bytes (the query's `dtype`) or JSON, as the adapter decided."""
    headers = version_headers(model, encoding.tiling)
    if encoding.form == "npy":
        return npy_response(encoding.tensor(), headers)
    if encoding.form == "raw":
        dtype = request.query_params.get("dtype", "float32")
        return raw_response(encoding.tensor(), dtype, headers)
    tiling = {} if encoding.tiling is None else {TILING_HEADER: encoding.tiling}
    return json_response(
        {"model": model.name, "version": model.version, **encoding.fields(),
         "latents": encoding.entries()},
        headers=tiling or None,
    )  # fmt: skip


def decoded_response(model: LoadedModel, decoded: Decoded) -> Response:
    """Decoded images in the format the adapter settled on (render large ones off the event
    loop: see `small`)."""
    images, fmt, headers = decoded.images, decoded.format, version_headers(model, decoded.tiled)
    if fmt == "npy":
        return npy_response(images, headers)
    if fmt == "raw":
        return raw_response(raw_uint8(images), "uint8", headers)
    if decoded.file and len(images) == 1:
        return Response(encode_image(images[0], fmt), media_type=f"image/{fmt}", headers=headers)
    body = {"model": model.name, "version": model.version, **images_body(images, fmt)}
    return json_response(body, headers=headers)


async def drawn_response(
    model: LoadedModel, drawn: Drawn, fmt: str, fields: dict[str, Any]
) -> Response:
    """/sample's or /interpolate's answer: the latents, `fields` (the seed, the method), a
    VQ-VAE's codes, and the images as JSON."""
    codes = {} if drawn.codes is None else {"codes": drawn.codes}
    images = await off_loop_when_large(drawn.images, lambda: images_body(drawn.images, fmt))
    return json_response(
        {"model": model.name, "version": model.version, "latents": drawn.latents, **codes,
         **fields, **images}
    )  # fmt: skip

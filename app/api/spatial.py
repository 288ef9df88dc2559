"""/encode, /decode and /interpolate for spatial models (kind `autoencoder`): images of any size
the model takes, latents [N,C,h,w] as JSON, .npy or raw bytes (`Content-Type:
application/octet-stream` with `shape` and `dtype` query parameters: float32, float16, bfloat16),
images out as PNG, JPEG (base64 in JSON, or the bytes themselves with `Accept: image/png` or
`image/jpeg`), raw uint8 [N,H,W,C], arrays or .npy. The routes in `app/api/inference.py` hand a
spatial model's request here."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import AppState, deadline_for, load_npy, wants_npy
from app.api.errors import ApiError
from app.api.payloads import check_count, check_finite_output
from app.api.responses import json_response, npy_response
from app.api.schemas import DecodeRequest, EncodeRequest, Endpoint, InterpolateRequest
from app.arrays import FloatArray
from app.config import Settings
from app.serving.imaging import decode_base64
from app.serving.registry import LoadedModel
from app.serving.spatial import (
    SpatialEncoded,
    check_request_pixels,
    to_model_range,
    to_unit_range,
)
from app.serving.spatial_io import (
    as_unit_images,
    decode_any_size,
    encode_image,
    raw_uint8,
    same_size,
)
from app.serving.tensors import from_bytes, parse_shape, to_bytes, unpack_latents

RAW_MEDIA_TYPE = "application/octet-stream"
RAW_TYPES = frozenset({RAW_MEDIA_TYPE, "tensor/binary"})
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpeg"}
IMAGE_FORMATS = ("png", "jpeg", "raw", "array", "npy")


def content_type(request: Request) -> str:
    """The body's media type, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_raw(request: Request) -> bool:
    """True for a body that is raw tensor bytes or an image file (spatial models only)."""
    kind = content_type(request)
    return kind in RAW_TYPES or kind in IMAGE_TYPES


def _headers(model: LoadedModel, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Model": model.name, "X-Model-Version": str(model.version), **(extra or {})}


def require_spatial(model: LoadedModel) -> None:
    """422 for a raw-bytes request to a model with a flat latent."""
    if model.manifest.spatial is None:
        raise ApiError(
            422,
            f"model {model.name} has a flat latent: send JSON or application/x-npy",
            "invalid_request",
        )


def query_tensor(request: Request, body: bytes) -> FloatArray:
    """A raw body read with the request's `shape` and `dtype` query parameters."""
    shape = request.query_params.getlist("shape")
    if not shape:
        raise ApiError(422, "a raw tensor needs its `shape` (and `dtype`) as query parameters")
    return from_bytes(body, parse_shape(shape), request.query_params.get("dtype", "float32"))


def _query_int(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        value = 0
    if value < 1:
        raise ApiError(422, f"{name} must be a positive integer, got {text!r}", "invalid_request")
    return value


def latents_from(request: Request, body: bytes, model: LoadedModel) -> FloatArray:
    """Raw latents [N,C,h,w] (or [C,h,w], or Flux-packed [N, patches, 4C] with `height` and
    `width` in pixels as query parameters)."""
    z = query_tensor(request, body)
    return shaped_latents(z, model, _query_int(request, "height"), _query_int(request, "width"))


def shaped_latents(
    z: FloatArray, model: LoadedModel, height: int | None, width: int | None
) -> FloatArray:
    """Latents as [N,C,h,w]: a single [C,h,w] gets a batch axis; packed ones are unpacked."""
    spec = model.manifest.spatial
    assert spec is not None
    if z.ndim == 3 and height is not None and width is not None:
        return unpack_latents(z, height, width, spec.downscale)
    if z.ndim == 3:
        return z[None]
    return z


def grid_array(value: Any) -> FloatArray:
    """Nested lists of latents as float32; 422 when they are ragged."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise ApiError(
            422, "latents must be equal-size nested lists of numbers", "invalid_latent"
        ) from None


# ---- /encode -----------------------------------------------------------------------------
async def encode_raw(
    request: Request, state: AppState, model: LoadedModel, body: bytes
) -> Response:
    """An image file, or a raw tensor [N,C,H,W] (floats in [0,1], or uint8), as the body."""
    require_spatial(model)
    kind = content_type(request)
    if kind in IMAGE_TYPES:
        channels, limit = model.manifest.image.channels, state.settings.max_pixels
        images = (await asyncio.to_thread(decode_any_size, body, channels, limit))[None]
    else:
        tensor = query_tensor(request, body)
        uint8 = request.query_params.get("dtype") == "uint8"
        images = as_unit_images(tensor.astype(np.uint8) if uint8 else tensor)
    return await _encode(request, state, model, images)


async def encode_npy(
    request: Request, state: AppState, model: LoadedModel, body: bytes
) -> Response:
    """A .npy image batch [N,C,H,W]."""
    images = as_unit_images(load_npy(body, state.settings.max_body_bytes))
    return await _encode(request, state, model, images)


async def encode_json(
    request: Request, state: AppState, model: LoadedModel, payload: EncodeRequest
) -> Response:
    """`images` (base64 PNG/JPEG) or `arrays` ([C][H][W] nested lists), all of one size."""
    if payload.samples or payload.label is not None or payload.layers != "top":
        raise ApiError(
            422,
            f"model {model.name} is a spatial autoencoder: 'samples', 'label' and 'layers' do "
            "not apply",
            "invalid_request",
        )
    images = await _json_images(state, model, payload.images, payload.arrays)
    return await _encode(request, state, model, images)


async def _json_images(
    state: AppState, model: LoadedModel, images: list[str] | None, arrays: list[Any] | None
) -> FloatArray:
    if images is not None:  # decoded off the event loop: a large PNG takes a while
        return await asyncio.to_thread(_decode_images, state.settings, model, images)
    try:
        stacked = np.asarray(arrays, dtype=np.float32)
    except (ValueError, TypeError):
        raise ApiError(
            422, "arrays must be equal-size nested lists of numbers", "invalid_image"
        ) from None
    return as_unit_images(stacked)


def _decode_images(settings: Settings, model: LoadedModel, texts: list[str]) -> FloatArray:
    """Base64 image files of one size -> [N,C,H,W] in [0,1]; TooManyPixels as soon as those
    decoded so far pass what a request may carry (memory stays bounded by it)."""
    channels, total, decoded = model.manifest.image.channels, 0, []
    for text in texts:
        image = decode_any_size(decode_base64(text), channels, settings.max_pixels)
        total += image.shape[-2] * image.shape[-1]
        check_request_pixels(total, settings.max_request_pixels)
        decoded.append(image)
    return same_size(decoded)


async def _encode(
    request: Request, state: AppState, model: LoadedModel, images: FloatArray
) -> Response:
    check_count(len(images), state.settings.max_items, "image")
    x = to_model_range(model.manifest, images)
    encoded = await state.spatial.encode(model, x, deadline_for(state.settings))
    return encoded_response(request, model, encoded)


def encoded_response(request: Request, model: LoadedModel, encoded: SpatialEncoded) -> Response:
    """The means as .npy, raw bytes (Accept application/octet-stream; `dtype` query) or JSON."""
    accept = request.headers.get("accept", "")
    if wants_npy(request):
        return npy_response(encoded.mean, _headers(model))
    if RAW_MEDIA_TYPE in accept:
        dtype = request.query_params.get("dtype", "float32")
        return raw_response(encoded.mean, dtype, _headers(model))
    sigma = encoded.sigma
    manifest = model.manifest
    latents = [
        {"mu": encoded.mean[i], "sigma": None if sigma is None else sigma[i],
         "cached": encoded.cached[i]}
        for i in range(len(encoded.mean))
    ]  # fmt: skip
    return json_response(
        {"model": model.name, "version": model.version, "latent_shape": list(encoded.mean.shape[1:]),
         "scaling_factor": manifest.scaling_factor, "shift_factor": manifest.shift_factor,
         "latents": latents}
    )  # fmt: skip


def raw_response(array: np.ndarray, dtype: str, headers: dict[str, str]) -> Response:
    """Raw tensor bytes with their `shape` (a JSON list) and `dtype` as headers (the names
    diffusers' remote VAE client reads)."""
    shape = json.dumps(list(array.shape))
    return Response(
        to_bytes(array, dtype),
        media_type=RAW_MEDIA_TYPE,
        headers={**headers, "shape": shape, "dtype": dtype},
    )


# ---- /decode -----------------------------------------------------------------------------
async def decode_raw(
    request: Request, state: AppState, model: LoadedModel, body: bytes
) -> Response:
    """Raw latents (shape, dtype, and height/width for packed ones, as query parameters)."""
    require_spatial(model)
    if content_type(request) in IMAGE_TYPES:
        raise ApiError(415, "/decode takes latents, not an image", "unsupported_media_type")
    z = latents_from(request, body, model)
    return await _decode(request, state, model, z, request.query_params.get("format"))


async def decode_npy(
    request: Request, state: AppState, model: LoadedModel, body: bytes
) -> Response:
    """A .npy latent batch [N,C,h,w]."""
    z = load_npy(body, state.settings.max_body_bytes).astype(np.float32)
    z = shaped_latents(z, model, _query_int(request, "height"), _query_int(request, "width"))
    return await _decode(request, state, model, z, request.query_params.get("format"))


async def decode_json(
    request: Request, state: AppState, model: LoadedModel, payload: DecodeRequest
) -> Response:
    """`latents` as nested lists [N][C][h][w] (or one [C][h][w])."""
    if payload.codes is not None or payload.label is not None:
        raise ApiError(422, "a spatial model takes only 'latents'", "invalid_request")
    z = shaped_latents(grid_array(payload.latents), model, None, None)
    return await _decode(request, state, model, z, payload.format)


def _format(request: Request, fmt: str | None) -> str:
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = next((f for t, f in IMAGE_TYPES.items() if t in accept), None)
        fmt = fmt or ("npy" if wants_npy(request) else "raw" if RAW_MEDIA_TYPE in accept else "png")
    if fmt not in IMAGE_FORMATS:
        raise ApiError(422, f"format must be one of {', '.join(IMAGE_FORMATS)}", "invalid_request")
    return fmt


async def _decode(
    request: Request, state: AppState, model: LoadedModel, z: FloatArray, fmt: str | None
) -> Response:
    check_count(len(z), state.settings.max_items, "latent")
    out = await decode_checked(state, model, z)
    fmt = _format(request, fmt)
    return await asyncio.to_thread(
        images_response, request, model, to_unit_range(model.manifest, out), fmt
    )


async def decode_checked(state: AppState, model: LoadedModel, z: FloatArray) -> FloatArray:
    """The decoder's output for finite latents z [N,C,h,w]; 422 for latents that are not
    finite, or that overflow the decoder."""
    if not np.isfinite(z).all():
        raise ApiError(422, "latents must not contain NaN or infinity", "invalid_latent")
    return check_finite_output(await state.spatial.decode(model, z, deadline_for(state.settings)))


def images_response(request: Request, model: LoadedModel, images: FloatArray, fmt: str) -> Response:
    """Images [N,C,H,W] in [0,1] in the format asked for."""
    headers = _headers(model)
    if fmt == "npy":
        return npy_response(images, headers)
    if fmt == "raw":
        return raw_response(raw_uint8(images), "uint8", headers)
    accept = request.headers.get("accept", "")
    if fmt in {"png", "jpeg"} and f"image/{fmt}" in accept and len(images) == 1:
        return Response(encode_image(images[0], fmt), media_type=f"image/{fmt}", headers=headers)
    body = {"model": model.name, "version": model.version, **images_body(images, fmt)}
    return json_response(body, headers=headers)


def images_body(images: FloatArray, fmt: str) -> dict[str, Any]:
    """Images as base64 PNG or JPEG texts (`images`), or float arrays (`arrays`)."""
    if fmt == "array":
        return {"arrays": images}
    return {"images": [base64.b64encode(encode_image(i, fmt)).decode("ascii") for i in images]}


# ---- /interpolate ------------------------------------------------------------------------
async def _endpoint_latent(state: AppState, model: LoadedModel, endpoint: Endpoint) -> FloatArray:
    if endpoint.latent is not None:
        z = grid_array(endpoint.latent)
        if z.ndim != 3 or not np.isfinite(z).all():
            raise ApiError(
                422,
                "a spatial model's latent endpoint is [C][h][w] finite numbers",
                "invalid_latent",
            )
        return z
    if endpoint.codes is not None:
        raise ApiError(422, "a spatial model has no codes", "invalid_request")
    images = await _json_images(
        state,
        model,
        None if endpoint.image is None else [endpoint.image],
        None if endpoint.array is None else [endpoint.array],
    )
    x = to_model_range(model.manifest, images)
    encoded = await state.spatial.encode(model, x, deadline_for(state.settings))
    return encoded.mean[0]


async def interpolate(state: AppState, model: LoadedModel, payload: InterpolateRequest) -> Response:
    """lerp or slerp over the whole latent between two images (or latents) of one size."""
    if payload.label is not None:
        raise ApiError(422, "a spatial model takes no 'label'", "invalid_label")
    start = await _endpoint_latent(state, model, payload.start)
    end = await _endpoint_latent(state, model, payload.end)
    path, out = await state.spatial.interpolate(
        model, start, end, payload.steps, payload.method, deadline_for(state.settings)
    )
    images = to_unit_range(model.manifest, check_finite_output(out))
    body = await asyncio.to_thread(images_body, images, payload.format)
    return json_response(
        {"model": model.name, "version": model.version, "latents": path, "method": payload.method,
         **body}
    )  # fmt: skip

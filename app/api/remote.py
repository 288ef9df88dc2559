"""Hugging Face's remote-VAE protocol, self-hosted: `POST /remote/{model}/decode` and
`POST /remote/{model}/encode` take what `diffusers.utils.remote_decode` and `remote_encode` send
and answer what they read, so a diffusers user changes only the endpoint URL.

Decode: the body is the latents' raw bytes; query `shape` (repeated), `dtype` (float32, float16,
bfloat16), `scaling_factor`, `shift_factor` (the server computes latents / scaling_factor +
shift_factor), `height`/`width` for Flux-style packed latents [N, patches, 4C], `output_type`
(`pil`: the image file, `image_format` png or jpg; `pt`: a raw tensor with `shape` and `dtype`
headers, uint8 [N,H,W,C] with `partial_postprocess`, else the decoder's output [N,C,H,W] in its
own range, in the latents' dtype). Encode: a PNG body (a PIL image) or a raw tensor [N,C,H,W] in
the model's range (query `shape`, `dtype`) -> the latent mean, (mean - shift_factor) *
scaling_factor when given, as a raw tensor. With `VAE_REMOTE_TOKEN` set, both need
`Authorization: Bearer <token>`. Like the other inference routes, both are rate limited
(app/api/ratelimit.py) and their work is dropped when the client hangs up (app/api/disconnect.py).
"""

from __future__ import annotations

import asyncio
import hmac

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import AppState, StateDep, deadline_for
from app.api.disconnect import while_connected
from app.api.errors import ApiError, error_responses
from app.api.payloads import check_count
from app.api.spatial import (
    decode_checked,
    latents_from,
    query_tensor,
    raw_response,
    require_spatial,
)
from app.arrays import FloatArray
from app.config import Settings
from app.serving.spatial import to_model_range, to_unit_range
from app.serving.spatial_io import as_unit_images, decode_any_size, encode_image, raw_uint8

router = APIRouter(prefix="/remote", tags=["remote VAE (diffusers)"])
_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504, _404="unknown model")
_BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}
_BODY = {"requestBody": {"required": True, **_BINARY}, "responses": {"200": _BINARY}}


def check_token(request: Request, settings: Settings) -> None:
    """401/403 unless the request carries the remote token (when one is set)."""
    token = settings.remote_token
    if not token:
        return
    given = request.headers.get("authorization", "")
    if not given.lower().startswith("bearer "):
        raise ApiError(401, "send Authorization: Bearer <VAE_REMOTE_TOKEN>", "unauthorized")
    if not hmac.compare_digest(given[7:].strip().encode(), token.encode()):
        raise ApiError(403, "the bearer token is not this server's remote token", "forbidden")


def _float(request: Request, name: str) -> float | None:
    """A finite number from the query (None when absent); 422 for anything else."""
    text = request.query_params.get(name)
    if text in (None, "", "None"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise ApiError(422, f"{name} must be a finite number, got {text!r}", "invalid_request")
    return value


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in {"true", "1", "yes"}


@router.post("/{model}/decode", responses=_ERRORS, openapi_extra=_BODY)
async def remote_decode(model: str, request: Request, state: StateDep) -> Response:
    """Latents (raw bytes) -> an image file or a tensor, as `diffusers.utils.remote_decode`
    expects."""
    check_token(request, state.settings)
    body = await request.body()
    return await while_connected(request, _decode(model, request, body, state))


async def _decode(model: str, request: Request, body: bytes, state: AppState) -> Response:
    loaded = await state.registry.resolve(model)
    require_spatial(loaded)
    z = latents_from(request, body, loaded)
    check_count(len(z), state.settings.max_items, "latent")
    manifest = loaded.manifest
    scaling, shift = _float(request, "scaling_factor"), _float(request, "shift_factor")
    if scaling is None and _flag(request, "do_scaling"):  # the model's own, where not given
        scaling = manifest.scaling_factor
        shift = manifest.shift_factor if shift is None else shift
    if scaling == 0:
        raise ApiError(
            422, "scaling_factor must not be 0: decoding divides by it", "invalid_request"
        )
    if scaling is not None:
        z = z / np.float32(scaling)
    if shift is not None:
        z = z + np.float32(shift)
    out = await decode_checked(state, loaded, z)
    headers = {"X-Model": loaded.name, "X-Model-Version": str(loaded.version)}
    output_type = request.query_params.get("output_type", "pil")
    accept = request.headers.get("accept", "")
    if output_type == "pil" and accept.startswith("image/"):
        return await asyncio.to_thread(_image_file, request, to_unit_range(manifest, out), headers)
    if output_type == "pil":  # a processor was passed: [N,C,H,W] in [0,1]
        dtype = request.query_params.get("dtype", "float32")
        return raw_response(to_unit_range(manifest, out), dtype, headers)
    if output_type != "pt":
        raise ApiError(422, f"output_type {output_type!r}: this server gives pil or pt")
    if _flag(request, "partial_postprocess"):
        return raw_response(raw_uint8(to_unit_range(manifest, out)), "uint8", headers)
    return raw_response(out, request.query_params.get("dtype", "float32"), headers)


def _image_file(request: Request, images: FloatArray, headers: dict[str, str]) -> Response:
    if len(images) != 1:
        raise ApiError(
            422,
            f"output_type pil gives one image; {len(images)} latents were sent (use output_type pt)",
        )
    fmt = "png" if request.query_params.get("image_format", "jpg") == "png" else "jpeg"
    return Response(encode_image(images[0], fmt), media_type=f"image/{fmt}", headers=headers)


@router.post("/{model}/encode", responses=_ERRORS, openapi_extra=_BODY)
async def remote_encode(model: str, request: Request, state: StateDep) -> Response:
    """An image (PNG bytes) or a raw tensor in the model's range -> the latent mean, shifted
    and scaled when asked, as `diffusers.utils.remote_encode` expects."""
    check_token(request, state.settings)
    body = await request.body()
    return await while_connected(request, _encode(model, request, body, state))


async def _encode(model: str, request: Request, body: bytes, state: AppState) -> Response:
    loaded = await state.registry.resolve(model)
    require_spatial(loaded)
    manifest = loaded.manifest
    dtype = "float32"
    if request.query_params.getlist("shape"):
        tensor = query_tensor(request, body)
        dtype = request.query_params.get("dtype", "float32")
        if dtype == "uint8":
            x = to_model_range(manifest, as_unit_images(tensor.astype(np.uint8)))
            dtype = "float32"
        else:
            x = tensor[None] if tensor.ndim == 3 else tensor
    else:
        channels, limit = manifest.image.channels, state.settings.max_pixels
        image = await asyncio.to_thread(decode_any_size, body, channels, limit)
        x = to_model_range(manifest, image[None])
    if x.ndim != 4:
        raise ApiError(422, f"images are [N,C,H,W], got {list(x.shape)}", "invalid_tensor")
    check_count(len(x), state.settings.max_items, "image")
    encoded = await state.spatial.encode(loaded, x, deadline_for(state.settings))
    latents = encoded.mean
    shift, scaling = _float(request, "shift_factor"), _float(request, "scaling_factor")
    if shift is not None:
        latents = latents - np.float32(shift)
    if scaling is not None:
        latents = latents * np.float32(scaling)
    headers = {"X-Model": loaded.name, "X-Model-Version": str(loaded.version)}
    return raw_response(latents, dtype, headers)

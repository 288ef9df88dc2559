"""Hugging Face's remote-VAE protocol, self-hosted: `POST /remote/{model}/decode` and
`POST /remote/{model}/encode` take what `diffusers.utils.remote_decode` and `remote_encode` send
and answer what they read, so a diffusers user changes only the endpoint URL. A video model's
decode (latents [N,C,T,h,w]) answers as `remote_video.py` says.

Decode: the body is the latents' raw bytes; query `shape` (repeated), `dtype` (float32, float16,
bfloat16), `scaling_factor`, `shift_factor` (the server computes latents / scaling_factor +
shift_factor), `height`/`width` for Flux-style packed latents [N, patches, 4C], `output_type`
(`pil`: the image file, `image_format` png or jpg; `pt`: a raw tensor with `shape` and `dtype`
headers, uint8 [N,H,W,C] with `partial_postprocess`, else the decoder's output [N,C,H,W] in its
own range, in the latents' dtype). Encode: a PNG body (a PIL image) or a raw tensor [N,C,H,W] in
the model's range (query `shape`, `dtype`) -> the latent mean, (mean - shift_factor) *
scaling_factor when given, as a raw tensor. Both promise what the local diffusers model computes,
so both run the version's fp32 graphs (`exact`), whatever precision its other routes were given
(OpenVINO bf16 on an AMX CPU: 40 dB PSNR, but up to ~15 of 255 levels off fp32). With `VAE_REMOTE_TOKEN` set, both need
`Authorization: Bearer <token>`. Like the other inference routes, both are rate limited
(app/api/ratelimit.py) and their work is dropped when the client hangs up (app/api/disconnect.py).
"""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from app.api.deps import AppState, StateDep
from app.api.disconnect import while_connected
from app.api.errors import error_responses
from app.api.negotiation import query_flag, query_float, query_size
from app.api.remote_video import remote_video_response
from app.api.rendering import raw_response, version_headers
from app.api.tokens import check_bearer
from app.arrays import FloatArray
from app.serving.adapters.errors import InvalidRequest
from app.serving.adapters.requests import DecodeCall, EncodeCall, ImageFile, RawTensor
from app.serving.adapters.results import DecodedVideo
from app.serving.spatial_io import encode_image, raw_uint8

router = APIRouter(prefix="/remote", tags=["remote VAE (diffusers)"])
_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504, _404="unknown model")
_BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}
_BODY = {"requestBody": {"required": True, **_BINARY}, "responses": {"200": _BINARY}}


def check_token(request: Request, state: AppState) -> None:
    """401/403 unless the request carries the remote token (when one is set)."""
    check_bearer(
        request,
        state.settings.remote_token,
        missing="send Authorization: Bearer <VAE_REMOTE_TOKEN>",
        wrong="the bearer token is not this server's remote token",
    )


@router.post("/{model}/decode", responses=_ERRORS, openapi_extra=_BODY)
async def remote_decode(model: str, request: Request, state: StateDep) -> Response:
    """Latents (raw bytes) -> an image file or a tensor, as `diffusers.utils.remote_decode`
    expects."""
    check_token(request, state)
    body = await request.body()
    return await while_connected(request, _decode(model, request, body, state))


async def _decode(model: str, request: Request, body: bytes, state: AppState) -> Response:
    loaded = await state.registry.resolve(model)
    query = request.query_params
    dtype, output_type = query.get("dtype", "float32"), query.get("output_type", "pil")
    scaling, shift = query_float(request, "scaling_factor"), query_float(request, "shift_factor")
    # do_scaling without a scaling_factor: the model's own normalisation (its scaling and shift;
    # a video model's per-channel mean and std too, which `normalized` asks for)
    normalized = scaling is None and query_flag(request, "do_scaling")
    if normalized:
        scaling = loaded.manifest.scaling_factor
        shift = loaded.manifest.shift_factor if shift is None else shift
    call = DecodeCall(
        RawTensor(body, query.getlist("shape"), dtype),
        height=query_size(request, "height"),
        width=query_size(request, "width"),
        scaling_factor=scaling,
        shift_factor=shift,
        exact=True,
        normalized=normalized,
        format="npy",  # frames whatever output_type says: every kind gives npy
    )
    decoded = await loaded.adapter.decode(call)
    if isinstance(decoded, DecodedVideo):
        return await remote_video_response(loaded, decoded, output_type, dtype, request)
    headers = version_headers(loaded, decoded.tiled)
    if output_type == "pil" and request.headers.get("accept", "").startswith("image/"):
        return await asyncio.to_thread(_image_file, request, decoded.images, headers)
    if output_type == "pil":  # a processor was passed: [N,C,H,W] in [0,1]
        return raw_response(decoded.images, dtype, headers)
    if output_type != "pt":
        raise InvalidRequest(f"output_type {output_type!r}: this server gives pil or pt")
    if query_flag(request, "partial_postprocess"):
        return raw_response(raw_uint8(decoded.images), "uint8", headers)
    return raw_response(decoded.raw_output, dtype, headers)


def _image_file(request: Request, images: FloatArray, headers: dict[str, str]) -> Response:
    if len(images) != 1:
        raise InvalidRequest(
            f"output_type pil gives one image; {len(images)} latents were sent (use output_type pt)"
        )
    fmt = "png" if request.query_params.get("image_format", "jpg") == "png" else "jpeg"
    return Response(encode_image(images[0], fmt), media_type=f"image/{fmt}", headers=headers)


@router.post("/{model}/encode", responses=_ERRORS, openapi_extra=_BODY)
async def remote_encode(model: str, request: Request, state: StateDep) -> Response:
    """An image (PNG bytes) or a raw tensor in the model's range -> the latent mean, shifted
    and scaled when asked, as `diffusers.utils.remote_encode` expects."""
    check_token(request, state)
    body = await request.body()
    return await while_connected(request, _encode(model, request, body, state))


async def _encode(model: str, request: Request, body: bytes, state: AppState) -> Response:
    loaded = await state.registry.resolve(model)
    shape = request.query_params.getlist("shape")
    dtype = request.query_params.get("dtype", "float32") if shape else "float32"
    source = RawTensor(body, shape, dtype, model_range=True) if shape else ImageFile(body)
    encoding = await loaded.adapter.encode(EncodeCall(source, exact=True))
    latents = encoding.tensor()
    shift = query_float(request, "shift_factor")
    scaling = query_float(request, "scaling_factor")
    if shift is not None:
        latents = latents - np.float32(shift)
    if scaling is not None:
        latents = latents * np.float32(scaling)
    return raw_response(
        latents,
        "float32" if dtype == "uint8" else dtype,
        headers=version_headers(loaded, encoding.tiling),
    )

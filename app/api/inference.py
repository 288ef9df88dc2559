"""POST /encode, /decode, /sample, /interpolate: the content type negotiated once
(`negotiation`), the body parsed to a typed call, the model's adapter answers, the result
rendered (`rendering`). Which kind of model answers is the adapter's business, never a route's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from app.api.deps import AppState, StateDep, get_state, parse_body
from app.api.disconnect import while_connected
from app.api.errors import error_responses
from app.api.hot_routes import install_hot_route
from app.api.negotiation import (
    BodyForm,
    accepts,
    binary_body,
    body_form,
    latent_body,
    query_flag,
    query_fps,
    query_label,
    query_size,
)
from app.api.rendering import decoded_response, drawn_response, encoding_response, small
from app.api.responses import NPY_MEDIA_TYPE
from app.api.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    Endpoint,
    ImagesResponse,
    InterpolateRequest,
    SampleRequest,
)
from app.api.video_rendering import MP4_MEDIA_TYPE, video_response
from app.serving.adapters import requests as calls
from app.serving.adapters.errors import TooLarge, check_count
from app.serving.adapters.results import DecodedVideo

router = APIRouter(tags=["inference"])

_ERRORS = error_responses(400, 404, 413, 415, 422, 429, 503, 504, _404="unknown model")


def _binary(description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "format": "binary"}
    return {"schema": schema if description is None else {**schema, "description": description}}


def _body_spec(
    model: type[Any], npy_text: str, takes: dict[str, str], gives: tuple[str, ...]
) -> dict[str, Any]:
    """The JSON or .npy request body (or the binary media types in `takes`, with what each
    holds), and the .npy answer (and the binary ones in `gives`) beside the JSON one."""
    answers = {media: _binary() for media in (NPY_MEDIA_TYPE, *gives)}
    bodies = {media: _binary(text) for media, text in takes.items()}
    return {
        "responses": {"200": {"content": answers}},
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
                NPY_MEDIA_TYPE: _binary(npy_text),
                **bodies,
            },
        },
    }


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _body_route(
    path: str,
    answer: type[Any],
    schema: type[Any],
    npy_text: str,
    takes: dict[str, str] | None = None,
    gives: tuple[str, ...] = (),
) -> Callable[[_Handler], _Handler]:
    """POST `path` documented with a JSON (`schema`) or .npy body (or `takes`) and a JSON
    (`answer`) or .npy response (or `gives`)."""
    return router.post(
        path,
        response_model=answer,
        responses=_ERRORS,
        openapi_extra=_body_spec(schema, npy_text, takes or {}, gives),
    )


_BodyHandler = Callable[[Request, AppState, bytes, BodyForm], Awaitable[Response]]


async def _answer(request: Request, state: AppState, handler: _BodyHandler) -> Response:
    """Tells what the body is (415 for what no route reads), reads it, and answers with
    `handler` while the client stays connected."""
    form = body_form(request)
    body = await request.body()
    return await while_connected(request, handler(request, state, body, form))


@_body_route(
    "/encode", EncodeResponse, EncodeRequest,
    "images [N,C,H,W] in [0,1] (or uint8); a video model's frames [F,H,W,C] uint8, or "
    "[F,C,H,W] / [N,F,C,H,W] in [0,1]; query: model",
    takes={MP4_MEDIA_TYPE: "a video model's clip: an mp4, or any video/* FFmpeg reads; "
           "query: model, normalized"},
)  # fmt: skip
async def encode(request: Request, state: StateDep) -> Response:
    """Images -> per image the posterior mean `mu` and standard deviation `sigma`.

    With `samples` > 0, also that many draws z ~ q(z|x) per image. Send `Accept: application/x-npy`
    to get a float32 array [N, 2, D] (mu, sigma) instead of JSON.
    """
    return await _answer(request, state, _encode)


async def _encode(request: Request, state: AppState, body: bytes, form: BodyForm) -> Response:
    if form == "json":
        payload = parse_body(EncodeRequest, body)
        images: calls.ImageSource
        if payload.images is not None:
            images = calls.Base64Images(payload.images)
        else:
            images = calls.ListImages(payload.arrays or [])
        check_count(len(payload.images or payload.arrays or []), state.settings.max_items, "image")
        model = await state.registry.resolve(payload.model)
        call = calls.EncodeCall(
            images, payload.label, payload.samples, payload.seed, payload.layers, accepts(request)
        )
    else:
        model = await state.registry.resolve(request.query_params.get("model"))
        label = query_label(request)
        source = binary_body(request, body, form)
        normalized = query_flag(request, "normalized")
        call = calls.EncodeCall(source, label, accepts=accepts(request), normalized=normalized)
    return encoding_response(request, model, await model.adapter.encode(call))


@_body_route(
    "/decode", ImagesResponse, DecodeRequest,
    "latents [N,D] float32 (a video model's [C,T,h,w] or [N,C,T,h,w]); query: model, format "
    "(a video model's also fps, normalized)",
    gives=(MP4_MEDIA_TYPE,),
)  # fmt: skip
async def decode(request: Request, state: StateDep) -> Response:
    """Latent vectors -> images (`format`: png, array or npy).

    A spatial model (kind autoencoder) takes latents [N,C,h,w] as nested lists, .npy or raw
    bytes (`Content-Type: application/octet-stream`, query `shape`, `dtype`; `height`, `width`
    for packed latents) and gives png, jpeg, raw (uint8 [N,H,W,C]), array or npy.

    A video model (kind video_autoencoder) takes one clip's latents [C,T,h,w] or clips
    [N,C,T,h,w] the same ways (query or JSON `fps`, `normalized` for a pipeline's latents) and
    gives mp4 (`video/mp4`, H.264, streamed as the clip is decoded; one clip), npy (float32
    frames in [0,1], [F,C,H,W] or [N,F,C,H,W]), raw (uint8 [F,H,W,C] or [N,F,H,W,C]) or png
    (JSON `frames`, or `clips`), with headers X-VAE-Frames and X-VAE-FPS."""
    return await _answer(request, state, _decode)


async def _decode(request: Request, state: AppState, body: bytes, form: BodyForm) -> Response:
    if form == "json":
        payload = parse_body(DecodeRequest, body)
        check_count(len(payload.latents or payload.codes or []), state.settings.max_items, "latent")
        model = await state.registry.resolve(payload.model)
        latents = calls.NestedLatents(payload.latents, payload.codes)
        call = calls.DecodeCall(
            latents, payload.label, payload.format, accepts=accepts(request),
            normalized=payload.normalized, fps=payload.fps,
        )  # fmt: skip
    else:
        model = await state.registry.resolve(request.query_params.get("model"))
        query = request.query_params
        call = calls.DecodeCall(
            latent_body(request, body, form), query_label(request), query.get("format"),
            query_size(request, "height"), query_size(request, "width"), accepts(request),
            normalized=query_flag(request, "normalized"), fps=query_fps(request),
        )  # fmt: skip
    decoded = await model.adapter.decode(call)
    if isinstance(decoded, DecodedVideo):
        return await video_response(model, decoded)
    if small(decoded.images):
        return decoded_response(model, decoded)
    return await asyncio.to_thread(decoded_response, model, decoded)


async def _decode_hot(request: Request) -> Response:
    """POST /decode as a plain Starlette endpoint: the same handler, without FastAPI's
    per-request dependency solving and route wrapping (about a sixth of the event loop's time
    on one-latent requests). It resolves the handler's one dependency itself: `install_hot_routes`
    refuses a documented route that needs anything more."""
    return await decode(request, await get_state(request))


def install_hot_routes(app: FastAPI) -> None:
    """Puts the hot POST /decode ahead of FastAPI's documented one (app/api/hot_routes.py).
    Call it once every router is included."""
    install_hot_route(app, "/decode", _decode_hot, decode)


@router.post("/sample", response_model=ImagesResponse, responses=_ERRORS)
async def sample(payload: SampleRequest, state: StateDep, request: Request) -> Response:
    """`n` draws from the prior N(0, temperature^2 I), decoded. The same `seed` gives the same images.

    A vqvae draws code grids from its PixelCNN prior instead (logits divided by `temperature`,
    the most likely codes at 0) and returns them as `codes` beside their codebook vectors."""
    return await while_connected(request, _sample(payload, state))


async def _sample(payload: SampleRequest, state: AppState) -> Response:
    check_count(payload.n, state.settings.max_items, "sample")
    model = await state.registry.resolve(payload.model)
    call = calls.SampleCall(payload.n, payload.temperature, payload.seed, payload.label)
    drawn = await model.adapter.sample(call)
    return await drawn_response(model, drawn, payload.format, {"seed": drawn.seed})


def _endpoint(endpoint: Endpoint) -> calls.Endpoint:
    """One end of an interpolation as the adapter reads it."""
    if endpoint.latent is not None:
        return calls.LatentPoint(endpoint.latent)
    if endpoint.image is not None:
        return calls.Base64Images([endpoint.image])
    if endpoint.codes is not None:
        return calls.CodesPoint(endpoint.codes)
    return calls.ListImages([endpoint.array])


@router.post("/interpolate", response_model=ImagesResponse, responses=_ERRORS)
async def interpolate(payload: InterpolateRequest, state: StateDep, request: Request) -> Response:
    """A path of `steps` points from `start` to `end` (images are encoded to their mean), by
    `method` lerp or slerp, decoded."""
    return await while_connected(request, _interpolate(payload, state))


async def _interpolate(payload: InterpolateRequest, state: AppState) -> Response:
    if payload.steps > state.settings.max_steps:
        raise TooLarge(f"at most {state.settings.max_steps} steps, got {payload.steps}")
    model = await state.registry.resolve(payload.model)
    start, end = _endpoint(payload.start), _endpoint(payload.end)
    call = calls.InterpolateCall(start, end, payload.steps, payload.method, payload.label)
    drawn = await model.adapter.interpolate(call)
    return await drawn_response(model, drawn, payload.format, {"method": payload.method})

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
from app.serving.adapters import requests as calls
from app.serving.adapters.errors import TooLarge, check_count

router = APIRouter(tags=["inference"])

_ERRORS = error_responses(400, 404, 413, 415, 422, 429, 503, 504, _404="unknown model")


def _body_spec(model: type[Any], npy_text: str) -> dict[str, Any]:
    """The JSON or .npy request body, and the .npy answer beside the JSON one."""
    return {
        "responses": {
            "200": {"content": {NPY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
        },
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
                NPY_MEDIA_TYPE: {
                    "schema": {"type": "string", "format": "binary", "description": npy_text}
                },
            },
        },
    }


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _body_route(
    path: str, answer: type[Any], schema: type[Any], npy_text: str
) -> Callable[[_Handler], _Handler]:
    """POST `path` documented with a JSON (`schema`) or .npy body and a JSON (`answer`) or .npy
    response."""
    return router.post(
        path, response_model=answer, responses=_ERRORS, openapi_extra=_body_spec(schema, npy_text)
    )


_BodyHandler = Callable[[Request, AppState, bytes, BodyForm], Awaitable[Response]]


async def _answer(request: Request, state: AppState, handler: _BodyHandler) -> Response:
    """Tells what the body is (415 for what no route reads), reads it, and answers with
    `handler` while the client stays connected."""
    form = body_form(request)
    body = await request.body()
    return await while_connected(request, handler(request, state, body, form))


@_body_route(
    "/encode", EncodeResponse, EncodeRequest, "images [N,C,H,W] in [0,1] (or uint8); query: model"
)
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
        call = calls.EncodeCall(source, label, accepts=accepts(request))
    return encoding_response(request, model, await model.adapter.encode(call))


@_body_route(
    "/decode", ImagesResponse, DecodeRequest, "latents [N,D] float32; query: model, format"
)
async def decode(request: Request, state: StateDep) -> Response:
    """Latent vectors -> images (`format`: png, array or npy).

    A spatial model (kind autoencoder) takes latents [N,C,h,w] as nested lists, .npy or raw
    bytes (`Content-Type: application/octet-stream`, query `shape`, `dtype`; `height`, `width`
    for packed latents) and gives png, jpeg, raw (uint8 [N,H,W,C]), array or npy."""
    return await _answer(request, state, _decode)


async def _decode(request: Request, state: AppState, body: bytes, form: BodyForm) -> Response:
    if form == "json":
        payload = parse_body(DecodeRequest, body)
        check_count(len(payload.latents or payload.codes or []), state.settings.max_items, "latent")
        model = await state.registry.resolve(payload.model)
        latents = calls.NestedLatents(payload.latents, payload.codes)
        call = calls.DecodeCall(latents, payload.label, payload.format, accepts=accepts(request))
    else:
        model = await state.registry.resolve(request.query_params.get("model"))
        query = request.query_params
        call = calls.DecodeCall(
            binary_body(request, body, form), query_label(request), query.get("format"),
            query_size(request, "height"), query_size(request, "width"), accepts(request),
        )  # fmt: skip
    decoded = await model.adapter.decode(call)
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

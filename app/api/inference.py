"""POST /encode, /decode, /sample, /interpolate."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from app.api.deps import (
    StateDep,
    deadline_for,
    get_state,
    is_npy,
    load_npy,
    parse_body,
    wants_npy,
)
from app.api.disconnect import while_connected
from app.api.errors import ApiError, error_responses
from app.api.payloads import (
    check_count,
    check_finite_output,
    check_label,
    code_batch,
    endpoint_payload,
    image_batch,
    label_column,
    latent_batch,
    npy_images,
    render_images,
)
from app.api.responses import NPY_MEDIA_TYPE, json_response, npy_response
from app.api.schemas import (
    DecodeRequest,
    EncodeRequest,
    EncodeResponse,
    Endpoint,
    ImagesResponse,
    InterpolateRequest,
    SampleRequest,
)
from app.serving.imaging import decode_base64, decode_image
from app.serving.registry import LoadedModel

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


def _content_type_ok(request: Request) -> None:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind not in {"application/json", NPY_MEDIA_TYPE, ""}:
        raise ApiError(
            415, f"send application/json or {NPY_MEDIA_TYPE}, not {kind}", "unsupported_media_type"
        )


@router.post(
    "/encode",
    response_model=EncodeResponse,
    responses=_ERRORS,
    openapi_extra=_body_spec(EncodeRequest, "images [N,C,H,W] in [0,1] (or uint8); query: model"),
)
async def encode(request: Request, state: StateDep) -> Response:
    """Images -> per image the posterior mean `mu` and standard deviation `sigma`.

    With `samples` > 0, also that many draws z ~ q(z|x) per image. Send `Accept: application/x-npy`
    to get a float32 array [N, 2, D] (mu, sigma) instead of JSON.
    """
    _content_type_ok(request)
    body = await request.body()
    return await while_connected(request, _encode(request, state, body))


async def _encode(request: Request, state: StateDep, body: bytes) -> Response:
    settings = state.settings
    bottom = False
    if is_npy(request):
        model = await state.registry.resolve(request.query_params.get("model"))
        label = check_label(_query_label(request), model.manifest)
        images = npy_images(load_npy(body, settings.max_body_bytes), model.manifest)
        samples, seed = 0, None
    else:
        payload = parse_body(EncodeRequest, body)
        check_count(len(payload.images or payload.arrays or []), settings.max_items, "image")
        model = await state.registry.resolve(payload.model)
        label = check_label(payload.label, model.manifest)
        images = image_batch(payload.images, payload.arrays, model.manifest)
        samples, seed, bottom = payload.samples, payload.seed, payload.layers == "all"
    check_count(len(images), settings.max_items, "image")
    labels = label_column(label, len(images))
    if model.vq is not None:
        return await _encode_codes(request, state, model, images, samples)
    if bottom and model.manifest.noise_dim:
        return await _encode_all_layers(state, model, images, labels)
    encoded = await state.inference.encode(model, images, deadline_for(settings), labels)
    sigma = encoded.sigma
    if wants_npy(request):
        return npy_response(np.stack([encoded.mu, sigma], axis=1), _version_headers(model))
    draws = None
    if samples:
        eps = np.random.default_rng(seed).standard_normal(
            (len(images), samples, sigma.shape[1]), dtype=np.float32
        )
        draws = encoded.mu[:, None] + sigma[:, None] * eps
    latents = []
    for i in range(len(images)):
        entry: dict[str, Any] = {
            "mu": encoded.mu[i],
            "sigma": sigma[i],
            "cached": encoded.cached[i],
        }
        if draws is not None:
            entry["z"] = draws[i]
        latents.append(entry)
    return json_response({"model": model.name, "version": model.version, "latents": latents})


def _query_label(request: Request) -> int | None:
    text = request.query_params.get("label")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(422, f"label must be an integer, got {text!r}", "invalid_label") from None


async def _encode_codes(
    request: Request, state: StateDep, model: LoadedModel, images: np.ndarray, samples: int
) -> Response:
    """A VQ-VAE's per image code grid (h x w indices) and its z_e before quantization
    (flattened like a latent, D*h*w). With `Accept: application/x-npy`: z_e as float32
    [N, D*h*w]. Not cached."""
    if samples:
        raise ApiError(
            422, "a vqvae's encoder is deterministic: leave out 'samples'", "invalid_request"
        )
    z_e, codes = await state.inference.encode_codes(model, images, deadline_for(state.settings))
    if wants_npy(request):
        return npy_response(z_e, _version_headers(model))
    latents = [{"codes": codes[i], "z_e": z_e[i], "cached": False} for i in range(len(images))]
    return json_response({"model": model.name, "version": model.version, "latents": latents})


async def _encode_all_layers(
    state: StateDep, model: LoadedModel, images: np.ndarray, labels: np.ndarray | None
) -> Response:
    """Both stochastic layers of a hierarchical model: the top (mu, sigma) and the lower one
    given the top's mean (mu_bottom, sigma_bottom). Not cached."""
    out = await state.inference.encode_layers(model, images, deadline_for(state.settings), labels)
    latents = [
        {
            "mu": out["mu"][i],
            "sigma": np.exp(0.5 * out["logvar"][i]),
            "mu_bottom": out["mu_bottom"][i],
            "sigma_bottom": np.exp(0.5 * out["logvar_bottom"][i]),
            "cached": False,
        }
        for i in range(len(images))
    ]
    return json_response({"model": model.name, "version": model.version, "latents": latents})


def _version_headers(model: LoadedModel) -> dict[str, str]:
    return {"X-Model": model.name, "X-Model-Version": str(model.version)}


@router.post(
    "/decode",
    response_model=ImagesResponse,
    responses=_ERRORS,
    openapi_extra=_body_spec(DecodeRequest, "latents [N,D] float32; query: model, format"),
)
async def decode(request: Request, state: StateDep) -> Response:
    """Latent vectors -> images (`format`: png, array or npy)."""
    _content_type_ok(request)
    body = await request.body()
    return await while_connected(request, _decode(request, state, body))


async def _decode(request: Request, state: StateDep, body: bytes) -> Response:
    settings = state.settings
    if is_npy(request):
        model = await state.registry.resolve(request.query_params.get("model"))
        label = check_label(_query_label(request), model.manifest)
        array = load_npy(body, settings.max_body_bytes)
        grids = array if model.vq is not None and array.dtype.kind in "iu" else None
        z = _latents_or_codes(model, grids, array)
        fmt = request.query_params.get("format", "npy" if wants_npy(request) else "png")
    else:
        payload = parse_body(DecodeRequest, body)
        check_count(len(payload.latents or payload.codes or []), settings.max_items, "latent")
        model = await state.registry.resolve(payload.model)
        label = check_label(payload.label, model.manifest)
        z = _latents_or_codes(model, payload.codes, payload.latents)
        fmt = "npy" if wants_npy(request) and payload.format == "png" else payload.format
    check_count(len(z), settings.max_items, "latent")
    if fmt not in {"png", "array", "npy"}:
        raise ApiError(422, "format must be png, array or npy", "invalid_request")
    images = await state.inference.decode(
        model, z, deadline_for(settings), label_column(label, len(z))
    )
    if fmt == "npy":
        return npy_response(check_finite_output(images), _version_headers(model))
    return json_response(
        {"model": model.name, "version": model.version, **render_images(images, fmt)}
    )


async def _decode_hot(request: Request) -> Response:
    """POST /decode as a plain Starlette endpoint: the same handler, without FastAPI's
    per-request dependency solving and route wrapping (about a sixth of the event loop's time
    on one-latent requests). It resolves the handler's one dependency itself: `install_hot_routes`
    refuses a documented route that needs anything more."""
    return await decode(request, await get_state(request))


class _HotRoute(Route):
    """A Starlette route that names itself in the scope as FastAPI's do (the metrics label
    requests by `scope["route"].path`; FastAPI's router leaves that to the route)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


class HotRouteMismatch(RuntimeError):
    """The documented route would do work that its hot route skips (raised by create_app)."""


def _name_of(call: object) -> str:
    return str(getattr(call, "__name__", repr(call)))


def _check_hot_route_does_the_same(route: RouteContext) -> None:
    """The hot route calls `decode(request, get_state(request))` and nothing else: the documented
    route must need exactly that, or the hot route would silently skip what it adds."""
    dependant = route.dependant
    extra = [
        _name_of(dependency.call)
        for dependency in dependant.dependencies
        if dependency.call is not get_state or dependency.dependencies
    ]
    parameters = [
        param.name
        for param in (
            *dependant.path_params,
            *dependant.query_params,
            *dependant.header_params,
            *dependant.cookie_params,
            *dependant.body_params,
        )
    ]
    if route.endpoint is not decode or extra or parameters or dependant.request_param_name is None:
        raise HotRouteMismatch(
            f"POST {route.path} is answered by a hot route that runs only "
            f"decode(request, get_state(request)), but the documented route has "
            f"endpoint {_name_of(route.endpoint)}, dependencies {extra or 'none'} and parameters "
            f"{parameters or 'none'}: resolve them in _decode_hot too, or drop the hot route"
        )


def install_hot_routes(app: FastAPI) -> None:
    """Puts the hot POST /decode ahead of FastAPI's documented one (which stays for the OpenAPI
    document), after checking that the documented route depends on nothing the hot one skips
    (HotRouteMismatch otherwise: a Depends added to /decode must fail loudly, not silently never
    run). Call it once every router is included."""
    documented = [
        route  # the route as included, with the app's and routers' dependencies added
        for route in iter_route_contexts(app.router.routes)
        if isinstance(route.original_route, APIRoute)
        and route.path == "/decode"
        and "POST" in (route.methods or set())
    ]
    if not documented:
        raise HotRouteMismatch("no documented POST /decode route to serve a hot route for")
    for route in documented:
        _check_hot_route_does_the_same(route)
    app.router.routes.insert(0, _HotRoute("/decode", _decode_hot, methods=["POST"]))


def _latents_or_codes(model: LoadedModel, codes: Any, latents: Any) -> np.ndarray:
    """Decoder inputs [N,D]: the latents, or a vqvae's code grids turned into their codebook
    vectors (an integer .npy array sent to a vqvae is code grids too)."""
    if codes is None:
        return latent_batch(latents, model.manifest)
    grids = code_batch(codes, model.manifest)
    assert model.vq is not None  # code_batch accepts codes only for a vqvae
    return model.vq.latents(grids)


@router.post("/sample", response_model=ImagesResponse, responses=_ERRORS)
async def sample(payload: SampleRequest, state: StateDep, request: Request) -> Response:
    """`n` draws from the prior N(0, temperature^2 I), decoded. The same `seed` gives the same images.

    A vqvae draws code grids from its PixelCNN prior instead (logits divided by `temperature`,
    the most likely codes at 0) and returns them as `codes` beside their codebook vectors."""
    return await while_connected(request, _sample(payload, state))


async def _sample(payload: SampleRequest, state: StateDep) -> Response:
    check_count(payload.n, state.settings.max_items, "sample")
    model = await state.registry.resolve(payload.model)
    label = check_label(payload.label, model.manifest)
    if model.vq is not None:
        codes, z, images, seed = await state.inference.sample_codes(
            model, payload.n, payload.temperature, payload.seed, deadline_for(state.settings)
        )
        return json_response(
            {"model": model.name, "version": model.version, "latents": z, "codes": codes,
             "seed": seed, **render_images(images, payload.format)}
        )  # fmt: skip
    z, images, seed = await state.inference.sample(
        model,
        payload.n,
        payload.temperature,
        payload.seed,
        deadline_for(state.settings),
        label_column(label, payload.n),
    )
    return json_response(
        {
            "model": model.name,
            "version": model.version,
            "latents": z,
            "seed": seed,
            **render_images(images, payload.format),
        }
    )


async def _endpoint_latent(
    state: StateDep, model: LoadedModel, endpoint: Endpoint, label: int | None
) -> np.ndarray:
    kind, value = endpoint_payload(endpoint)
    if kind == "latent":
        return latent_batch([value], model.manifest)[0]
    if kind == "codes":
        return _latents_or_codes(model, [value], None)[0]
    if kind == "image":
        image = decode_image(decode_base64(value), model.manifest.image.shape)
    else:
        image = image_batch(None, [value], model.manifest)[0]
    if model.vq is not None:  # interpolate z_e, before quantization
        z_e, _ = await state.inference.encode_codes(
            model, image[None], deadline_for(state.settings)
        )
        return z_e[0]
    encoded = await state.inference.encode(
        model, image[None], deadline_for(state.settings), label_column(label, 1)
    )
    return encoded.mu[0]


@router.post("/interpolate", response_model=ImagesResponse, responses=_ERRORS)
async def interpolate(payload: InterpolateRequest, state: StateDep, request: Request) -> Response:
    """A path of `steps` points from `start` to `end` (images are encoded to their mean), by
    `method` lerp or slerp, decoded."""
    return await while_connected(request, _interpolate(payload, state))


async def _interpolate(payload: InterpolateRequest, state: StateDep) -> Response:
    if payload.steps > state.settings.max_steps:
        raise ApiError(
            413, f"at most {state.settings.max_steps} steps, got {payload.steps}", "too_many"
        )
    model = await state.registry.resolve(payload.model)
    label = check_label(payload.label, model.manifest)
    start = await _endpoint_latent(state, model, payload.start, label)
    end = await _endpoint_latent(state, model, payload.end, label)
    path, images = await state.inference.interpolate(
        model, start, end, payload.steps, payload.method, deadline_for(state.settings), label
    )
    codes = {} if model.vq is None else {"codes": model.vq.nearest(path)}
    return json_response(
        {"model": model.name, "version": model.version, "latents": path, "method": payload.method,
         **codes, **render_images(images, payload.format)}
    )  # fmt: skip

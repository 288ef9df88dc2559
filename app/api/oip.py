"""The Open Inference Protocol v2 over REST (KServe's and Triton's), so that `tritonclient.http`
and other OIP clients call the models unchanged: server metadata (`GET /v2`), model metadata,
readiness and `POST .../infer` with JSON tensors or the binary tensor extension
(`app/api/oip_tensors.py`). Health (`/v2/health/...`) is `app/api/health.py`'s.

Every model serves two OIP models, its graphs: `<name>.encoder` and `<name>.decoder` (a '.' is in
no model name, so no OIP name is ambiguous); `/versions/<v>` picks a version, else the default
answers. They answer through the model's adapter, as /encode and /decode do: the same
micro-batcher, latent cache, limits, deadlines and metrics. Their tensors (decoder: `z` in,
`arrays` and base64 PNG `images` out; encoder: `arrays` or `images` in, `mu`, `sigma`... out) are
`app/serving/adapters/signatures.py`'s. A video model's graphs are not served (404 naming the
routes that serve its clips): its tensors are clips walked in time chunks and streamed, which the
protocol's one-shot tensors do not fit.

Errors are the protocol's: `{"error": "<message>"}`, with the status /encode and /decode give
(400 for a request that is not the protocol's).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from app.api import health
from app.api.deps import AppState, StateDep, get_state
from app.api.disconnect import while_connected
from app.api.errors import DOMAIN_ERRORS, error_responses
from app.api.hot_routes import install_hot_route
from app.api.oip_tensors import (
    BINARY_MEDIA_TYPE,
    HEADER_LENGTH,
    InferRequest,
    InputTensor,
    OutputTensor,
    TensorFormatError,
    decompressed,
    encode_response,
    parse_request,
)
from app.api.rendering import off_loop_when_large
from app.api.responses import json_response
from app.repository.store import ModelNotFound
from app.serving.adapters import requests as calls
from app.serving.adapters.results import Decoded
from app.serving.adapters.signatures import GRAPHS, Graph, Signature, TensorSpec, signature
from app.serving.imaging import encode_pngs_base64
from app.serving.registry import LoadedModel, parse_ref

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

EXTENSIONS = ["binary_tensor_data"]
_NPY = calls.Accepts(npy=True)
_PNG_MAGIC = (b"\x89PNG", b"\xff\xd8\xff")


def _error_body(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    schema = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    }
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    **_error_body(400, "not an Open Inference Protocol request (the error says why)"),
    **_error_body(404, "unknown model, graph or version"),
    **_error_body(413, "too large"),
    **_error_body(422, "tensors this model cannot take"),
    **_error_body(429, "the batch queue is full (see Retry-After)"),
    **_error_body(503, "the model is not available now"),
    **_error_body(504, "deadline passed"),
}


def oip_error(exc: Exception) -> Response | None:
    """The protocol's error answer for a request error (None for anything else: a fault)."""
    if isinstance(exc, TensorFormatError):
        return json_response({"error": str(exc)}, 400)
    mapping = next((DOMAIN_ERRORS[k] for k in type(exc).__mro__ if k in DOMAIN_ERRORS), None)
    if mapping is None or (mapping.status >= 500 and mapping.status not in {503, 504}):
        return None
    return json_response({"error": str(exc)}, mapping.status, mapping.headers(exc))


async def _answering(work: Awaitable[Response]) -> Response:
    """`work`'s answer, or a request error in the protocol's form."""
    try:
        return await work
    except Exception as exc:
        answer = oip_error(exc)
        if answer is None:
            raise
        return answer


def split_model(model: str) -> tuple[str, Graph]:
    """'<name>.<graph>' -> (name, graph); ModelNotFound that says what OIP names are."""
    name, dot, graph = model.rpartition(".")
    if not dot or graph not in GRAPHS:
        raise ModelNotFound(
            f"no model {model!r}: the Open Inference Protocol serves each model's graphs as "
            f"'<name>.encoder' and '<name>.decoder' (GET /models lists the names)"
        )
    return name, "encoder" if graph == "encoder" else "decoder"


async def _resolve(state: AppState, model: str, version: str | None) -> tuple[LoadedModel, Graph]:
    """The loaded version an OIP model name (and version) names, and which graph."""
    name, graph = split_model(model)
    if version is not None and not version.isdigit():
        raise ModelNotFound(f"no version {version!r} of {model!r}: versions are numbers")
    return await state.registry.resolve(name if version is None else f"{name}:{version}"), graph


@router.get("")
async def server_metadata(request: Request) -> Response:
    """Server metadata: name, version and the protocol extensions served."""
    app = request.app
    return json_response({"name": app.title, "version": app.version, "extensions": EXTENSIONS})


async def _model_metadata(state: AppState, model: str, version: str | None) -> Response:
    loaded, graph = await _resolve(state, model, version)
    tensors = signature(loaded.adapter, graph)
    versions = await asyncio.to_thread(state.registry.repository.versions, loaded.name)
    return json_response(
        {
            "name": model,
            "versions": [str(v) for v in sorted(versions)],
            "platform": f"vae-service {loaded.manifest.kind} {graph}",
            "inputs": [spec.metadata() for spec in tensors.inputs],
            "outputs": [spec.metadata() for spec in tensors.outputs],
        }
    )


@router.get("/models/{model}", responses=_ERRORS)
async def model_metadata(model: str, request: Request) -> Response:
    """A graph's metadata (`<name>.encoder` or `<name>.decoder`; the default version's): its
    versions, inputs and outputs with datatypes and shapes (-1 for a free size)."""
    return await _answering(_model_metadata(await get_state(request), model, None))


@router.get("/models/{model}/versions/{version}", responses=_ERRORS)
async def version_metadata(model: str, version: str, request: Request) -> Response:
    """A graph's metadata at one version."""
    return await _answering(_model_metadata(await get_state(request), model, version))


async def _ready(state: AppState, model: str, version: str | None) -> Response:
    """200 once the version is loaded and answering; 503 while it is not (404: no such)."""
    name, _ = split_model(model)
    parse_ref(name)  # ModelNotFound for what is no model name
    number = None if version is None else int(version) if version.isdigit() else -1
    if number is None:
        number = state.registry.default_version(name)
    loaded = {(m.name, m.version) for m in state.registry.loaded()}
    if number is not None and (name, number) in loaded:
        return json_response({"name": model, "version": str(number), "ready": True})
    versions = await asyncio.to_thread(state.registry.repository.versions, name)
    if not versions or (number is not None and number not in versions):
        what = f"no model named {name!r}" if not versions else f"no version {version} of {name!r}"
        raise ModelNotFound(what)
    return json_response({"name": model, "ready": False}, 503)


def _is_graph(model: str) -> bool:
    name, dot, graph = model.rpartition(".")
    return bool(dot and name) and graph in GRAPHS


@router.get("/models/{model}/ready", include_in_schema=False)
async def model_ready(model: str, request: Request) -> Response:
    """Whether a graph's default version is loaded and answering. It stands in front of the
    health route of the same path (documented there, with the same answers), which answers
    every other name: `<name>` or `<name>:<version>`. Errors are the service's own here, as
    there: a client of the protocol reads the status alone."""
    state = await get_state(request)
    if not _is_graph(model):
        return await health.model_ready(model, state)
    return await _ready(state, model, None)


@router.get(
    "/models/{model}/versions/{version}/ready",
    responses={**health.NOT_READY, **error_responses(404)},
)
async def version_ready(model: str, version: str, state: StateDep) -> Response:
    """Whether this version of the graph (`<name>.encoder` or `<name>.decoder`) is loaded and
    answering: 200, or 503 while it is not."""
    return await _ready(state, model, version)


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "inference request"}},
            BINARY_MEDIA_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": f"the JSON request, then binary tensors ({HEADER_LENGTH})",
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "inference response: JSON, or (binary outputs) the JSON first, "
            f"its length in {HEADER_LENGTH}, then the tensors",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                BINARY_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
}


@router.post("/models/{model}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY)
async def infer(model: str, request: Request) -> Response:
    """Runs the graph's default version on the request's tensors (JSON, or binary after the
    JSON header with `Inference-Header-Content-Length`)."""
    return await _answering(_infer(request, await get_state(request), model, None))


@router.post(
    "/models/{model}/versions/{version}/infer", responses=_ERRORS, openapi_extra=_INFER_BODY
)
async def version_infer(model: str, version: str, request: Request) -> Response:
    """Runs one version of the graph."""
    return await _answering(_infer(request, await get_state(request), model, version))


async def _infer_hot(request: Request) -> Response:
    """/infer as a plain Starlette endpoint: what `infer` and `version_infer` do, without
    FastAPI's route matching past every other route and its per-request wrapping (about a fifth
    of a one-latent request's time). They take nothing but the path and the request."""
    params = request.path_params
    state = await get_state(request)
    return await _answering(_infer(request, state, params["model"], params.get("version")))


_HOT = {
    "/v2/models/{model}/infer": infer,
    "/v2/models/{model}/versions/{version}/infer": version_infer,
}


def install_hot_routes(app: FastAPI) -> None:
    """Puts the hot POST /infer routes first (the documented ones stay for the OpenAPI
    document), once the documented ones are checked to need nothing the hot ones skip
    (HotRouteMismatch). Call it once every router is included."""
    for path, endpoint in _HOT.items():
        install_hot_route(app, path, _infer_hot, endpoint)


async def _infer(request: Request, state: AppState, model: str, version: str | None) -> Response:
    body = await request.body()
    limit = state.settings.max_body_bytes
    body = decompressed(body, request.headers.get("content-encoding"), limit)
    parsed = parse_request(body, request.headers.get(HEADER_LENGTH))
    loaded, graph = await _resolve(state, model, version)
    tensors = signature(loaded.adapter, graph)
    _check_inputs(parsed, tensors.inputs)
    wanted = _wanted_outputs(parsed, tensors.outputs)
    run = _decode if graph == "decoder" else _encode
    arrays = await while_connected(request, run(loaded, parsed, tensors, wanted))
    header: dict[str, Any] = {"model_name": model, "model_version": str(loaded.version)}
    if parsed.id is not None:
        header["id"] = parsed.id
    answer = [(OutputTensor(name, spec.datatype, arrays[name]), binary)
              for name, (spec, binary) in wanted.items()]  # fmt: skip
    content, header_length = encode_response(header, answer)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type=BINARY_MEDIA_TYPE, headers={HEADER_LENGTH: str(header_length)}
    )


def _check_inputs(parsed: InferRequest, specs: list[TensorSpec]) -> None:
    """TensorFormatError for an input the graph has not, or of a datatype it does not take."""
    known = {spec.name: spec for spec in specs}
    for tensor in parsed.inputs:
        spec = known.get(tensor.name)
        if spec is None:
            raise TensorFormatError(
                f"no input {tensor.name!r}: this graph takes {', '.join(known)} "
                "(GET /v2/models/<model> lists them)"
            )
        if tensor.datatype not in (spec.datatype, *spec.accepts):
            raise TensorFormatError(
                f"input {tensor.name!r} is {spec.datatype}, got {tensor.datatype}"
            )


def _wanted_outputs(
    parsed: InferRequest, specs: list[TensorSpec]
) -> dict[str, tuple[TensorSpec, bool]]:
    """The outputs to answer (all when the request names none), each with whether it goes as
    binary data."""
    known = {spec.name: spec for spec in specs}
    if parsed.outputs is None:
        return {name: (spec, parsed.binary_output) for name, spec in known.items()}
    wanted = {}
    for output in parsed.outputs:
        if output.name not in known:
            raise TensorFormatError(
                f"no output {output.name!r}: this graph gives {', '.join(known)}"
            )
        binary = parsed.binary_output if output.binary is None else output.binary
        wanted[output.name] = (known[output.name], binary)
    return wanted


def _label(parsed: InferRequest) -> int | None:
    """The request's one label (a label tensor of equal values), or None."""
    tensor = parsed.input("label")
    if tensor is None:
        return None
    values = np.unique(tensor.array)
    if len(values) != 1:
        raise TensorFormatError("'label' takes one label a request: send rows of one class")
    return int(values[0])


async def _decode(
    model: LoadedModel, parsed: InferRequest, tensors: Signature, wanted: dict[str, Any]
) -> dict[str, np.ndarray]:
    z, codes = parsed.input("z"), parsed.input("codes")
    if (z is None) == (codes is None):
        names = " or ".join(n for n in tensors.input_names() if n in {"z", "codes"})
        raise TensorFormatError(f"the decoder takes {names} (one of them)")
    source = z.array if z is not None else codes.array.astype(np.int64)  # type: ignore[union-attr]
    call = calls.DecodeCall(calls.NpyArray(source), _label(parsed), "npy", accepts=_NPY)
    decoded = await model.adapter.decode(call)
    if not isinstance(decoded, Decoded):  # video models are refused before (signatures)
        raise TensorFormatError(f"model {model.name} gives clips: use POST /decode")
    images = decoded.images
    out: dict[str, np.ndarray] = {"arrays": images}
    if "images" in wanted:
        texts = await off_loop_when_large(images, lambda: encode_pngs_base64(images))
        out["images"] = np.array([text.encode() for text in texts], dtype=np.object_)
    return out


def _image_source(arrays: InputTensor | None, files: InputTensor | None) -> calls.ImageSource:
    if (arrays is None) == (files is None):
        raise TensorFormatError("the encoder takes 'arrays' or 'images' (one of them)")
    if arrays is not None:
        return calls.NpyArray(arrays.array)
    assert files is not None
    texts = []
    for item in files.array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        is_file = data.startswith(_PNG_MAGIC)
        texts.append(
            base64.b64encode(data).decode() if is_file else data.decode("ascii", "replace")
        )
    return calls.Base64Images(texts)


async def _encode(
    model: LoadedModel, parsed: InferRequest, tensors: Signature, wanted: dict[str, Any]
) -> dict[str, np.ndarray]:
    source = _image_source(parsed.input("arrays"), parsed.input("images"))
    encoding = await model.adapter.encode(calls.EncodeCall(source, _label(parsed), accepts=_NPY))
    entries = encoding.entries()
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        values = [entry[name] for entry in entries]
        dtype = np.int64 if name == "codes" else np.float32
        out[name] = np.stack(values).astype(dtype, copy=False)
    return out

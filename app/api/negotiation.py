"""Content negotiation, once a request: what the body is (JSON, a .npy, raw tensor bytes, an
image file or a video file) and what the client accepts back; and the query parameters that go
with a body that is not JSON (`model`, `label`, `format`, `shape`, `dtype`, `height`, `width`,
a video model's `fps` and `normalized`)."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from starlette.requests import Request

from app.api.responses import NPY_MEDIA_TYPE
from app.serving.adapters.errors import InvalidLabel, InvalidRequest, LatentsExpected
from app.serving.adapters.requests import Accepts, ImageFile, NpyArray, RawTensor, VideoFile

JSON_MEDIA_TYPE = "application/json"
RAW_MEDIA_TYPE = "application/octet-stream"
RAW_TYPES = frozenset({RAW_MEDIA_TYPE, "tensor/binary"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
VIDEO_PREFIX = "video/"
NPY_MAGIC = b"\x93NUMPY"

BodyForm = Literal["json", "npy", "raw", "image", "video"]


class UnsupportedMediaType(ValueError):
    """A body sent as a media type the route does not read (415)."""


class InvalidNpy(ValueError):
    """A body sent as application/x-npy that is not a .npy file numpy can load (400)."""


class NpyNotNumbers(InvalidNpy):
    """A .npy file whose array does not hold numbers (422)."""


def media_type(request: Request) -> str:
    """The body's media type, without parameters, lower case ("" when not given)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def body_form(request: Request) -> BodyForm:
    """What the body of /encode or /decode is; UnsupportedMediaType for anything else."""
    sent = media_type(request)
    if sent in {"", JSON_MEDIA_TYPE}:
        return "json"
    if sent == NPY_MEDIA_TYPE:
        return "npy"
    if sent in RAW_TYPES:
        return "raw"
    if sent in IMAGE_TYPES:
        return "image"
    if sent.startswith(VIDEO_PREFIX):
        return "video"
    raise UnsupportedMediaType(
        f"send application/json or {NPY_MEDIA_TYPE} (a spatial model also takes "
        f"{RAW_MEDIA_TYPE} and images, a video model video/mp4 or any video/*), not {sent}"
    )


def accepts(request: Request) -> Accepts:
    """What the client takes back, from its Accept header."""
    header = request.headers.get("accept", "")
    return Accepts(
        npy=NPY_MEDIA_TYPE in header,
        raw=RAW_MEDIA_TYPE in header,
        png="image/png" in header,
        jpeg="image/jpeg" in header,
    )


def binary_body(
    request: Request, body: bytes, form: BodyForm
) -> NpyArray | RawTensor | ImageFile | VideoFile:
    """A body that is not JSON as what the model's adapter reads: a .npy's array, raw tensor
    bytes with the query's `shape` and `dtype`, an image file or a video file."""
    if form == "npy":
        return NpyArray(load_npy(body))
    if form == "raw":
        query = request.query_params
        return RawTensor(body, query.getlist("shape"), query.get("dtype", "float32"))
    if form == "video":
        return VideoFile(body)
    return ImageFile(body)


def latent_body(request: Request, body: bytes, form: BodyForm) -> NpyArray | RawTensor | ImageFile:
    """A /decode body that is not JSON: latents as a .npy or raw bytes (an image file is the
    adapter's to refuse, as it names what the model takes); LatentsExpected for a video file."""
    source = binary_body(request, body, form)
    if isinstance(source, VideoFile):
        raise LatentsExpected("/decode takes latents, not a video: send it to /encode")
    return source


def _npy_problem(error: Exception) -> str:
    """What is wrong with a .npy body numpy could not load, without numpy's advice on loading
    pickles (which this API never does)."""
    if "pickle" in str(error):
        return "the .npy holds Python objects, which are never loaded: send an array of numbers"
    return f"the body is a damaged .npy file: {error}"


def load_npy(body: bytes) -> np.ndarray:
    """Parses a .npy body (no pickles); InvalidNpy when it is not one. The magic is checked
    first: without it numpy would take the body for a pickle and answer with advice on loading
    one. (The body's size is limited before any route reads it: app/api/limits.py.)"""
    if not body.startswith(NPY_MAGIC):
        raise InvalidNpy(
            "the body is not a .npy file (it does not start with the .npy magic \\x93NUMPY): "
            "send an array saved with numpy.save"
        )
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InvalidNpy(_npy_problem(error)) from None
    if array.dtype.kind not in "fiu":  # a file with the .npy magic is always one array
        raise NpyNotNumbers("the .npy array must hold numbers")
    return array


def query_label(request: Request) -> int | None:
    """The `label` query parameter; InvalidLabel when it is not an integer."""
    text = request.query_params.get("label")
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidLabel(f"label must be an integer, got {text!r}") from None


def query_size(request: Request, name: str) -> int | None:
    """A positive integer query parameter (`height`, `width`); InvalidRequest otherwise."""
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        value = 0
    if value < 1:
        raise InvalidRequest(f"{name} must be a positive integer, got {text!r}")
    return value


def query_float(request: Request, name: str) -> float | None:
    """A finite number from the query (None when absent); InvalidRequest for anything else."""
    text = request.query_params.get(name)
    if text in (None, "", "None"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number, got {text!r}")
    return value


def query_fps(request: Request) -> float | None:
    """A video's frames per second from the query (None: the model's); InvalidRequest unless a
    positive number."""
    fps = query_float(request, "fps")
    if fps is not None and fps <= 0:
        raise InvalidRequest(f"fps must be a positive number, got {fps:g}")
    return fps


def query_flag(request: Request, name: str) -> bool:
    """A yes/no query parameter (true, 1, yes)."""
    return request.query_params.get(name, "false").lower() in {"true", "1", "yes"}

"""Fast response encoding: orjson for JSON (numpy arrays included) and raw .npy bodies."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

NPY_MEDIA_TYPE = "application/x-npy"


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON via orjson, which writes numpy arrays without a Python-list detour."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def npy_response(array: np.ndarray, headers: dict[str, str] | None = None) -> Response:
    """An array as an application/x-npy body."""
    return Response(npy_bytes(array), headers=headers, media_type=NPY_MEDIA_TYPE)

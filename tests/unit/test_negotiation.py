"""Content negotiation (app/api/negotiation.py): what a body is, what the client accepts back,
the query parameters beside a body that is not JSON, and a .npy body's checks."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.requests import Request

from app.api.negotiation import (
    InvalidNpy,
    NpyNotNumbers,
    UnsupportedMediaType,
    accepts,
    binary_body,
    body_form,
    load_npy,
    query_label,
    query_size,
)
from app.api.responses import npy_bytes
from app.serving.adapters.errors import InvalidLabel, InvalidRequest
from app.serving.adapters.requests import ImageFile, NpyArray, RawTensor


def request(headers: dict[str, str] | None = None, query: str = "") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "headers": raw, "query_string": query.encode()}
    return Request(scope)


@pytest.mark.parametrize(
    ("content_type", "form"),
    [
        (None, "json"),
        ("application/json; charset=utf-8", "json"),
        ("application/x-npy", "npy"),
        ("application/octet-stream", "raw"),
        ("tensor/binary", "raw"),
        ("image/png", "image"),
        ("IMAGE/JPEG", "image"),
    ],
)
def test_the_body_is_told_by_its_content_type(content_type: str | None, form: str) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    assert body_form(request(headers)) == form


def test_a_body_no_route_reads_is_refused_naming_what_to_send() -> None:
    with pytest.raises(UnsupportedMediaType, match="not text/plain"):
        body_form(request({"content-type": "text/plain"}))


def test_what_the_client_accepts_is_read_from_its_accept_header() -> None:
    taken = accepts(request({"accept": "image/jpeg, application/x-npy"}))
    assert taken.npy and taken.jpeg and not taken.png and not taken.raw
    assert taken.first_image() == "jpeg" and accepts(request()).first_image() is None


def test_a_binary_body_becomes_what_the_adapter_reads() -> None:
    array = np.zeros((2, 3), np.float32)
    assert isinstance(binary_body(request(), npy_bytes(array), "npy"), NpyArray)
    raw = binary_body(request(query="shape=1&shape=4&dtype=float16"), b"x" * 8, "raw")
    assert raw == RawTensor(b"x" * 8, ["1", "4"], "float16")
    assert binary_body(request(), b"png", "image") == ImageFile(b"png")


def test_a_npy_body_must_be_a_npy_of_numbers() -> None:
    with pytest.raises(InvalidNpy, match="magic"):
        load_npy(b"garbage")
    with pytest.raises(NpyNotNumbers):
        load_npy(npy_bytes(np.array(["a", "b"])))
    assert load_npy(npy_bytes(np.arange(3))).tolist() == [0, 1, 2]


def test_query_numbers_are_checked() -> None:
    assert query_size(request(query="height=64"), "height") == 64
    assert query_size(request(), "height") is None
    with pytest.raises(InvalidRequest, match="positive integer"):
        query_size(request(query="width=-2"), "width")
    assert query_label(request(query="label=3")) == 3
    with pytest.raises(InvalidLabel, match="integer"):
        query_label(request(query="label=three"))

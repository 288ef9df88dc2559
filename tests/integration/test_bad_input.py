"""Bad input gets a 4xx with a message a person can act on, never a 500."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.helpers import ServiceProcess


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> httpx.Client:
    with service.client() as http:
        yield http


def png_of(width: int, height: int, mode: str = "L") -> str:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def gif_28() -> str:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="GIF")
    return base64.b64encode(buffer.getvalue()).decode()


CASES = [
    (
        "/encode",
        {"images": [base64.b64encode(b"not an image at all").decode()]},
        422,
        "PNG or JPEG",
    ),
    ("/encode", {"images": ["%%% not base64 %%%"]}, 422, "base64"),
    ("/encode", {"images": [png_of(32, 32)]}, 422, "28x28"),
    ("/encode", {"images": [gif_28()]}, 422, "PNG or JPEG"),
    ("/encode", {"arrays": [[[0.5] * 28] * 27]}, 422, "shape"),
    ("/encode", {"arrays": [[[2.0] * 28] * 28]}, 422, "[0, 1]"),
    ("/encode", {"images": []}, 422, "at least one"),
    ("/encode", {}, 422, "exactly one"),
    ("/encode", {"images": [png_of(28, 28)], "arrays": []}, 422, "exactly one"),
    ("/decode", {"latents": [[0.0] * 3]}, 422, "numbers"),
    ("/decode", {"latents": [[0.0, 1.0], [0.0]]}, 422, "latent"),
    ("/decode", {"latents": "zeros"}, 422, "latents"),
    ("/decode", {"latents": [[0.0] * 32], "format": "gif"}, 422, "format"),
    ("/sample", {"n": 0}, 422, "n"),
    ("/sample", {"n": 100000}, 413, "at most"),
    ("/sample", {"n": 2, "temperature": -1}, 422, "temperature"),
    ("/sample", {"n": 2, "label": 3}, 422, "not conditional"),
    ("/sample", {"model": "nope"}, 404, "no model"),
    ("/sample", {"model": "mnist:999"}, 404, "no version"),
    ("/sample", {"model": "../../etc/passwd"}, 404, "invalid name"),
    (
        "/interpolate",
        {"start": {"latent": [0.0] * 32}, "end": {"latent": [1.0] * 32}, "steps": 1},
        422,
        "steps",
    ),
    (
        "/interpolate",
        {"start": {"latent": [0.0] * 32}, "end": {"latent": [1.0] * 32}, "steps": 10000},
        413,
        "at most",
    ),
    ("/interpolate", {"start": {"latent": [0.0] * 32}, "end": {}, "steps": 3}, 422, "exactly one"),
    (
        "/interpolate",
        {"start": {"latent": [0.0] * 32}, "end": {"latent": [1.0] * 32}, "method": "cubic"},
        422,
        "method",
    ),
]


@pytest.mark.parametrize(("route", "body", "status", "words"), CASES)
def test_bad_json_bodies_get_a_clear_4xx(
    client: httpx.Client, route: str, body: dict, status: int, words: str
) -> None:
    reply = client.post(route, json=body)
    assert reply.status_code == status, reply.text
    payload = reply.json()
    assert words.lower() in payload["message"].lower(), payload


def test_nan_and_infinity_in_latents_are_refused(client: httpx.Client) -> None:
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"latents": [[' + b", ".join([token] + [b"0.0"] * 31) + b"]]}"
        reply = client.post("/decode", content=body, headers={"content-type": "application/json"})
        assert 400 <= reply.status_code < 500, reply.text


def test_malformed_json_and_npy_get_400s(client: httpx.Client) -> None:
    broken = client.post(
        "/decode", content=b'{"latents": [[', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    npy = client.post("/decode", content=b"garbage", headers={"content-type": "application/x-npy"})
    assert npy.status_code == 400 and "npy" in npy.json()["message"]


def test_wrong_media_type_gets_415(client: httpx.Client) -> None:
    reply = client.post("/decode", content=b"latents=1", headers={"content-type": "text/plain"})
    assert reply.status_code == 415


def test_nan_image_arrays_are_refused(client: httpx.Client) -> None:
    body = b'{"arrays": [[' + b", ".join([b"[" + b", ".join([b"NaN"] * 28) + b"]"] * 28) + b"]]}"
    reply = client.post("/encode", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422

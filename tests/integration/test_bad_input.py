"""Bad input gets a 4xx with a message a person can act on, never a 500."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.processes import ServiceProcess


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


def npy_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


NPY = {"content-type": "application/x-npy"}
JSON = {"content-type": "application/json"}


def test_a_png_of_the_wrong_size_says_the_size_expected_and_got(client: httpx.Client) -> None:
    reply = client.post("/encode", json={"images": [png_of(32, 30)]})
    assert reply.status_code == 422, reply.text
    message = reply.json()["message"]
    assert "32x30" in message and "28x28" in message, message
    assert "damaged" not in message and "truncated" not in message, message


@pytest.mark.parametrize(
    ("route", "body"),
    [("/sample", b'{"n": 2}'), ("/interpolate", b'{"start": {"latent": [0]}}')],
)
def test_json_sent_as_curls_default_form_type_hints_at_the_header(
    client: httpx.Client, route: str, body: bytes
) -> None:
    """`curl -d` sends application/x-www-form-urlencoded: the answer names the header to add."""
    form = {"content-type": "application/x-www-form-urlencoded"}
    reply = client.post(route, content=body, headers=form)
    assert reply.status_code == 415, reply.text
    message = reply.json()["message"]
    assert "Content-Type: application/json" in message, message
    assert "x-www-form-urlencoded" in message, message


def test_malformed_json_says_where_and_what(client: httpx.Client) -> None:
    reply = client.post("/sample", content=b'{"n": 2,\n "seed": }', headers=JSON)
    assert reply.status_code == 422, reply.text
    message = reply.json()["message"]
    assert message == (
        "the body is not valid JSON: Expecting value at line 2, column 10 (character 18)"
    ), message
    reply = client.post("/decode", content=b'{"latents": [[0, 1,]]}', headers=JSON)
    assert reply.status_code == 422, reply.text
    assert reply.json()["message"].startswith("the body is not valid JSON: trailing comma")


def test_a_garbage_npy_gets_a_plain_message(client: httpx.Client) -> None:
    for route in ("/encode", "/decode"):
        reply = client.post(route, content=b"these bytes are no array", headers=NPY)
        assert reply.status_code == 400, reply.text
        message = reply.json()["message"]
        assert "not a .npy file" in message, message
        assert "pickle" not in message, message
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    reply = client.post("/decode", content=objects.getvalue(), headers=NPY)
    assert reply.status_code == 400, reply.text
    assert "allow_pickle" not in reply.json()["message"], reply.text


@pytest.mark.parametrize(
    ("shape", "images"),
    [((3, 28, 28), 3), ((1, 28, 28), 1), ((28, 28), 1), ((2, 1, 28, 28), 2)],
)
def test_npy_images_for_a_one_channel_model(
    client: httpx.Client, shape: tuple[int, ...], images: int
) -> None:
    """[N,H,W] is a batch of N images, [H,W] one image, [N,1,H,W] a batch."""
    reply = client.post("/encode", content=npy_of(np.zeros(shape, np.float32)), headers=NPY)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["latents"]) == images


def test_npy_images_of_a_shape_no_model_takes_say_which_shapes_it_takes(
    client: httpx.Client,
) -> None:
    reply = client.post("/encode", content=npy_of(np.zeros(28, np.float32)), headers=NPY)
    assert reply.status_code == 422, reply.text
    assert "[N,28,28]" in reply.json()["message"] and "[H,W]" in reply.json()["message"]


def test_a_latent_past_float32s_range_is_a_422_and_no_warning(
    service: ServiceProcess, client: httpx.Client
) -> None:
    reply = client.post("/decode", json={"latents": [[1e40] + [0.0] * 31]})
    assert reply.status_code == 422, reply.text
    assert "float32" in reply.json()["message"]
    reply = client.post("/decode", content=npy_of(np.full((1, 32), -1e40)), headers=NPY)
    assert reply.status_code == 422, reply.text
    assert "RuntimeWarning" not in service.log.read_text(), service.log.read_text()[-2000:]

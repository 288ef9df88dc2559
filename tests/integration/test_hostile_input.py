"""Hostile input over real HTTP: every case gets a 4xx, the server stays up, and its memory stays
bounded (VmRSS before and after the whole module). No timing assertions: a generous client timeout
is the "no hang" check.

Cases test_bad_input.py already asserts (NaN and infinities in /decode latents, '%%%' base64,
n=100000, steps=10000, a '../../etc/passwd' model) are not repeated here.
"""

from __future__ import annotations

import base64
import io
import socket
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.procs import status_mib
from tests.support.dataset_builders import zip_bytes
from tests.support.processes import ServiceProcess, own_models_service

TOKEN = "hostile-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1 << 20  # VAE_MAX_BODY_BYTES of this module's server
TIMEOUT_S = 60.0  # "no hang": any answer within this is fine
RSS_GROWTH_BOUND_MB = 200
JSON = {"content-type": "application/json"}
JSON_ROUTES = ["/encode", "/decode", "/sample", "/interpolate", "/jobs", "/models/mnist/default"]
Z0 = [0.0] * 32


@pytest.fixture(scope="module")
def hostile(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    env = {"VAE_MAX_BODY_BYTES": str(LIMIT), "VAE_MAX_DATASET_BYTES": str(8 * LIMIT)}
    with own_models_service(models_dir, tmp, TOKEN, env) as service:
        yield service


def rss_mb(service: ServiceProcess) -> float:
    rss = status_mib(service.process.pid, "VmRSS")
    assert rss is not None, "no VmRSS"
    return rss


@pytest.fixture(scope="module")
def baseline_rss(hostile: ServiceProcess) -> float:
    """VmRSS once the server has answered each kind of request (warm)."""
    with hostile.client() as http:
        assert http.post("/sample", json={"n": 8, "seed": 1}).status_code == 200
        assert http.post("/decode", json={"latents": [Z0]}).status_code == 200
    return rss_mb(hostile)


@pytest.fixture(scope="module")
def http(hostile: ServiceProcess, baseline_rss: float) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile.url, timeout=TIMEOUT_S, headers=AUTH) as client:
        yield client


def assert_4xx(reply: httpx.Response, status: int | None = None) -> None:
    assert 400 <= reply.status_code < 500, (reply.status_code, reply.text[:500])
    if status is not None:
        assert reply.status_code == status, reply.text[:500]
    assert reply.json()["message"], reply.text[:500]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    """A grey 8-bit PNG with this header and these compressed pixel rows."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + extra
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def deflated_zeros(total: int) -> bytes:
    """`total` zero bytes, deflated a MiB at a time (never held whole)."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [
        packer.compress(block[: min(len(block), total - done)])
        for done in range(0, total, len(block))
    ]
    return b"".join(parts) + packer.flush()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 28x28 JPEG whose frame header (SOF0) claims another size."""
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of `total` bytes sent without a Content-Length (Transfer-Encoding: chunked)."""
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


# ---------------------------------------------------------------- oversized bodies


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_a_body_over_the_limit_is_413_with_content_length(http: httpx.Client, route: str) -> None:
    reply = http.post(route, content=b"{" + b" " * (LIMIT + 1) + b"}", headers=JSON)
    assert_4xx(reply, 413)
    assert reply.json()["error"] == "too_large"


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client, route: str) -> None:
    reply = http.post(route, content=chunked(32 * LIMIT), headers=JSON)
    assert_4xx(reply, 413)


def test_a_chunked_npy_body_over_the_limit_is_413(http: httpx.Client) -> None:
    npy = {"content-type": "application/x-npy"}
    assert_4xx(http.post("/decode", content=chunked(8 * LIMIT), headers=npy), 413)


def test_a_content_length_claiming_a_terabyte_is_refused_before_the_body(
    hostile: ServiceProcess, baseline_rss: float
) -> None:
    """The header alone decides: the server answers without waiting for the body."""
    host, port = hostile.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(
            b"POST /sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000000\r\n\r\n{"
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# ---------------------------------------------------------------- deeply nested JSON


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_100k_levels_of_brackets(http: httpx.Client, route: str) -> None:
    assert_4xx(http.post(route, content=b"[" * 100_000, headers=JSON))


@pytest.mark.parametrize(
    ("route", "prefix", "suffix"),
    [
        ("/encode", b'{"arrays": ', b"}"),
        ("/decode", b'{"latents": ', b"}"),
        ("/interpolate", b'{"end": {"latent": [0]}, "start": {"array": ', b"}}"),
        ("/jobs", b'{"dataset": "d", "name": "n", "config": ', b"}"),
        ("/sample", b'{"n": 1, "model": ', b"}"),
    ],
)
def test_deep_nesting_inside_a_field(
    http: httpx.Client, route: str, prefix: bytes, suffix: bytes
) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    assert_4xx(http.post(route, content=prefix + nested + suffix, headers=JSON))


# ---------------------------------------------------------------- huge counts and dimensions


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/sample", {"n": 10**12}),
        ("/sample", {"n": 2**70}),
        ("/sample", {"n": -(2**70)}),
        ("/interpolate", {"start": {"latent": Z0}, "end": {"latent": Z0}, "steps": 2**70}),
        ("/encode", {"arrays": [[[0.0] * 28] * 28], "samples": 10**9}),
        ("/decode", {"latents": [Z0] * 257}),
        ("/encode", {"arrays": [[[[0.0] * 60000]]]}),
        ("/encode", {"arrays": [[[0.0] * 28] * 28] * 257}),
        ("/decode", {"latents": [[0.0] * (LIMIT // 6)]}),  # a body of numbers near the limit
    ],
)
def test_huge_counts_are_refused(http: httpx.Client, route: str, body: dict) -> None:
    assert_4xx(http.post(route, json=body))


def test_a_png_header_claiming_60000_by_60000(http: httpx.Client) -> None:
    claim = png(60000, 60000, zlib.compress(bytes(29 * 28)))
    assert_4xx(http.post("/encode", json={"images": [b64(claim)]}), 422)
    start = {"image": b64(claim)}
    assert_4xx(http.post("/interpolate", json={"start": start, "end": {"latent": Z0}}), 422)


def test_a_jpeg_header_claiming_60000_by_60000(http: httpx.Client) -> None:
    assert_4xx(http.post("/encode", json={"images": [b64(jpeg_claiming(60000, 60000))]}), 422)


def test_a_png_decompression_bomb(http: httpx.Client) -> None:
    """20000 x 20000 pixels really deflated (400 MB of pixels in ~400 KB): Pillow's
    MAX_IMAGE_PIXELS refuses it before a row is inflated."""
    side = 20000
    bomb = png(side, side, deflated_zeros(side * (side + 1)))
    assert len(bomb) < LIMIT // 2
    assert_4xx(http.post("/encode", json={"images": [b64(bomb)]}), 422)


def test_a_png_just_under_pillows_pixel_limit_is_refused_by_size(http: httpx.Client) -> None:
    """4000 x 4000 passes Pillow's bomb check; the model's 28 x 28 refuses it before decoding."""
    bomb = png(4000, 4000, deflated_zeros(4000 * 4001))
    assert_4xx(http.post("/encode", json={"images": [b64(bomb)]}), 422)


def test_a_compressed_text_chunk_bomb(http: httpx.Client) -> None:
    """A right-sized PNG with a zTXt chunk inflating to 256 MB: Pillow's MAX_TEXT_CHUNK."""
    ztxt = png_chunk(b"zTXt", b"comment\x00\x00" + deflated_zeros(256 << 20))
    bomb = png(28, 28, zlib.compress(bytes(29 * 28)), extra=ztxt)
    assert len(bomb) < LIMIT
    assert_4xx(http.post("/encode", json={"images": [b64(bomb)]}), 422)


def test_a_dataset_zip_holding_a_png_bomb(http: httpx.Client) -> None:
    bomb = png(60000, 60000, zlib.compress(bytes(29 * 28)))
    reply = http.put("/datasets/bombs", content=zip_bytes({"0/bomb.png": bomb}))
    assert_4xx(reply, 422)
    assert http.get("/datasets/bombs").status_code == 404


# ---------------------------------------------------------------- malformed base64


@pytest.mark.parametrize(
    "text",
    [
        "abc",  # bad padding
        "====",
        "",
        "iVBO RK\n==",
        "ümläut",
        "data:image/png;base64,%%%",
        "data:image/png;base64,",
        "A" * (LIMIT // 2),  # valid base64 of zeros, not an image
        b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),  # a PNG signature and garbage
    ],
    ids=["padding", "only-padding", "empty", "whitespace", "non-ascii", "data-garbage",
         "data-empty", "half-a-mib", "png-signature"],
)  # fmt: skip
def test_malformed_base64_images(http: httpx.Client, text: str) -> None:
    assert_4xx(http.post("/encode", json={"images": [text]}), 422)
    body = {"start": {"image": text}, "end": {"latent": Z0}, "steps": 2}
    assert_4xx(http.post("/interpolate", json=body), 422)


# ---------------------------------------------------------------- NaN and infinities


def numbers_json(token: bytes, count: int = 32) -> bytes:
    return b"[" + b", ".join([token] + [b"0.0"] * (count - 1)) + b"]"


@pytest.mark.parametrize("token", [b"1e309", b"-1e309", b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_everywhere(http: httpx.Client, token: bytes) -> None:
    latent = numbers_json(token)
    if token.endswith(b"e309"):  # NaN and the infinities in /decode: test_bad_input.py
        assert_4xx(http.post("/decode", content=b'{"latents": [' + latent + b"]}", headers=JSON))
    for body in (
        b'{"start": {"latent": ' + latent + b'}, "end": {"latent": ' + numbers_json(b"0") + b"}}",
        b'{"start": {"array": [' + numbers_json(token, 28) + b']}, "end": {"latent": [0]}}',
    ):
        assert_4xx(http.post("/interpolate", content=body, headers=JSON))
    image = b"[" + b", ".join([numbers_json(token, 28)] * 28) + b"]"
    assert_4xx(http.post("/encode", content=b'{"arrays": [' + image + b"]}", headers=JSON))
    sample = b'{"n": 2, "temperature": ' + token + b"}"
    assert_4xx(http.post("/sample", content=sample, headers=JSON), 422)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_npy_latents(http: httpx.Client, value: float) -> None:
    latents = np.zeros((2, 32), dtype=np.float32)
    latents[1, 3] = value
    buffer = io.BytesIO()
    np.save(buffer, latents)
    npy = {"content-type": "application/x-npy"}
    assert_4xx(http.post("/decode", content=buffer.getvalue(), headers=npy), 422)


@pytest.mark.parametrize("value", [3e38, -3e38])
def test_finite_latents_that_overflow_the_decoder(http: httpx.Client, value: float) -> None:
    """Finite in float32, but the decoder's output is NaN: refused, never nulls or junk PNGs."""
    far = [value] * 32
    assert_4xx(http.post("/decode", json={"latents": [far], "format": "array"}), 422)
    assert_4xx(http.post("/decode", json={"latents": [far]}), 422)
    body = {"start": {"latent": far}, "end": {"latent": Z0}, "steps": 3, "format": "array"}
    assert_4xx(http.post("/interpolate", json=body), 422)


# ---------------------------------------------------------------- path-like names

NAMES = ["../x", "..", "%2e%2e", "%2e%2e%2fx", "a/b", "/etc/passwd", "a\\b", "a\x00b", "x" * 5000,
         "mnist/../mnist", "mnist:../1", "mnist:1/../2", "MNIST", "mnist\n", " mnist"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_path_like_model_names_in_bodies(http: httpx.Client, name: str) -> None:
    assert_4xx(http.post("/sample", json={"n": 1, "model": name}), 404)
    assert_4xx(http.post("/decode", json={"latents": [Z0], "model": name}), 404)


@pytest.mark.parametrize("name", NAMES)
def test_path_like_names_in_job_requests(http: httpx.Client, name: str) -> None:
    assert_4xx(http.post("/jobs", json={"dataset": name, "name": "ok"}), 422)
    assert_4xx(http.post("/jobs", json={"dataset": "ok", "name": name}), 422)


@pytest.mark.parametrize(
    "segment",
    ["..%2Fx", "%2e%2e", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "a%00b", "x" * 5000, "%2Fetc%2Fpasswd",
     "a%5Cb", "%C0%AE%C0%AE"],
)  # fmt: skip
def test_path_like_names_in_urls(http: httpx.Client, hostile: ServiceProcess, segment: str) -> None:
    for method, template in [
        ("GET", "/models/{}"),
        ("GET", "/v2/models/{}/ready"),
        ("GET", "/models/{}/versions/1/report/samples.png"),
        ("GET", "/models/mnist/versions/1/report/{}.png"),
        ("GET", "/datasets/{}"),
        ("DELETE", "/datasets/{}"),
        ("PUT", "/datasets/{}"),
        ("DELETE", "/models/{}/versions/1"),
        ("GET", "/static/{}"),
    ]:
        url = httpx.URL(hostile.url).copy_with(raw_path=template.format(segment).encode())
        reply = http.request(method, url, content=b"garbage" if method == "PUT" else None)
        assert 400 <= reply.status_code < 500, (method, url, reply.status_code, reply.text[:300])
    assert http.get("/models/mnist").status_code == 200
    assert http.get("/datasets").json()["datasets"] == []


# ---------------------------------------------------------------- and memory stayed bounded


def test_the_server_is_up_and_its_memory_bounded(
    hostile: ServiceProcess, http: httpx.Client, baseline_rss: float
) -> None:
    """Runs last in this module: every case above together grew VmRSS by less than the bound."""
    assert http.post("/sample", json={"n": 2, "seed": 3}).status_code == 200
    grown = rss_mb(hostile) - baseline_rss
    print(f"VmRSS {baseline_rss:.0f} MB -> {baseline_rss + grown:.0f} MB")
    assert grown < RSS_GROWTH_BOUND_MB, f"VmRSS grew {grown:.0f} MB"
    log = hostile.log.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]

"""Every inference endpoint over real HTTP against the shipped model's ONNX graphs."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.dataset_builders import png_b64
from tests.support.processes import ServiceProcess

NPY = "application/x-npy"


def from_png_b64(text: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image, dtype=np.float32) / 255.0


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> httpx.Client:
    with service.client() as http:
        yield http


@pytest.fixture(scope="module")
def latent_dim(client: httpx.Client) -> int:
    return int(client.get("/models/mnist").json()["versions"][-1]["manifest"]["latent_dim"])


def best_match(images: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """For each image, its highest correlation with any of the reference digits."""
    a = images.reshape(len(images), -1)
    b = digits.reshape(len(digits), -1).astype(np.float32) / 255.0
    a = (a - a.mean(1, keepdims=True)) / (a.std(1, keepdims=True) + 1e-6)
    b = (b - b.mean(1, keepdims=True)) / (b.std(1, keepdims=True) + 1e-6)
    return (a @ b.T / a.shape[1]).max(axis=1)


def test_encode_base64_png_returns_mu_and_sigma(
    client: httpx.Client, heldout_digits, latent_dim: int
) -> None:
    images, _ = heldout_digits
    reply = client.post("/encode", json={"images": [png_b64(images[0]), png_b64(images[1])]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "mnist" and body["version"] >= 1
    assert len(body["latents"]) == 2
    for entry in body["latents"]:
        assert len(entry["mu"]) == latent_dim and len(entry["sigma"]) == latent_dim
        assert all(s > 0 for s in entry["sigma"])
        assert "z" not in entry


def test_encode_samples_draws_z_around_mu(client: httpx.Client, heldout_digits) -> None:
    images, _ = heldout_digits
    reply = client.post(
        "/encode", json={"images": [png_b64(images[2])], "samples": 5, "seed": 1}
    ).json()
    entry = reply["latents"][0]
    z = np.array(entry["z"])
    assert z.shape == (5, len(entry["mu"]))
    spread = np.abs(z - np.array(entry["mu"])) / np.array(entry["sigma"])
    assert spread.max() < 8


def test_encode_then_decode_reconstructs_the_digit(client: httpx.Client, heldout_digits) -> None:
    images, _ = heldout_digits
    batch = images[10:26]
    encoded = client.post("/encode", json={"arrays": (batch / 255.0).tolist()}).json()
    mus = [entry["mu"] for entry in encoded["latents"]]
    decoded = client.post("/decode", json={"latents": mus}).json()
    recon = np.stack([from_png_b64(text) for text in decoded["images"]])
    assert recon.shape == (16, 28, 28)
    # each reconstruction looks most like its own original
    a = recon.reshape(16, -1) - recon.reshape(16, -1).mean(1, keepdims=True)
    b = batch.reshape(16, -1) / 255.0
    b = b - b.mean(1, keepdims=True)
    similarity = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)
    ).T
    assert (similarity.argmax(axis=1) == np.arange(16)).mean() >= 0.9
    assert np.diag(similarity).mean() > 0.8


def test_decode_array_and_npy_formats_agree(client: httpx.Client, latent_dim: int) -> None:
    z = np.random.default_rng(0).standard_normal((3, latent_dim)).astype(np.float32)
    arrays = np.array(
        client.post("/decode", json={"latents": z.tolist(), "format": "array"}).json()["arrays"]
    )
    assert arrays.shape == (3, 1, 28, 28)
    assert arrays.min() >= 0.0 and arrays.max() <= 1.0
    raw = client.post("/decode", content=npy(z), headers={"content-type": NPY, "accept": NPY})
    assert raw.status_code == 200 and raw.headers["content-type"] == NPY
    from_npy = np.load(io.BytesIO(raw.content))
    np.testing.assert_allclose(from_npy, arrays, atol=1e-6)
    pngs = client.post("/decode", json={"latents": z.tolist()}).json()["images"]
    np.testing.assert_allclose(from_png_b64(pngs[0]), arrays[0, 0], atol=1 / 255 + 1e-6)


def test_encode_accepts_npy_and_answers_npy(client: httpx.Client, heldout_digits) -> None:
    images, _ = heldout_digits
    x = (images[:4] / 255.0).astype(np.float32)[:, None]
    raw = client.post("/encode", content=npy(x), headers={"content-type": NPY, "accept": NPY})
    assert raw.status_code == 200, raw.text
    both = np.load(io.BytesIO(raw.content))
    assert both.shape[:2] == (4, 2)
    as_json = client.post("/encode", json={"images": [png_b64(d) for d in images[:4]]}).json()
    np.testing.assert_allclose(both[:, 0], [e["mu"] for e in as_json["latents"]], atol=1e-5)


def test_sample_is_reproducible_with_a_seed(client: httpx.Client) -> None:
    first = client.post("/sample", json={"n": 4, "seed": 7}).json()
    again = client.post("/sample", json={"n": 4, "seed": 7}).json()
    other = client.post("/sample", json={"n": 4, "seed": 8}).json()
    assert first["images"] == again["images"] and first["latents"] == again["latents"]
    assert first["images"] != other["images"]
    assert first["seed"] == 7


def test_sample_temperature_scales_the_prior(client: httpx.Client) -> None:
    cold = client.post("/sample", json={"n": 3, "seed": 3, "temperature": 0.0}).json()
    assert np.allclose(cold["latents"], 0.0)
    assert cold["images"][0] == cold["images"][1] == cold["images"][2]
    warm = np.array(
        client.post("/sample", json={"n": 3, "seed": 3, "temperature": 0.5}).json()["latents"]
    )
    full = np.array(client.post("/sample", json={"n": 3, "seed": 3}).json()["latents"])
    np.testing.assert_allclose(warm, 0.5 * full, rtol=1e-5)


def test_samples_look_like_digits(client: httpx.Client, heldout_digits) -> None:
    images, _ = heldout_digits
    reply = client.post(
        "/sample", json={"n": 32, "seed": 11, "temperature": 0.8, "format": "array"}
    ).json()
    samples = np.array(reply["arrays"])[:, 0]
    # Digits: mostly dark background with a bright stroke, and close to some real digit.
    assert 0.05 < samples.mean() < 0.35
    assert np.median(best_match(samples, images)) > 0.6
    noise = np.random.default_rng(0).random((32, 28, 28)).astype(np.float32)
    assert np.median(best_match(noise, images)) < 0.3


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolate_between_two_images(client: httpx.Client, heldout_digits, method: str) -> None:
    images, _ = heldout_digits
    reply = client.post(
        "/interpolate",
        json={
            "start": {"image": png_b64(images[0])},
            "end": {"image": png_b64(images[1])},
            "steps": 6,
            "method": method,
        },
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert len(body["images"]) == 6 and len(body["latents"]) == 6
    mus = [
        e["mu"]
        for e in client.post(
            "/encode", json={"images": [png_b64(images[0]), png_b64(images[1])]}
        ).json()["latents"]
    ]
    np.testing.assert_allclose(body["latents"][0], mus[0], atol=1e-5)
    np.testing.assert_allclose(body["latents"][-1], mus[1], atol=1e-5)


def test_lerp_and_slerp_differ_between_latents(client: httpx.Client, latent_dim: int) -> None:
    a = [1.0] + [0.0] * (latent_dim - 1)
    b = [0.0, 1.0] + [0.0] * (latent_dim - 2)
    lerp = client.post(
        "/interpolate",
        json={"start": {"latent": a}, "end": {"latent": b}, "steps": 3, "method": "lerp"},
    ).json()
    slerp = client.post(
        "/interpolate",
        json={"start": {"latent": a}, "end": {"latent": b}, "steps": 3, "method": "slerp"},
    ).json()
    assert np.linalg.norm(lerp["latents"][1]) == pytest.approx(np.sqrt(0.5), abs=1e-5)
    assert np.linalg.norm(slerp["latents"][1]) == pytest.approx(1.0, abs=1e-5)


def test_models_report_manifest_and_provider(client: httpx.Client) -> None:
    listing = client.get("/models").json()
    assert listing["default"] == "mnist"
    assert "mnist" in [m["name"] for m in listing["models"]]
    model = client.get("/models/mnist").json()
    current = next(v for v in model["versions"] if v["version"] == model["default_version"])
    assert current["loaded"] is True
    assert current["provider"] in {"CPUExecutionProvider", "CUDAExecutionProvider", "openvino:CPU"}
    assert current["engine"]["decoder"]["engine"] in {"onnxruntime", "openvino"}
    manifest = current["manifest"]
    assert manifest["image"] == {"height": 28, "width": 28, "channels": 1}
    assert manifest["metrics"]["iwae_nll"] > 0 and manifest["parity"]["max_abs_err"] <= 1e-4
    figure = client.get(f"/models/mnist/versions/{current['version']}/report/samples.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")


def test_health_routes(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert client.get("/v2/models/mnist/ready").json()["ready"] is True
    assert client.get("/v2/models/nothing/ready").status_code == 404

"""Spatial models (kind autoencoder) through the four inference routes, in process: a tiny
random AutoencoderKL and a TAESD-style AutoencoderTiny imported from diffusers folders. Images of
any allowed size in, latents [N,C,h,w] out as JSON, .npy or raw bytes in three dtypes; images
out as PNG, JPEG, raw uint8 or arrays; the cache keyed by pixels and size; /sample refused with
the reason; tiled decoding that matches the untiled one; the remote token."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.serving.batcher import DirectRunner, MicroBatcher
from app.serving.tensors import to_bytes
from tests.support.autoencoders import import_both

pytestmark = pytest.mark.anyio
RAW = {"content-type": "application/octet-stream"}
NPY = {"accept": "application/x-npy"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spatial")
    import_both(root / "models", root)
    return root / "models"


async def _transport(models_dir: Path, **settings: Any) -> AsyncIterator[httpx.ASGITransport]:
    from app.main import create_app

    # fp32: these tests hold the API's conversions to fp32's exactness; bf16 and its quality
    # gate are test_engines_api's
    settings = {"precision": "fp32", **settings}
    app = create_app(
        Settings(models_dir=models_dir, data_dir=models_dir.parent / "data", default_model="kl",
                 reload_interval_s=0, threads=1, **settings)
    )  # fmt: skip
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


async def _client(models_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for transport in _transport(models_dir, **settings):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(scope="module")
async def client(models_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(models_dir, remote_token="s3cret"):
        yield client


def _images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    images = np.empty((n, 3, height, width), np.float32)
    for i in range(n):
        a, b = rng.uniform(0.1, 0.8, (2, 3))
        images[i] = np.stack([np.clip(a[c] * xs + b[c] * ys, 0, 1) for c in range(3)])
    return images


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


async def _raw_decode(
    client: httpx.AsyncClient, z: np.ndarray, model: str = "kl", **params: Any
) -> httpx.Response:
    query = {"model": model, "shape": ",".join(map(str, z.shape)), **params}
    return await client.post(
        "/decode", content=z.astype(np.float32).tobytes(), params=query, headers=RAW
    )


async def test_the_manifest_describes_the_spatial_latent(client: httpx.AsyncClient) -> None:
    described = (await client.get("/models/kl")).json()
    version = described["versions"][0]
    assert version["kind"]["name"] == "autoencoder" and version["kind"]["spatial"]
    manifest = version.get("manifest", described)
    text = json.dumps(manifest)
    assert '"downscale": 2' in text and '"scaling_factor": 0.3611' in text


async def test_encode_takes_any_allowed_size_and_gives_latent_grids(
    client: httpx.AsyncClient,
) -> None:
    images = _images(2, 24, 40)
    answer = await client.post("/encode", json={"model": "kl", "arrays": images.tolist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["latent_shape"] == [4, 12, 20] and body["scaling_factor"] == pytest.approx(0.3611)
    assert np.asarray(body["latents"][0]["mu"]).shape == (4, 12, 20)
    assert np.asarray(body["latents"][0]["sigma"]).shape == (4, 12, 20)
    as_npy = await client.post(
        "/encode?model=kl",
        content=_npy(images),
        headers={"content-type": "application/x-npy", **NPY},
    )
    mean = np.load(io.BytesIO(as_npy.content))
    assert np.allclose(mean[0], body["latents"][0]["mu"], atol=1e-6)
    tiny = (
        await client.post("/encode", json={"model": "tiny", "arrays": images[:1].tolist()})
    ).json()
    assert tiny["latents"][0]["sigma"] is None  # TAESD's encoder is deterministic


async def test_an_image_file_and_the_same_pixels_hit_one_cache_entry(
    client: httpx.AsyncClient,
) -> None:
    image = _images(1, 16, 24, seed=7)
    pixels = np.rint(image[0] * 255).astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels.transpose(1, 2, 0)).save(png, format="PNG")
    first = await client.post(
        "/encode?model=kl", content=png.getvalue(), headers={"content-type": "image/png"}
    )
    assert first.json()["latents"][0]["cached"] is False
    again = await client.post(
        "/encode", json={"model": "kl", "images": [base64.b64encode(png.getvalue()).decode()]}
    )
    assert again.json()["latents"][0]["cached"] is True
    assert np.allclose(again.json()["latents"][0]["mu"], first.json()["latents"][0]["mu"])
    bigger = np.pad(pixels, ((0, 0), (0, 2), (0, 0)))  # the same pixels and more: another entry
    raw = await client.post("/encode", params={"model": "kl", "shape": "1,3,18,24", "dtype": "uint8"},
                            content=bigger[None].tobytes(), headers=RAW)  # fmt: skip
    assert raw.json()["latents"][0]["cached"] is False


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
async def test_decode_takes_raw_latents_in_three_dtypes(
    client: httpx.AsyncClient, dtype: str
) -> None:
    z = np.random.default_rng(1).standard_normal((2, 4, 6, 10)).astype(np.float32)
    reference = np.load(io.BytesIO((await _raw_decode(client, z, format="npy")).content))
    query = {"model": "kl", "shape": "2,4,6,10", "dtype": dtype, "format": "npy"}
    answer = await client.post("/decode", content=to_bytes(z, dtype), params=query, headers=RAW)
    assert answer.status_code == 200, answer.text
    images = np.load(io.BytesIO(answer.content))
    assert images.shape == (2, 3, 12, 20) and images.min() >= 0 and images.max() <= 1
    assert (
        np.abs(images - reference).max() <= {"float32": 0, "float16": 2e-3, "bfloat16": 3e-2}[dtype]
    )


async def test_decode_gives_png_jpeg_raw_uint8_and_image_files(client: httpx.AsyncClient) -> None:
    z = np.random.default_rng(2).standard_normal((1, 4, 8, 12)).astype(np.float32)
    raw = await _raw_decode(client, z, format="raw")
    assert json.loads(raw.headers["shape"]) == [1, 16, 24, 3] and raw.headers["dtype"] == "uint8"
    pixels = np.frombuffer(raw.content, np.uint8).reshape(1, 16, 24, 3)
    png = await _raw_decode(client, z)
    from_png = np.asarray(Image.open(io.BytesIO(base64.b64decode(png.json()["images"][0]))))
    assert np.array_equal(from_png, pixels[0])
    jpeg = (await _raw_decode(client, z, format="jpeg")).json()["images"][0]
    assert base64.b64decode(jpeg)[:2] == b"\xff\xd8"
    file = await client.post("/decode", content=z.tobytes(), params={"model": "kl", "shape": "1,4,8,12"},
                             headers={**RAW, "accept": "image/png"})  # fmt: skip
    assert file.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(file.content))), pixels[0])
    nested = await client.post(
        "/decode", json={"model": "kl", "latents": z.tolist(), "format": "array"}
    )
    assert np.allclose(
        np.asarray(nested.json()["arrays"]),
        pixels.transpose(0, 3, 1, 2) / 255,
        atol=0.5 / 255 + 1e-6,
    )


async def test_sizes_the_model_does_not_take_are_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    odd = await client.post("/encode", json={"model": "kl", "arrays": _images(1, 15, 20).tolist()})
    assert odd.status_code == 422 and "multiples of 2" in odd.json()["message"]
    wrong = await _raw_decode(client, np.zeros((1, 3, 4, 4), np.float32))
    assert wrong.status_code == 422 and "[N, 4, h, w]" in wrong.json()["message"]
    short = await client.post(
        "/decode", content=b"\0" * 10, params={"model": "kl", "shape": "1,4,4,4"}, headers=RAW
    )
    assert short.status_code == 422 and short.json()["error"] == "invalid_tensor"
    ragged = await client.post("/decode", json={"model": "kl", "latents": [[[1.0, 2.0], [3.0]]]})
    assert ragged.status_code == 422 and ragged.json()["error"] == "invalid_latent"
    flat = await client.post(
        "/decode", content=b"\0" * 128, params={"model": "mnist", "shape": "1,32"}, headers=RAW
    )
    assert flat.status_code in {404, 422}


async def test_sample_is_refused_saying_the_prior_means_nothing(client: httpx.AsyncClient) -> None:
    answer = await client.post("/sample", json={"model": "kl", "n": 1})
    assert answer.status_code == 422 and answer.json()["error"] == "no_prior"
    assert "diffusion model" in answer.json()["message"]


@pytest.mark.parametrize("method", ["lerp", "slerp"])
async def test_interpolate_walks_the_whole_latent_between_two_images(
    client: httpx.AsyncClient, method: str
) -> None:
    a, b = _images(2, 16, 16, seed=3)
    answer = await client.post("/interpolate", json={"model": "tiny", "start": {"array": a.tolist()},
                               "end": {"array": b.tolist()}, "steps": 4, "method": method})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    path = np.asarray(body["latents"])
    assert path.shape == (4, 4, 8, 8) and len(body["images"]) == 4
    ends = (await client.post("/encode?model=tiny", content=_npy(np.stack([a, b])),
                              headers={"content-type": "application/x-npy", **NPY})).content  # fmt: skip
    assert np.allclose(path[[0, -1]], np.load(io.BytesIO(ends)), atol=1e-5)


async def test_the_remote_routes_want_the_token_when_one_is_set(client: httpx.AsyncClient) -> None:
    z = np.zeros((1, 4, 4, 4), np.float32)
    query = {"shape": "1,4,4,4", "dtype": "float32", "output_type": "pt"}
    missing = await client.post("/remote/kl/decode", content=z.tobytes(), params=query)
    assert missing.status_code == 401
    wrong = await client.post("/remote/kl/decode", content=z.tobytes(), params=query,
                              headers={"authorization": "Bearer nope"})  # fmt: skip
    assert wrong.status_code == 403
    right = await client.post("/remote/kl/decode", content=z.tobytes(), params=query,
                              headers={"authorization": "Bearer s3cret"})  # fmt: skip
    assert right.status_code == 200 and json.loads(right.headers["shape"]) == [1, 3, 8, 8]


def _smooth_latent(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] / 64.0
    waves = ((0.7, 0.3, 0.0), (0.4, 0.9, 1.0), (1.1, 0.2, 2.0), (0.3, 0.5, 3.0))
    return np.stack([np.sin(2 * np.pi * (a * xs + b * ys) + c) for a, b, c in waves])[None].astype(
        np.float32
    )


def _unit(images: np.ndarray) -> np.ndarray:
    return np.clip((images + 1) / 2, 0, 1)


def _diffusers_kl(tiled: bool) -> Any:
    from tests.support.autoencoders import build

    model = build("kl")  # the same seed and config the imported "kl" was saved from
    if tiled:
        model.enable_tiling()
    return model


async def test_an_autoencoder_kl_is_tiled_only_past_the_budget_and_then_as_diffusers_tiles(
    models_dir: Path,
) -> None:
    """A 128 x 128 decode of the tiny AutoencoderKL (4096 tokens: two 64 MiB score matrices) runs
    in one piece on the defaults and equals diffusers' untiled decode, no X-VAE-Tiling header; under
    a 64 MB budget it is tiled exactly as diffusers' `enable_tiling()` tiles it (32-pixel tiles
    from the config's sample_size, overlap 0.25), and the header says so, on /decode, /encode and
    the remote routes alike. On ONNX Runtime: OpenVINO fuses the attention (a few MB here)."""
    import torch

    z = _smooth_latent(64, 64)
    unit = _images(1, 128, 128, seed=5)
    image = unit * 2 - 1  # the model's range
    with torch.no_grad():
        whole = _diffusers_kl(False).decode(torch.from_numpy(z)).sample.numpy()
        tiled_model = _diffusers_kl(True)
        tiles = tiled_model.decode(torch.from_numpy(z)).sample.numpy()
        mean = tiled_model.encode(torch.from_numpy(image)).latent_dist.mean.numpy()
    assert np.abs(tiles - whole).max() > 0.01  # the tiles do change the result
    async for client in _client(models_dir):
        answer = await _raw_decode(client, z, format="npy")
        assert answer.status_code == 200 and "x-vae-tiling" not in answer.headers
        untiled = np.load(io.BytesIO(answer.content))
        assert np.abs(untiled - _unit(whole)).max() < 1e-4
    async for client in _client(models_dir, memory_budget_mb=64, engine="onnxruntime"):
        answer = await _raw_decode(client, z, format="npy")
        assert answer.headers["x-vae-tiling"] == "diffusers tiles 32 px, overlap 0.25"
        assert np.abs(np.load(io.BytesIO(answer.content)) - _unit(tiles)).max() < 1e-4
        query = {"shape": "1,4,64,64", "dtype": "float32", "output_type": "pt"}
        remote = await client.post("/remote/kl/decode", content=z.tobytes(), params=query)
        assert remote.headers["x-vae-tiling"] == "diffusers tiles 32 px, overlap 0.25"
        raw = np.frombuffer(remote.content, np.float32).reshape(1, 3, 128, 128)
        assert np.abs(raw - tiles).max() < 1e-4
        encoded = await client.post(
            "/encode?model=kl",
            content=_npy(unit),
            headers={"content-type": "application/x-npy", **NPY},
        )
        assert encoded.headers["x-vae-tiling"] == "diffusers tiles 32 px, overlap 0.25"
        assert np.abs(np.load(io.BytesIO(encoded.content)) - mean).max() < 1e-4
        query = {"shape": "1,3,128,128", "dtype": "float32"}
        remote = await client.post("/remote/kl/encode", content=image.tobytes(), params=query)
        assert remote.headers["x-vae-tiling"] == "diffusers tiles 32 px, overlap 0.25"
        latents = np.frombuffer(remote.content, np.float32).reshape(mean.shape)
        assert np.abs(latents - mean).max() < 1e-4


async def test_a_request_that_fits_even_tiled_nowhere_is_413_with_the_largest_size(
    models_dir: Path,
) -> None:
    z = _smooth_latent(64, 64)
    budget = {"memory_budget_mb": 64, "tiling": "never", "engine": "onnxruntime"}
    async for client in _client(models_dir, **budget):  # the estimate is ONNX Runtime's
        answer = await _raw_decode(client, z, format="npy")
        assert answer.status_code == 413, answer.text
        message = answer.text
        side = int(str(message).split("largest that fits is ")[1].split("x")[0])
        assert 0 < side < 128 and "VAE_MEMORY_BUDGET_MB" in str(message)
        fits = await _raw_decode(client, z[:, :, : side // 2, : side // 2], format="npy")
        assert fits.status_code == 200, fits.text


async def test_a_tiny_autoencoder_tiled_always_gives_its_untiled_result(
    models_dir: Path,
) -> None:
    """TAESD-style tiles carry a halo as wide as the decoder's (or encoder's) receptive field
    and are cropped to their cores: with VAE_TILING=always and 32-pixel tiles, the images and
    latents equal the untiled ones (float rounding aside), and the header says which tiles."""
    z = _smooth_latent(48, 128)  # a 96 x 256 image
    image = _images(1, 96, 256, seed=3)
    async for client in _client(models_dir):
        untiled, latents = await _decode_npy(client, z), await _encode_npy(client, image)
    async for client in _client(models_dir, tiling="always", tile_size=32):
        answer = await _raw_decode(client, z, model="tiny", format="npy")
        assert answer.headers["x-vae-tiling"].startswith("exact tiles 32 px, halo ")
        assert np.abs(np.load(io.BytesIO(answer.content)) - untiled).max() < 1e-4
        assert np.abs(await _encode_npy(client, image) - latents).max() < 1e-4


async def _encode_npy(client: httpx.AsyncClient, images: np.ndarray) -> np.ndarray:
    answer = await client.post(
        "/encode?model=tiny",
        content=_npy(np.ascontiguousarray(images)),
        headers={"content-type": "application/x-npy", **NPY},
    )
    assert answer.status_code == 200, answer.text
    return np.load(io.BytesIO(answer.content))


async def _decode_npy(client: httpx.AsyncClient, z: np.ndarray) -> np.ndarray:
    answer = await _raw_decode(client, np.ascontiguousarray(z), model="tiny", format="npy")
    assert answer.status_code == 200, answer.text
    return np.load(io.BytesIO(answer.content))


async def test_the_python_client_encodes_and_decodes_latent_grids(models_dir: Path) -> None:
    """vae_client on a spatial model: `encode` gives the latent means [N, C, h, w] (what the
    JSON answer calls mu), `decode` takes them back to images of the size they came from, and
    `interpolate` walks between two latent grids given as `Latent`s."""
    from vae_client import AsyncClient, Latent

    images = _images(2, 24, 40, seed=5)
    async for transport in _transport(models_dir):
        async with AsyncClient("http://test", transport=transport) as vae:
            encoded = await vae.encode(images, model="kl")
            decoded = await vae.decode(encoded.mu, model="kl")
            path = await vae.interpolate(
                Latent(encoded.mu[0]), Latent(encoded.mu[1]), steps=3, model="kl"
            )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"model": "kl", "arrays": images.tolist()}
            answer = (await client.post("/encode", json=body)).json()
    assert encoded.mu.shape == (2, 4, 12, 20) and encoded.sigma is None
    assert np.allclose(encoded.mu, [entry["mu"] for entry in answer["latents"]], atol=1e-5)
    assert encoded.model == "kl" and decoded.shape == (2, 3, 24, 40)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0
    assert path.latents.shape == (3, 4, 12, 20) and path.images.shape == (3, 3, 24, 40)
    assert np.allclose(path.latents[[0, -1]], encoded.mu, atol=1e-5)


@pytest.mark.parametrize(("setting", "runner"), [("auto", DirectRunner), ("on", MicroBatcher)])
async def test_on_the_cpu_spatial_models_run_unbatched_unless_told(
    models_dir: Path, setting: str, runner: type
) -> None:
    """VAE_SPATIAL_BATCHING=auto: no batcher in front of a spatial model's graphs on the CPU
    (a flat model keeps its batcher); `on` puts one there anyway."""
    async for transport in _transport(models_dir, spatial_batching=setting):
        registry = transport.app.state.vae.registry  # type: ignore[attr-defined]
        spatial = await registry.resolve("kl")
        assert spatial.decoder.graph.device == "cpu"
        assert isinstance(spatial.decode_runner, runner)
        assert isinstance(spatial.encode_runner, runner)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            z = np.zeros((2, 4, 4, 4), np.float32)
            assert (await _raw_decode(client, z, format="raw")).status_code == 200


async def test_spatial_requests_are_counted_in_the_metrics_as_other_models(
    client: httpx.AsyncClient,
) -> None:
    z = np.zeros((1, 4, 4, 4), np.float32)
    assert (await _raw_decode(client, z, model="tiny", format="raw")).status_code == 200
    text = (await client.get("/metrics")).text
    batches = [line for line in text.splitlines() if line.startswith("vae_batch_size_count")]
    assert any('model="tiny"' in line and 'graph="decoder"' in line for line in batches)
    assert 'route="/decode"' in text


def _png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def test_a_request_over_its_pixel_budget_is_413_whatever_route_carries_it(
    models_dir: Path,
) -> None:
    """VAE_MAX_REQUEST_PIXELS caps all of a request's images together (here 1,000 pixels:
    three 16x16 images pass, four do not), checked before the work."""
    async for client in _client(models_dir, max_request_pixels=1000):
        four, three = _images(4, 16, 16), _images(3, 16, 16)
        ends = {"start": {"latent": np.zeros((4, 8, 8)).tolist()},
                "end": {"latent": np.ones((4, 8, 8)).tolist()}}  # fmt: skip
        passed = await client.post("/encode", json={"model": "kl", "arrays": three.tolist()})
        assert passed.status_code == 200, passed.text
        refused = [
            await client.post("/encode", json={"model": "kl", "arrays": four.tolist()}),
            await client.post(
                "/encode", json={"model": "kl", "images": [_png_b64(i) for i in four]}
            ),
            await _raw_decode(client, np.zeros((4, 4, 8, 8), np.float32)),  # 4 x 16x16 out
            await client.post("/interpolate", json=ends | {"model": "kl", "steps": 5}),
            await client.post(
                "/remote/kl/decode",
                content=np.zeros((4, 4, 8, 8), np.float32).tobytes(),
                params={"shape": ["4", "4", "8", "8"], "dtype": "float32", "output_type": "pt"},
            ),
        ]
        for response in refused:
            assert response.status_code == 413, response.text
            assert response.json()["error"] == "too_large"
            assert "VAE_MAX_REQUEST_PIXELS" in response.json()["message"]


async def test_inputs_the_model_cannot_take_are_422_not_500(client: httpx.AsyncClient) -> None:
    rgba = await client.post(
        "/encode", content=np.zeros((1, 4, 16, 16), np.float32).tobytes(),
        params={"model": "kl", "shape": "1,4,16,16"}, headers=RAW,
    )  # fmt: skip
    assert rgba.status_code == 422 and "[N, 3, H, W]" in rgba.json()["message"], rgba.text
    packed = np.zeros((1, 16, 16), np.float32)
    for height in ("inf", "1e400", "-16", "0"):
        response = await _raw_decode(client, packed, height=height, width="16")
        assert response.status_code == 422, (height, response.text)
    nan = await client.post(
        "/decode", content=_npy(np.full((1, 4, 8, 8), np.nan, np.float32)),
        params={"model": "kl"}, headers={"content-type": "application/x-npy"},
    )  # fmt: skip
    assert nan.status_code == 422 and nan.json()["error"] == "invalid_latent", nan.text
    auth = {"authorization": "Bearer s3cret"}
    for factor in ("0", "nan", "inf"):
        remote = await client.post(
            "/remote/kl/decode", content=np.zeros((1, 4, 8, 8), np.float32).tobytes(),
            params={"shape": ["1", "4", "8", "8"], "dtype": "float32", "scaling_factor": factor},
            headers=auth,
        )  # fmt: skip
        assert remote.status_code == 422, (factor, remote.text)

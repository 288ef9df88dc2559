"""vae_client's model administration (`set_default`, `delete_version`), dataset listing and image
files in and out (`encode_images`, `decode_images`): against `vae serve` on loopback, and on a
spatial model (a tiny TAESD-style autoencoder imported from a diffusers folder) in process."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from vae_client import AsyncClient, BadRequest, Client, NotFound, Unauthorized

from tests.support.dataset_builders import digits, npz_bytes
from tests.support.processes import ServiceProcess, running_service
from tests.support.repositories import copy_version, mnist_repo

TOKEN = "client-calls-token"


@pytest.fixture(scope="module")
def two_versions(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A service with an admin token over a repository of its own: mnist 1, and 2 (a copy of
    1, published as the repository does) as the default. Its datasets start empty."""
    tmp_path = tmp_path_factory.mktemp("two-versions")
    repo = mnist_repo(models_dir, tmp_path)
    copy_version(repo, 1, 2)
    env = {
        "VAE_MODELS_DIR": str(repo),
        "VAE_DATA_DIR": str(tmp_path / "data"),
        "VAE_ADMIN_TOKEN": TOKEN,
    }
    with running_service(env, tmp_path) as service:
        yield service


def test_set_default_and_delete_version_change_what_answers(two_versions: ServiceProcess) -> None:
    images = np.zeros((1, 1, 28, 28), np.float32)
    with Client(two_versions.url) as anonymous:
        with pytest.raises(Unauthorized) as refused:
            anonymous.set_default("mnist", 1)
        assert refused.value.status == 401
        with pytest.raises(Unauthorized):
            anonymous.delete_version("mnist", 2)
    with Client(two_versions.url, token=TOKEN) as admin:
        assert admin.encode(images).version == 2
        described = admin.set_default("mnist", 1)
        assert described["default_version"] == 1
        assert admin.encode(images, model="mnist").version == 1  # answered at once, no reload
        with pytest.raises(NotFound, match="no version 7"):
            admin.set_default("mnist", 7)
        with pytest.raises(BadRequest) as in_use:
            admin.delete_version("mnist", 1)
        assert in_use.value.status == 409 and in_use.value.error == "is_default"
        admin.delete_version("mnist", 2)
        assert [v["version"] for v in admin.model("mnist")["versions"]] == [1]
        with pytest.raises(NotFound):
            admin.delete_version("mnist", 2)


def test_datasets_lists_every_stored_manifest(two_versions: ServiceProcess, tmp_path: Path) -> None:
    images, labels = digits(n=24, size=8)
    (tmp_path / "b.npz").write_bytes(npz_bytes(images=images, labels=labels))
    (tmp_path / "a.npz").write_bytes(npz_bytes(images=images[:12], labels=labels[:12]))
    with Client(two_versions.url, token=TOKEN) as admin:
        assert admin.datasets() == []
        admin.upload_dataset("b-set", tmp_path / "b.npz")
        admin.upload_dataset("a-set", tmp_path / "a.npz")
        listed = {manifest["name"]: manifest for manifest in admin.datasets()}
        assert listed["b-set"] == admin.dataset("b-set")
    assert sorted(listed) == ["a-set", "b-set"]
    assert listed["a-set"]["count"] == 12 and listed["b-set"]["count"] == 24


def test_decode_images_gives_png_files_that_encode_images_takes_back(
    service: ServiceProcess,
) -> None:
    latents = np.random.default_rng(3).standard_normal((3, 32)).astype(np.float32)
    with Client(service.url) as vae:
        files = vae.decode_images(latents)
        pixels = np.stack([np.asarray(Image.open(io.BytesIO(file))) for file in files])
        from_files = vae.encode_images(files)
        from_pixels = vae.encode(pixels)  # uint8 [3, 28, 28]: the PNGs' own pixels
        drawn = vae.encode_images(files, samples=4, seed=1)
        with pytest.raises(BadRequest, match="format"):
            vae.decode_images(latents, format="bmp")
    assert all(file.startswith(b"\x89PNG") for file in files) and pixels.shape == (3, 28, 28)
    np.testing.assert_allclose(from_files.mu, from_pixels.mu, atol=1e-5)
    assert from_files.sigma is not None and from_files.sigma.shape == (3, 32)
    assert from_files.z is None and drawn.z is not None and drawn.z.shape == (3, 4, 32)


# -- a spatial model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def spatial_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding `tiny`: a random TAESD-style autoencoder (2x downscale, 4 latent
    channels) imported from a diffusers folder."""
    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers
    from tests.support.autoencoders import save

    root = tmp_path_factory.mktemp("spatial-client")
    save("tiny", root / "tiny")
    import_diffusers(ModelRepository(root / "models"), root / "tiny", "tiny")
    return root / "models"


@pytest.fixture
async def spatial(spatial_models: Path) -> AsyncIterator[AsyncClient]:
    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        models_dir=spatial_models,
        data_dir=spatial_models.parent / "data",
        default_model="tiny",
        reload_interval_s=0,
        threads=1,
        precision="fp32",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://test", transport=transport) as vae:
            yield vae


@pytest.mark.anyio
async def test_a_spatial_model_decodes_latent_grids_to_files_of_their_size(
    spatial: AsyncClient,
) -> None:
    grids = np.random.default_rng(0).standard_normal((2, 4, 6, 10)).astype(np.float32)
    pngs = await spatial.decode_images(grids, model="tiny")
    jpegs = await spatial.decode_images(grids, model="tiny", format="jpeg")
    encoded = await spatial.encode_images(pngs[:1], model="tiny")
    arrays = await spatial.decode(grids, model="tiny")
    assert [Image.open(io.BytesIO(f)).format for f in pngs + jpegs] == ["PNG"] * 2 + ["JPEG"] * 2
    assert all(Image.open(io.BytesIO(f)).size == (20, 12) for f in pngs + jpegs)
    first = np.asarray(Image.open(io.BytesIO(pngs[0])).convert("RGB"), np.float32) / 255
    np.testing.assert_allclose(first.transpose(2, 0, 1), arrays[0], atol=1 / 255 + 1e-6)
    assert encoded.mu.shape == (1, 4, 6, 10) and encoded.model == "tiny"


@pytest.mark.anyio
async def test_latents_travel_as_raw_16_bit_floats_when_asked(spatial: AsyncClient) -> None:
    images = np.random.default_rng(1).random((2, 3, 12, 16), dtype=np.float32)
    exact = (await spatial.encode(images, model="tiny")).mu
    half = (await spatial.encode(images, model="tiny", dtype="float16")).mu
    brain = (await spatial.encode(images, model="tiny", dtype="bfloat16")).mu
    assert exact.shape == half.shape == brain.shape == (2, 4, 6, 8)
    assert half.dtype == brain.dtype == np.float32
    scale = float(np.abs(exact).max())
    np.testing.assert_allclose(half, exact, atol=scale * 2**-10)
    np.testing.assert_allclose(brain, exact, atol=scale * 2**-7)
    assert not np.array_equal(brain, exact)  # it did travel in 16 bits
    decoded = await spatial.decode(exact, model="tiny")
    for dtype in ("float32", "float16", "bfloat16"):
        again = await spatial.decode(exact, model="tiny", dtype=dtype)
        assert again.shape == (2, 3, 12, 16)
        np.testing.assert_allclose(again, decoded, atol=0.05 if dtype != "float32" else 1e-6)

"""vae_client against the real service: `vae serve` on loopback with the shipped model, real
HTTP, real ONNX Runtime; training through the embedded job backend; a full batch queue."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from vae_client import (
    AsyncClient,
    BadRequest,
    Client,
    Job,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unauthorized,
)

from tests.support.dataset_builders import digits, npz_bytes
from tests.support.processes import ServiceProcess, running_service

TOKEN = "client-test-token"
TINY_JOB = {
    "epochs": 1,
    "hidden": [16],
    "latent_dim": 2,
    "batch_size": 16,
    "holdout": 8,
    "eval_k": 2,
    "quality": False,
}


@pytest.fixture
def vae(service: ServiceProcess) -> Iterator[Client]:
    with Client(service.url) as client:
        yield client


def test_sample_returns_an_image_batch_array(vae: Client) -> None:
    images = vae.sample(n=4, seed=1)
    assert images.shape == (4, 1, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, vae.sample(n=4, seed=1))  # seeded: reproducible


def test_async_sample_returns_the_same_batch_as_the_blocking_client(
    service: ServiceProcess, vae: Client
) -> None:
    async def draw() -> np.ndarray:
        async with AsyncClient(service.url) as client:
            return await client.sample(n=4, seed=1)

    images = asyncio.run(draw())
    assert images.shape == (4, 1, 28, 28)
    np.testing.assert_allclose(images, vae.sample(n=4, seed=1), atol=1e-6)


def test_encode_then_decode_round_trips_shapes(
    vae: Client, heldout_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images = heldout_digits[0][:5]  # uint8 [5, 28, 28]: one channel, as the service takes it
    encoded = vae.encode(images)
    assert encoded.mu.shape == (5, 32) and encoded.sigma is not None
    assert encoded.sigma.shape == (5, 32) and (encoded.sigma > 0).all()
    assert encoded.model == "mnist" and encoded.version >= 1
    decoded = vae.decode(encoded.mu)
    assert decoded.shape == (5, 1, 28, 28) and decoded.dtype == np.float32
    # the reconstructions look like the digits they came from
    error = np.abs(decoded[:, 0] - images / 255.0).mean()
    assert error < 0.15, error


def test_encode_with_samples_returns_seeded_draws(
    vae: Client, heldout_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images = heldout_digits[0][:2].astype(np.float32) / 255.0
    encoded = vae.encode(images, samples=3, seed=7)
    assert encoded.z is not None and encoded.z.shape == (2, 3, 32)
    again = vae.encode(images, samples=3, seed=7)
    assert again.z is not None
    np.testing.assert_allclose(encoded.z, again.z, atol=1e-6)
    np.testing.assert_allclose(encoded.mu, vae.encode(images).mu, atol=1e-5)


def test_async_encode_and_decode_round_trip(
    service: ServiceProcess, heldout_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    async def round_trip() -> np.ndarray:
        async with AsyncClient(service.url) as client:
            encoded = await client.encode(heldout_digits[0][:3])
            return await client.decode(encoded.mu)

    assert asyncio.run(round_trip()).shape == (3, 1, 28, 28)


def test_interpolate_between_two_images_gives_a_decoded_path(
    vae: Client, heldout_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    first, second = heldout_digits[0][0], heldout_digits[0][1]
    path = vae.interpolate(first, second, steps=5, method="lerp")
    assert path.latents.shape == (5, 32) and path.images.shape == (5, 1, 28, 28)
    # lerp: evenly spaced points on the segment between the two means
    steps = np.diff(path.latents, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-4)


def test_interpolate_between_latents(vae: Client) -> None:
    path = vae.interpolate(np.zeros(32), np.ones(32), steps=3, method="lerp")
    np.testing.assert_allclose(path.latents[1], np.full(32, 0.5), atol=1e-6)


def test_models_lists_the_shipped_model(vae: Client) -> None:
    listing = vae.models()
    assert listing["default"] == "mnist"
    assert "mnist" in [entry["name"] for entry in listing["models"]]
    mnist = vae.model("mnist")
    assert mnist["versions"][0]["manifest"]["latent_dim"] == 32


def test_a_bad_request_raises_bad_request_with_the_service_message(vae: Client) -> None:
    with pytest.raises(BadRequest) as caught:
        vae.decode(np.zeros((2, 5), dtype=np.float32))  # the model's latents have 32 numbers
    assert caught.value.status == 422
    assert "32 numbers" in caught.value.message
    assert caught.value.error == "invalid_latent"


def test_an_unknown_model_raises_not_found_with_the_service_message(vae: Client) -> None:
    with pytest.raises(NotFound) as caught:
        vae.sample(n=1, model="no-such-model")
    assert caught.value.status == 404
    assert "no-such-model" in caught.value.message
    with pytest.raises(NotFound):
        vae.model("no-such-model")


def test_async_errors_are_typed_too(service: ServiceProcess) -> None:
    async def unknown() -> None:
        async with AsyncClient(service.url) as client:
            await client.encode(np.zeros((1, 1, 28, 28), np.float32), model="no-such-model")

    with pytest.raises(NotFound, match="no-such-model"):
        asyncio.run(unknown())


# -- admin: datasets and jobs ---------------------------------------------------------------


def admin_env(models_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The settings of a service with an admin token and a model repository of its own (jobs
    publish there), holding a copy of the shipped mnist."""
    repo = tmp_path / "models"
    shutil.copytree(models_dir / "mnist", repo / "mnist")
    env = {"VAE_MODELS_DIR": str(repo), "VAE_DATA_DIR": str(tmp_path / "data")}
    return {**env, "VAE_ADMIN_TOKEN": TOKEN, **extra}


@pytest.fixture
def admin_service(models_dir: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    """A service with an admin token and a model repository of its own (jobs publish there)."""
    with running_service(admin_env(models_dir, tmp_path), tmp_path) as process:
        yield process


@pytest.fixture
def dataset_file(tmp_path: Path) -> Path:
    images, labels = digits(n=48, size=8)
    path = tmp_path / "tiny.npz"
    path.write_bytes(npz_bytes(images=images, labels=labels))
    return path


@pytest.mark.slow
def test_admin_uploads_a_dataset_trains_it_and_serves_the_new_model(
    admin_service: ServiceProcess, dataset_file: Path
) -> None:
    with Client(admin_service.url) as anonymous:
        with pytest.raises(Unauthorized) as caught:
            anonymous.upload_dataset("tiny", dataset_file)
        assert caught.value.status == 401 and "admin token" in caught.value.message

    with Client(admin_service.url, token=TOKEN) as admin:
        manifest = admin.upload_dataset("tiny", dataset_file)
        assert manifest["count"] == 48
        with pytest.raises(BadRequest) as taken:
            admin.upload_dataset("tiny", dataset_file)
        assert taken.value.status == 409

        job = admin.start_job("tiny", "tiny", TINY_JOB)
        assert job.status in {"queued", "running"} and job.dataset == "tiny"
        seen: list[Job] = list(admin.follow(job.id, interval=0.2))
        assert seen[-1].done and all(not snapshot.done for snapshot in seen[:-1])
        finished = admin.wait(job.id, timeout=240)
        assert finished.status == "succeeded", finished.error
        assert finished.result is not None and finished.result["model"] == "tiny"

        images = admin.sample(n=3, seed=0, model="tiny")
        assert images.shape == (3, 1, 8, 8)


def test_wait_returns_once_the_server_answers_with_the_new_default(
    models_dir: Path, tmp_path: Path, dataset_file: Path
) -> None:
    # The server sees a new default up to 8 s after the job moved it.
    env = admin_env(models_dir, tmp_path, VAE_RELOAD_INTERVAL_S="8")
    with running_service(env, tmp_path) as service, Client(service.url, token=TOKEN) as admin:
        admin.upload_dataset("tiny", dataset_file)
        assert admin.wait(admin.start_job("tiny", "tiny", TINY_JOB).id, timeout=240).status
        second = admin.wait(admin.start_job("tiny", "tiny", TINY_JOB).id, timeout=240)
        assert second.make_default and second.result is not None
        assert second.result["version"] == 2
        answered = [
            httpx.post(f"{service.url}/sample", json={"n": 1, "model": "tiny"}).json()["version"]
            for _ in range(20)
        ]
        assert answered == [2] * 20


def test_async_admin_upload_and_job_snapshots(
    admin_service: ServiceProcess, dataset_file: Path
) -> None:
    async def upload_and_start() -> tuple[dict[str, object], Job, Job]:
        async with AsyncClient(admin_service.url, token=TOKEN) as admin:
            manifest = await admin.upload_dataset("tiny-async", dataset_file)
            job = await admin.start_job("tiny-async", "tiny-async", {**TINY_JOB, "epochs": 1000})
            first = await anext(admin.follow(job.id, interval=0.2))
            await admin.cancel_job(job.id)
            return manifest, job, first

    manifest, job, first = asyncio.run(upload_and_start())
    assert manifest["count"] == 48
    assert first.id == job.id and first.status in {"queued", "running", "cancelled"}


# -- a full batch queue -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tight_queue(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A service whose decoder queue takes one request of 4 samples at a time, and holds each
    batch for 50 ms before running it: concurrent sample requests overflow it (429)."""
    tmp_path = tmp_path_factory.mktemp("tight-queue")
    env = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(tmp_path / "data"),
        "VAE_MAX_QUEUE": "4",
        "VAE_MAX_ITEMS": "4",
        "VAE_MAX_DELAY_MS": "50",
        "VAE_DISPATCH_WHEN_IDLE": "false",
    }
    with running_service(env, tmp_path) as process:
        yield process


def queue_full_rejections(service: ServiceProcess) -> float:
    """vae_rejections_total{reason="queue_full"} summed over graphs."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vae_rejections_total{") and 'reason="queue_full"' in line
    )


def concurrently(calls: int, call: Callable[[], np.ndarray]) -> tuple[int, list[BaseException]]:
    """Runs `call` on `calls` threads released together: (successes, errors)."""
    start = threading.Barrier(calls)
    done: list[np.ndarray] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        start.wait()
        try:
            result = call()
        except BaseException as error:
            with lock:
                errors.append(error)
        else:
            with lock:
                done.append(result)

    threads = [threading.Thread(target=run) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return len(done), errors


def test_a_full_queue_raises_rate_limited_without_retries(tight_queue: ServiceProcess) -> None:
    with Client(tight_queue.url, retry=None) as client:
        succeeded, errors = concurrently(6, lambda: client.sample(n=4, seed=3))
    assert errors, "six concurrent requests for 4 samples each should overflow a queue of 4"
    assert all(isinstance(error, RateLimited) for error in errors), errors
    limited = errors[0]
    assert isinstance(limited, RateLimited)
    assert limited.status == 429 and limited.retry_after is not None and limited.retry_after >= 1
    assert limited.error == "queue_full" and limited.message
    assert succeeded >= 1


def test_a_429_under_a_full_queue_is_retried_and_succeeds_when_the_queue_drains(
    tight_queue: ServiceProcess,
) -> None:
    before = queue_full_rejections(tight_queue)
    patient = RetryPolicy(max_attempts=20, max_wait=60.0, jitter=1.0)
    with Client(tight_queue.url, retry=patient) as client:
        succeeded, errors = concurrently(6, lambda: client.sample(n=4, seed=3))
    assert errors == [] and succeeded == 6
    assert queue_full_rejections(tight_queue) > before  # the queue did overflow: retries ran


def test_the_async_client_retries_a_full_queue_too(tight_queue: ServiceProcess) -> None:
    async def burst() -> list[np.ndarray]:
        patient = RetryPolicy(max_attempts=20, max_wait=60.0, jitter=1.0)
        async with AsyncClient(tight_queue.url, retry=patient) as client:
            return await asyncio.gather(*(client.sample(n=4, seed=i) for i in range(6)))

    before = queue_full_rejections(tight_queue)
    assert [images.shape for images in asyncio.run(burst())] == [(4, 1, 28, 28)] * 6
    assert queue_full_rejections(tight_queue) > before

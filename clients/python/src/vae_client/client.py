"""`Client`: the blocking client, driving the shared protocol with httpx.Client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import numpy as np

from vae_client._core import Call, EndpointLike, Operation, Protocol, Sleep, Stream, file_chunks
from vae_client.retry import RetryPolicy
from vae_client.types import Encoded, FloatArray, Interpolation, Job

T = TypeVar("T")

DEFAULT_RETRY = RetryPolicy()


class Client:
    """A blocking client of one vae-service.

    `token` is the admin token, sent as `Authorization: Bearer` on admin calls (uploads, jobs).
    `retry` says how 429 and 503 answers are retried (None: never). `timeout` is httpx's, in
    seconds. `transport` and `headers` go to the underlying httpx.Client.
    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._protocol = Protocol(token, retry)
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, transport=transport, headers=headers
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    # -- inference ---------------------------------------------------------------------------

    def sample(
        self,
        n: int = 8,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        model: str | None = None,
    ) -> FloatArray:
        """`n` images drawn from the prior N(0, temperature^2 I) and decoded: float32
        [n, C, H, W] in [0, 1]. The same `seed` gives the same images. `model` is `name` or
        `name:version` (the service's default when None)."""
        return self._run(self._protocol.sample(n, temperature, seed, model))

    def encode(
        self,
        images: np.ndarray,
        *,
        model: str | None = None,
        samples: int = 0,
        seed: int | None = None,
    ) -> Encoded:
        """Posteriors of a batch of images [N, C, H, W] ([N, H, W] for one channel; floats in
        [0, 1] or uint8). Sent as .npy; with `samples` > 0 also that many draws z ~ q(z|x) per
        image (`seed` makes them reproducible), sent as JSON."""
        return self._run(self._protocol.encode(images, model, samples, seed))

    def decode(self, latents: np.ndarray, *, model: str | None = None) -> FloatArray:
        """Latent vectors [N, D] (or one [D]) -> images float32 [N, C, H, W], as .npy both
        ways. A VQ-VAE also takes integer code grids [N, h, w]."""
        return self._run(self._protocol.decode(latents, model))

    def interpolate(
        self,
        start: EndpointLike,
        end: EndpointLike,
        *,
        steps: int = 8,
        method: str = "slerp",
        model: str | None = None,
    ) -> Interpolation:
        """A path of `steps` points from `start` to `end`, decoded. Each end is a latent (a 1-D
        array), an image array ([C, H, W] or [H, W]; an image is encoded to its mean) or the
        bytes of a PNG/JPEG. `method` is `lerp` or `slerp`."""
        return self._run(self._protocol.interpolate(start, end, steps, method, model))

    # -- models --------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        """Every model with its versions and manifests, and the default model's name."""
        return self._run(self._protocol.models())

    def model(self, name: str) -> dict[str, Any]:
        """One model: its versions, manifests, metrics and the execution provider in use."""
        return self._run(self._protocol.model(name))

    # -- datasets (admin) ----------------------------------------------------------------------

    def upload_dataset(
        self,
        name: str,
        path: str | Path,
        *,
        resize: tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> dict[str, Any]:
        """Uploads the file at `path` as dataset `name`, streamed (admin); returns its
        manifest. A zip of images (resized to `resize` (width, height) and converted to
        `channels`), .npz, .npy or MNIST IDX files. Names are write-once."""
        return self._run(self._protocol.upload_dataset(name, Path(path), resize, channels))

    def dataset(self, name: str) -> dict[str, Any]:
        """A stored dataset's manifest."""
        return self._run(self._protocol.dataset(name))

    def delete_dataset(self, name: str) -> None:
        """Deletes a stored dataset (admin)."""
        self._run(self._protocol.delete_dataset(name))

    # -- jobs ----------------------------------------------------------------------------------

    def start_job(
        self,
        dataset: str,
        name: str,
        config: dict[str, Any] | None = None,
        *,
        make_default: bool = True,
    ) -> Job:
        """Queues training of model `name` on `dataset` with `config` (admin); every config
        field has a default on the service."""
        return self._run(self._protocol.start_job(dataset, name, config, make_default))

    def job(self, job_id: str) -> Job:
        """The job's current snapshot."""
        return self._run(self._protocol.job(job_id))

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        return self._run(self._protocol.jobs())

    def cancel_job(self, job_id: str) -> Job:
        """Cancels a queued job or stops a running one (admin)."""
        return self._run(self._protocol.cancel_job(job_id))

    def follow(self, job_id: str, *, interval: float = 0.5) -> Iterator[Job]:
        """The job's snapshots as they change, polled every `interval` seconds, until it
        ends (the last one yielded is final)."""
        return self._iterate(self._protocol.follow(job_id, interval))

    def wait(self, job_id: str, *, timeout: float = 600.0, interval: float = 0.5) -> Job:
        """Blocks until the job has succeeded and returns it; raises JobFailed if it failed or
        was cancelled, WaitTimeout after `timeout` seconds."""
        return self._run(self._protocol.wait(job_id, timeout, interval))

    # -- driving the protocol ------------------------------------------------------------------

    def _send(self, call: Call) -> httpx.Response:
        content = file_chunks(call.upload) if call.upload is not None else call.content
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params,
            headers=call.headers,
            json=call.json,
            content=content,
        )
        return self._http.send(request)

    def _run(self, operation: Operation[T]) -> T:
        reply: httpx.Response | None = None
        try:
            while True:
                step = operation.send(reply)
                reply = None
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    reply = self._send(step)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            operation.close()

    def _iterate(self, stream: Stream) -> Iterator[Job]:
        reply: httpx.Response | None = None
        try:
            while True:
                try:
                    step = stream.send(reply)
                except StopIteration:
                    return
                reply = None
                if isinstance(step, Job):
                    yield step
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    reply = self._send(step)
        finally:
            stream.close()

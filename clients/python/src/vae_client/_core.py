"""The one protocol both clients speak, with no I/O of its own.

Every operation is a generator: it yields a `Call` (the driver sends it and sends the response
back in) or a `Sleep` (the driver waits), and returns the parsed result. Streams (`follow`) also
yield the `Job` snapshots they produce. `Client` drives these generators (through an `Exchange`)
with httpx.Client and time.sleep, `AsyncClient` with httpx.AsyncClient and asyncio.sleep, so
request building, response parsing, errors and retries exist once; and the operations'
signatures and docstrings are the clients' methods' (`_base.py`), so those exist once too.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from vae_client._video import (
    MP4,
    VideoLike,
    clip_means,
    decode_params,
    is_batch,
    raw_frames,
    video_file_type,
    video_frames,
    video_latents,
)
from vae_client.errors import JobFailed, WaitTimeout, error_for
from vae_client.retry import RetryPolicy
from vae_client.types import Encoded, FloatArray, Interpolation, Job, Latent

NPY = "application/x-npy"
RAW = "application/octet-stream"
RAW_DTYPES = ("float32", "float16", "bfloat16")
UPLOAD_CHUNK = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One HTTP request to send. `upload` is a file the driver streams as the body."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    upload: Path | None = None
    # the statuses this call may be sent again after (None: the retry policy's); a call whose
    # side effect may have happened before a 503 narrows them to what comes before the handler
    retry_on: frozenset[int] | None = None
    # a successful answer comes back unread, for the caller to read as it streams in (an error
    # is read whole before it is handed back, as every other answer is)
    stream: bool = False


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds before going on."""

    seconds: float


Step = Call | Sleep
Operation = Generator[Step, httpx.Response | None, T]
Stream = Generator[Step | Job, httpx.Response | None, None]

Y = TypeVar("Y", Step, Step | Job)


class Exchange(Generic[Y, T]):
    """An operation (or a stream) being driven. Iterating it gives the steps to do (and a
    stream's jobs); the driver sets `reply` to each Call's response. Once the iteration has
    ended, `result` is the operation's value."""

    result: T

    def __init__(self, steps: Generator[Y, httpx.Response | None, T]) -> None:
        self._steps: Generator[Y, httpx.Response | None, T] = steps
        self.reply: httpx.Response | None = None

    def __iter__(self) -> Iterator[Y]:
        try:
            while True:
                reply, self.reply = self.reply, None
                try:
                    step = self._steps.send(reply)
                except StopIteration as done:
                    self.result = done.value
                    return
                yield step
        finally:
            self._steps.close()


# What an interpolation endpoint may be: a latent vector (1-D), an image array ([C,H,W],
# [H,W] or [H,W,C]) or the bytes of a PNG/JPEG file.
EndpointLike = np.ndarray | list[Any] | bytes | Latent


def to_npy(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def to_raw(array: np.ndarray, dtype: str) -> bytes:
    """An array as raw bytes of `dtype` (float32, float16, or bfloat16: the top half of a
    float32's bits, rounded to nearest even), in this machine's byte order, as the service
    reads them."""
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(array, np.float32).view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return rounded.astype(np.uint16).tobytes()
    if dtype not in RAW_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(RAW_DTYPES)}, got {dtype!r}")
    return np.ascontiguousarray(array, dtype).tobytes()


def from_raw(body: bytes, shape: list[int], dtype: str) -> FloatArray:
    """Raw bytes of `dtype` with `shape` (the service's `shape` and `dtype` headers) as a
    float32 array."""
    if dtype == "bfloat16":
        bits = np.frombuffer(body, np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(body, dtype).astype(np.float32).reshape(shape)


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, 1 MiB at a time (an upload never holds the whole file)."""
    with path.open("rb") as file:
        while chunk := file.read(UPLOAD_CHUNK):
            yield chunk


def from_npy(body: bytes) -> np.ndarray:
    """A .npy body as an array (pickles refused)."""
    array: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
    return array


def _float_images(images: np.ndarray) -> np.ndarray:
    """A batch of images [N,C,H,W] ([N,H,W]: one channel) as the service takes it."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W] or [N, H, W], got shape {array.shape}")
    if array.dtype != np.uint8:
        array = array.astype(np.float32, copy=False)
    return array


def _json_image(image: np.ndarray) -> Any:
    """One image as nested lists of floats in [0, 1] (uint8 scaled)."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255.0)
    return array.astype(np.float32).tolist()


def _endpoint(value: EndpointLike) -> dict[str, Any]:
    if isinstance(value, bytes | bytearray):
        return {"image": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Latent):
        return {"latent": np.asarray(value.array, dtype=np.float32).tolist()}
    array = np.asarray(value)
    if array.ndim == 1:
        return {"latent": array.astype(np.float32).tolist()}
    return {"array": _json_image(array)}


def _model_params(model: str | None) -> dict[str, str]:
    return {} if model is None else {"model": model}


def _with_model(
    body: dict[str, Any], model: str | None, label: int | None = None
) -> dict[str, Any]:
    body = body if model is None else {**body, "model": model}
    return body if label is None else {**body, "label": label}


def _query(model: str | None, label: int | None) -> dict[str, str]:
    """The query of a .npy call: the model, and the class of a conditional one."""
    return {**_model_params(model), **({} if label is None else {"label": str(label)})}


class Protocol:
    """The operations of the vae-service API as generators (see the module docstring)."""

    def __init__(self, token: str | None, retry: RetryPolicy | None) -> None:
        self.retry = retry or RetryPolicy.never()
        self._admin = {"Authorization": f"Bearer {token}"} if token else {}

    # -- sending, with retries -------------------------------------------------------------

    def send(self, call: Call) -> Operation[httpx.Response]:
        """Sends `call` until it is answered with a success or an error not worth retrying;
        raises that error."""
        waited = 0.0
        attempt = 1
        while True:
            response = yield call
            assert response is not None
            if response.is_success:
                return response
            wait = self.retry.delay(response, attempt, waited, call.retry_on)
            if wait is None:
                raise error_for(response)
            yield Sleep(wait)
            waited += wait
            attempt += 1

    def json(self, call: Call) -> Operation[Any]:
        """Sends `call` and returns its JSON answer."""
        response = yield from self.send(call)
        return response.json()

    # -- inference ---------------------------------------------------------------------------

    def sample(
        self,
        n: int = 8,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        model: str | None = None,
        label: int | None = None,
    ) -> Operation[FloatArray]:
        """`n` images drawn from the prior N(0, temperature^2 I) and decoded: float32
        [n, C, H, W] in [0, 1]. The same `seed` gives the same images. `model` is `name` or
        `name:version` (the service's default when None); `label` is the class a conditional
        model draws (its manifest lists them)."""
        body: dict[str, Any] = {"n": n, "temperature": temperature, "format": "array"}
        if seed is not None:
            body["seed"] = seed
        call = Call("POST", "/sample", json=_with_model(body, model, label))
        data = yield from self.json(call)
        return np.asarray(data["arrays"], dtype=np.float32)

    def encode(
        self,
        images: np.ndarray,
        *,
        model: str | None = None,
        samples: int = 0,
        seed: int | None = None,
        label: int | None = None,
        dtype: str | None = None,
    ) -> Operation[Encoded]:
        """Posteriors of a batch of images [N, C, H, W] ([N, H, W] for one channel; floats in
        [0, 1] or uint8). Sent as .npy; with `samples` > 0 also that many draws z ~ q(z|x) per
        image (`seed` makes them reproducible), sent as JSON. A spatial model (an imported
        Stable Diffusion autoencoder) gives its latent means [N, C, h, w] as `mu`, unscaled
        (times the manifest's `scaling_factor` for a diffusion pipeline), and no `sigma`; with
        `dtype` (`float32`, `float16` or `bfloat16`) they come as raw bytes of that type (half
        the bytes in 16 bits), returned as float32. `label` is the images' class, for a
        conditional model."""
        batch = _float_images(images)
        if dtype is not None and not samples:
            raw = Call(
                "POST",
                "/encode",
                params={**_query(model, label), "dtype": dtype},
                headers={"Content-Type": NPY, "Accept": RAW},
                content=to_npy(batch),
            )
            answer = yield from self.send(raw)
            shape = json.loads(answer.headers.get("shape", "[]"))
            means = from_raw(answer.content, shape, answer.headers.get("dtype", dtype))
            name, version = _model_headers(answer)
            return Encoded(mu=means, sigma=None, z=None, model=name, version=version)
        if samples:  # draws come only in the JSON answer
            body: dict[str, Any] = {"arrays": [_json_image(image) for image in batch]}
            body["samples"] = samples
            if seed is not None:
                body["seed"] = seed
            call = Call("POST", "/encode", json=_with_model(body, model, label))
            data = yield from self.json(call)
            return _encoded(data)
        call = Call(
            "POST",
            "/encode",
            params=_query(model, label),
            headers={"Content-Type": NPY, "Accept": NPY},
            content=to_npy(batch),
        )
        response = yield from self.send(call)
        array = from_npy(response.content).astype(np.float32, copy=False)
        name, version = _model_headers(response)
        if array.ndim in (2, 4):  # a vqvae's z_e [N, D]; a spatial model's means [N, C, h, w]
            return Encoded(mu=array, sigma=None, z=None, model=name, version=version)
        return Encoded(mu=array[:, 0], sigma=array[:, 1], z=None, model=name, version=version)

    def decode(
        self,
        latents: np.ndarray,
        *,
        model: str | None = None,
        label: int | None = None,
        dtype: str | None = None,
    ) -> Operation[FloatArray]:
        """Latent vectors [N, D] (or one [D]) -> images float32 [N, C, H, W], as .npy both
        ways. A VQ-VAE also takes integer code grids [N, h, w], a spatial model latent grids
        [N, C, h, w] (sent as raw bytes of `dtype`, `float32`, `float16` or `bfloat16`, when
        given); a conditional model the class to draw, `label`."""
        array = _latents(latents)
        params = {**_query(model, label), "format": "npy"}
        headers = {"Content-Type": NPY, "Accept": NPY}
        if dtype is not None:
            params |= {"shape": ",".join(map(str, array.shape)), "dtype": dtype}
            headers["Content-Type"] = RAW
        body = to_npy(array) if dtype is None else to_raw(array, dtype)
        call = Call("POST", "/decode", params=params, headers=headers, content=body)
        response = yield from self.send(call)
        return from_npy(response.content).astype(np.float32, copy=False)

    def decode_images(
        self,
        latents: np.ndarray,
        *,
        format: str = "png",
        model: str | None = None,
        label: int | None = None,
    ) -> Operation[list[bytes]]:
        """Latents -> the image files themselves, one per row of `latents`: `format` is `png`,
        or `jpeg` for a spatial model (whose latent grids [N, C, h, w] give images of their own
        size). The latents go as .npy, as `decode` sends them."""
        call = Call(
            "POST",
            "/decode",
            params={**_query(model, label), "format": format},
            headers={"Content-Type": NPY, "Accept": "application/json"},
            content=to_npy(_latents(latents)),
        )
        data = yield from self.json(call)
        return [base64.b64decode(image) for image in data["images"]]

    def encode_images(
        self,
        files: Sequence[bytes],
        *,
        model: str | None = None,
        samples: int = 0,
        seed: int | None = None,
        label: int | None = None,
    ) -> Operation[Encoded]:
        """Posteriors of image files (the bytes of PNGs or JPEGs, all of one size; a spatial
        model takes any size it allows), sent as base64 JSON. `mu` [N, D] (a spatial model's
        [N, C, h, w]); `sigma` where the model gives one; `z` [N, samples, D] when `samples`
        draws are asked for (`seed` makes them reproducible)."""
        body: dict[str, Any] = {
            "images": [base64.b64encode(file).decode("ascii") for file in files]
        }
        if samples:
            body["samples"] = samples
        if seed is not None:
            body["seed"] = seed
        data = yield from self.json(Call("POST", "/encode", json=_with_model(body, model, label)))
        return _encoded(data)

    def decode_video(
        self,
        latents: np.ndarray,
        *,
        model: str | None = None,
        fps: float | None = None,
        normalized: bool = False,
        format: str = "mp4",
    ) -> Operation[bytes | np.ndarray]:
        """A video model's latents -> its clip. `latents` are one clip's [C, T, h, w] (a batch:
        [N, C, T, h, w]), sent as .npy; a clip has (T - 1) * temporal_downscale + 1 frames
        (the manifest's `video`). `normalized`: the latents are a diffusion pipeline's
        (normalised and scaled), and the service undoes that first. `format`:

        - `mp4`: the bytes of an H.264 mp4 at `fps` frames a second (the model's when None);
          one clip only.
        - `npy`: float32 frames in [0, 1], [F, C, H, W] (a batch: [N, F, C, H, W]).
        - `raw`: uint8 frames [F, H, W, C] (a batch: [N, F, H, W, C]).

        A long clip's mp4 is better read with `stream_video`, as it is decoded."""
        params = decode_params(model, format, fps, normalized)
        accept = {"mp4": MP4, "npy": NPY, "raw": RAW}[format]
        call = Call(
            "POST",
            "/decode",
            params=params,
            headers={"Content-Type": NPY, "Accept": accept},
            content=to_npy(video_latents(latents)),
        )
        response = yield from self.send(call)
        if format == "mp4":
            return response.content
        if format == "raw":
            return raw_frames(response.content, response.headers)
        return from_npy(response.content).astype(np.float32, copy=False)

    def stream_video(
        self,
        latents: np.ndarray,
        *,
        model: str | None = None,
        fps: float | None = None,
        normalized: bool = False,
    ) -> Operation[httpx.Response]:
        """One clip's latents [C, T, h, w] -> its mp4 (fragmented H.264), as an iterator of
        byte chunks that come as the service decodes the clip's time chunks: the first bytes
        arrive long before the last frame is decoded, and a long clip is never held whole.
        The request is sent at the first iteration (its errors raise there); write the chunks
        to a file in order and it plays. Arguments as `decode_video`'s."""
        call = Call(
            "POST",
            "/decode",
            params=decode_params(model, "mp4", fps, normalized),
            headers={"Content-Type": NPY, "Accept": MP4},
            content=to_npy(video_latents(latents)),
            stream=True,
        )
        response = yield from self.send(call)
        return response

    def encode_video(
        self,
        video: VideoLike,
        *,
        model: str | None = None,
        normalized: bool = False,
    ) -> Operation[np.ndarray]:
        """A clip -> a video model's latent means, float32 [C, T, h, w] ([N, C, T, h, w] for
        a batch of clips). `video` is the bytes of a video file (an mp4), the path of one
        (streamed from disk), or frames: uint8 [F, H, W, C], or floats in [0, 1] [F, C, H, W]
        or a batch [N, F, C, H, W] (sent as .npy). A clip has F = (T - 1) *
        temporal_downscale + 1 frames (the manifest's `video`). `normalized`: the latents come
        as a diffusion pipeline takes them (normalised and scaled)."""
        params = {**_model_params(model), **({"normalized": "true"} if normalized else {})}
        headers = {"Accept": NPY}
        if isinstance(video, str | Path):
            path = Path(video)
            headers |= {
                "Content-Type": video_file_type(path),
                "Content-Length": str(path.stat().st_size),
            }
            call = Call("POST", "/encode", params=params, headers=headers, upload=path)
        elif isinstance(video, bytes | bytearray):
            headers["Content-Type"] = MP4
            call = Call("POST", "/encode", params=params, headers=headers, content=bytes(video))
        else:
            headers["Content-Type"] = NPY
            body = to_npy(video_frames(video))
            call = Call("POST", "/encode", params=params, headers=headers, content=body)
        response = yield from self.send(call)
        return clip_means(from_npy(response.content), is_batch(video))

    def interpolate(
        self,
        start: EndpointLike,
        end: EndpointLike,
        *,
        steps: int = 8,
        method: str = "slerp",
        model: str | None = None,
        label: int | None = None,
    ) -> Operation[Interpolation]:
        """A path of `steps` points from `start` to `end`, decoded. Each end is a latent (a 1-D
        array, or any shape wrapped in `Latent`: a spatial model's [C, h, w]), an image array
        ([C, H, W] or [H, W]; an image is encoded to its mean) or the bytes of a PNG/JPEG.
        `method` is `lerp` or `slerp`; `label` the class, for a conditional model."""
        body = {
            "start": _endpoint(start),
            "end": _endpoint(end),
            "steps": steps,
            "method": method,
            "format": "array",
        }
        call = Call("POST", "/interpolate", json=_with_model(body, model, label))
        data = yield from self.json(call)
        return Interpolation(
            latents=np.asarray(data["latents"], dtype=np.float32),
            images=np.asarray(data["arrays"], dtype=np.float32),
            model=str(data["model"]),
            version=int(data["version"]),
        )

    # -- models --------------------------------------------------------------------------------

    def models(self) -> Operation[dict[str, Any]]:
        """Every model with its versions and manifests, and the default model's name."""
        data = yield from self.json(Call("GET", "/models"))
        return dict(data)

    def model(self, name: str) -> Operation[dict[str, Any]]:
        """One model: its versions, manifests, metrics and the execution provider in use."""
        data = yield from self.json(Call("GET", f"/models/{_segment(name)}"))
        return dict(data)

    def set_default(self, name: str, version: int) -> Operation[dict[str, Any]]:
        """Makes `version` the one that answers for model `name` (admin). The server loads it
        first: a version that cannot load is refused (409) and the default stays. Returns the
        model as `model` describes it."""
        path = f"/models/{_segment(name)}/default"
        call = Call("POST", path, headers=self._admin, json={"version": version})
        data = yield from self.json(call)
        return dict(data)

    def delete_version(self, name: str, version: int) -> Operation[None]:
        """Deletes a version of model `name` (admin). The default version cannot go while others
        exist (409: `set_default` another one first); the last one takes the model with it."""
        # only a 429 (the rate limiter, before the route) is retried: after a 503 the version
        # may be gone already, and the retry would say 404
        path = f"/models/{_segment(name)}/versions/{version}"
        yield from self.send(Call("DELETE", path, headers=self._admin, retry_on=frozenset({429})))

    # -- datasets (admin) ------------------------------------------------------------------

    def datasets(self) -> Operation[list[dict[str, Any]]]:
        """Every stored dataset's manifest (name, format, count, shape, labels, sha256, ...)."""
        data = yield from self.json(Call("GET", "/datasets"))
        return [dict(manifest) for manifest in data["datasets"]]

    def upload_dataset(
        self,
        name: str,
        path: str | Path,
        *,
        resize: tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> Operation[dict[str, Any]]:
        """Uploads the file at `path` as dataset `name`, streamed (admin); returns its
        manifest. A zip of images (resized to `resize` (width, height) and converted to
        `channels`), .npz, .npy or MNIST IDX files. Names are write-once."""
        path = Path(path)
        params: dict[str, str] = {}
        if resize is not None:
            params["resize"] = f"{resize[0]}x{resize[1]}"
        if channels is not None:
            params["channels"] = str(channels)
        headers = {
            **self._admin,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(path.stat().st_size),
        }
        call = Call("PUT", f"/datasets/{_segment(name)}", params, headers, upload=path)
        data = yield from self.json(call)
        return dict(data)

    def dataset(self, name: str) -> Operation[dict[str, Any]]:
        """A stored dataset's manifest."""
        data = yield from self.json(Call("GET", f"/datasets/{_segment(name)}"))
        return dict(data)

    def delete_dataset(self, name: str) -> Operation[None]:
        """Deletes a stored dataset (admin)."""
        yield from self.send(Call("DELETE", f"/datasets/{_segment(name)}", headers=self._admin))

    # -- jobs ----------------------------------------------------------------------------------

    def start_job(
        self,
        dataset: str,
        name: str,
        config: dict[str, Any] | None = None,
        *,
        make_default: bool = True,
    ) -> Operation[Job]:
        """Queues training of model `name` on `dataset` with `config` (admin); every config
        field has a default on the service."""
        body = {
            "dataset": dataset,
            "name": name,
            "config": config or {},
            "make_default": make_default,
        }
        # only a 429 (the rate limiter, before the route) is retried: after a 503 the job may
        # be queued already, and sending it again would train it twice
        call = Call("POST", "/jobs", headers=self._admin, json=body, retry_on=frozenset({429}))
        data = yield from self.json(call)
        return Job.from_json(data)

    def job(self, job_id: str) -> Operation[Job]:
        """The job's current snapshot."""
        data = yield from self.json(Call("GET", f"/jobs/{_segment(job_id)}"))
        return Job.from_json(data)

    def jobs(self) -> Operation[list[Job]]:
        """Every job, newest first."""
        data = yield from self.json(Call("GET", "/jobs"))
        return [Job.from_json(entry) for entry in data]

    def cancel_job(self, job_id: str) -> Operation[Job]:
        """Cancels a queued job or stops a running one (admin)."""
        call = Call("POST", f"/jobs/{_segment(job_id)}/cancel", headers=self._admin)
        data = yield from self.json(call)
        return Job.from_json(data)

    def follow(self, job_id: str, *, interval: float = 0.5) -> Stream:
        """The job's snapshots as they change, polled every `interval` seconds, until it
        ends (the last one yielded is final)."""
        last: Job | None = None
        while True:
            job = yield from self.job(job_id)
            if job != last:
                yield job
                last = job
            if job.done:
                return
            yield Sleep(interval)

    def wait(self, job_id: str, *, timeout: float = 600.0, interval: float = 0.5) -> Operation[Job]:
        """Waits until the job has succeeded and, for a job that makes its version the default,
        until this server answers with that version (a replica loads a new version at its next
        look at the repository); returns the job. Raises JobFailed if it failed or was
        cancelled, WaitTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = yield from self.job(job_id)
            if job.done:
                if job.status != "succeeded":
                    raise JobFailed(job)
                yield from self._until_served(job, deadline, timeout, interval)
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(job, timeout)
            yield Sleep(min(interval, left))

    def _until_served(
        self, job: Job, deadline: float, timeout: float, interval: float
    ) -> Operation[None]:
        """Until the server's default version of the job's model is the job's (or newer), when
        the job moved the default; at once otherwise."""
        result = job.result or {}
        version = result.get("version")
        if not job.make_default or result.get("default_error") or not isinstance(version, int):
            return
        while True:
            model = yield from self.model(str(result.get("model", job.name)))
            if int(model.get("default_version") or 0) >= version:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(job, timeout, f"succeeded, but version {version} is not served")
            yield Sleep(min(interval, left))


def _latents(latents: np.ndarray) -> np.ndarray:
    """Latents as `/decode` takes them: a batch (one vector [D] becomes [1, D]), floats as
    float32 (a VQ-VAE's integer code grids stay integers)."""
    array = np.asarray(latents)
    if array.ndim == 1:
        array = array[None]
    if array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    return array


def _encoded(data: dict[str, Any]) -> Encoded:
    """An `Encoded` from `/encode`'s JSON answer; `sigma` and `z` None where the model gives none
    (a VQ-VAE's `mu` is its z_e)."""
    entries = data["latents"]

    def stacked(key: str) -> FloatArray | None:
        values = [entry.get(key) for entry in entries]
        if not values or any(value is None for value in values):
            return None
        return np.asarray(values, dtype=np.float32)

    mu = stacked("mu")
    return Encoded(
        mu=mu if mu is not None else np.asarray([e.get("z_e") for e in entries], np.float32),
        sigma=stacked("sigma"),
        z=stacked("z"),
        model=str(data["model"]),
        version=int(data["version"]),
    )


def _segment(value: str) -> str:
    """A path segment, percent-encoded."""
    return quote(value, safe=":")


def _model_headers(response: httpx.Response) -> tuple[str, int]:
    version = response.headers.get("x-model-version", "0")
    return response.headers.get("x-model", ""), int(version) if version.isdigit() else 0

"""vae_client: a Python client of vae-service, numpy arrays in and out.

    from vae_client import Client

    with Client("http://127.0.0.1:8000") as vae:
        images = vae.sample(n=4, seed=1)      # float32 [4, 1, 28, 28]
        latents = vae.encode(images).mu       # float32 [4, 32]
        again = vae.decode(latents)           # float32 [4, 1, 28, 28]

A video model's clips: `encode_video` (an mp4, its path, or frames) gives latent means
[C, T, h, w]; `decode_video` gives an mp4's bytes or frames; `stream_video` the mp4 in chunks as
it is decoded.

`AsyncClient` has the same methods, awaited.
"""

from vae_client.async_client import AsyncClient
from vae_client.client import Client
from vae_client.errors import (
    BadRequest,
    ConnectionFailed,
    JobFailed,
    NotFound,
    RateLimited,
    RequestTimeout,
    ServerError,
    Unauthorized,
    Unavailable,
    VaeError,
    WaitTimeout,
)
from vae_client.retry import RetryPolicy
from vae_client.types import Encoded, Interpolation, Job, Latent

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Client",
    "ConnectionFailed",
    "Encoded",
    "Interpolation",
    "Job",
    "JobFailed",
    "Latent",
    "NotFound",
    "RateLimited",
    "RequestTimeout",
    "RetryPolicy",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "VaeError",
    "WaitTimeout",
]

"""What the client returns: encoded latents, interpolation paths, job snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Latent:
    """An interpolation end given as a latent of any shape (a spatial model's [C, h, w] grid
    included), so that it is never taken for an image. A 1-D array is a latent anyway."""

    array: np.ndarray


@dataclass(frozen=True)
class Encoded:
    """Posteriors of a batch of images.

    `mu` and `sigma` are float32 [N, D]; `z` is [N, samples, D] when draws were asked for.
    For a VQ-VAE `mu` is z_e (before quantization, [N, D*h*w]) and `sigma` is None; for a
    spatial model `mu` is the latent grid's mean [N, C, h, w] and `sigma` is None.
    """

    mu: FloatArray
    sigma: FloatArray | None
    z: FloatArray | None
    model: str
    version: int


@dataclass(frozen=True)
class Interpolation:
    """A decoded path through latent space: `latents` [steps, D], `images` [steps, C, H, W]."""

    latents: FloatArray
    images: FloatArray
    model: str
    version: int


@dataclass(frozen=True)
class Job:
    """One snapshot of a training job (GET /jobs/{id}).

    `status` is queued, running, succeeded, failed or cancelled; `progress` what the worker last
    reported (stage, epoch, step, steps, losses); `result` the published model and version;
    `make_default` whether that version becomes the one that answers for its name.
    """

    id: str
    status: str
    dataset: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    make_default: bool = True
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def done(self) -> bool:
        """True once the job has ended (succeeded, failed or cancelled)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """A snapshot from the service's JSON (unknown keys are ignored)."""
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            dataset=str(data.get("dataset", "")),
            name=str(data.get("name", "")),
            config=dict(data.get("config") or {}),
            make_default=data.get("make_default") is not False,
            progress=dict(data.get("progress") or {}),
            result=data.get("result"),
            error=data.get("error"),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
        )

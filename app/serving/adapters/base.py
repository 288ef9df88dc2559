"""The interface every kind family's adapter has: typed `encode / decode / sample / interpolate`,
and the one `interpolate` they share (each family says how an end becomes a latent, how latents
become images, and what else a path carries)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.arrays import CodeArray, FloatArray
from app.config import Settings
from app.repository.manifest import Manifest
from app.serving.adapters.errors import ImageSizeError, InvalidRequest, PriorNotMeaningful
from app.serving.adapters.requests import (
    DecodeCall,
    EncodeCall,
    Endpoint,
    InterpolateCall,
    SampleCall,
)
from app.serving.adapters.results import Decoded, DecodedVideo, Drawn, Encoding
from app.serving.batcher import Runner
from app.serving.inference import InferenceService
from app.serving.latents import interpolate
from app.serving.loaded import ModelParts
from app.serving.packing import PackedGraph
from app.serving.vq import CodePrior

RowCap = Callable[[tuple[int, ...]], int]
"""How many rows of a shape one batch may take."""


class MakeRunner(Protocol):
    """Puts a runner (a micro-batcher, or a direct runner) in front of a graph, named `which`
    (encoder, decoder, prior); `max_rows_for` caps a batch's rows by their shape, and
    `batching` False asks for no batching."""

    def __call__(
        self,
        graph: PackedGraph | CodePrior,
        which: str,
        max_rows_for: RowCap | None = None,
        batching: bool = True,
    ) -> Runner: ...


@dataclass(frozen=True)
class Loading:
    """What loading a version's graphs needs from the registry: the settings (threads, batch
    sizes, pixel caps) and its runner maker."""

    settings: Settings
    runner: MakeRunner


def refuse_video(manifest: Manifest) -> InvalidRequest:
    """What an image model answers a video file with."""
    return InvalidRequest(
        f"model {manifest.name} takes images, not a video: a video file is for video models "
        "(GET /models lists each model's kind)"
    )


def require_prior(manifest: Manifest) -> None:
    """PriorNotMeaningful for a model whose latents are not N(0, I) distributed."""
    if not manifest.prior_meaningful:
        note = manifest.prior_note or "its latents are not N(0, I)"
        raise PriorNotMeaningful(f"model {manifest.name} cannot sample: {note}")


class ModelAdapter(ABC):
    """How one family of model kinds answers: typed calls in, typed results out. The registry
    builds one per loaded version (`LoadedModel.adapter`); a request a family cannot serve is
    refused with a domain error (`app/serving/adapters/errors.py`)."""

    def __init__(self, model: ModelParts, service: InferenceService) -> None:
        self.model = model
        self.service = service
        self.manifest: Manifest = model.manifest
        self.settings: Settings = service.settings

    @classmethod
    @abstractmethod
    def load(cls, manifest: Manifest, directory: Path, loading: Loading) -> ModelParts:
        """Loads and warms a version's graphs and puts runners in front of them (blocking: the
        registry calls it in a worker thread)."""

    @abstractmethod
    async def encode(self, call: EncodeCall) -> Encoding:
        """Images -> their latents (and what else the family gives per image)."""

    @abstractmethod
    async def decode(self, call: DecodeCall) -> Decoded | DecodedVideo:
        """Latents -> images (a video family: clips, decoded as they are read), in the format
        the call asks for or the family picks."""

    @abstractmethod
    async def sample(self, call: SampleCall) -> Drawn:
        """Draws from the prior, decoded; PriorNotMeaningful where the prior gives no images."""

    async def interpolate(self, call: InterpolateCall) -> Drawn:
        """A path of `steps` latents from `start` to `end` (images encoded to their mean) by lerp
        or slerp over the whole latent, and its images."""
        label = self.label_index(call.label)
        deadline = self.service.deadline()
        start = await self.endpoint(call.start, label, deadline)
        end = await self.endpoint(call.end, label, deadline)
        if start.shape != end.shape:
            raise ImageSizeError(
                f"both ends must have one latent shape, got {list(start.shape)} and {list(end.shape)}"
            )
        path = interpolate(start.reshape(-1), end.reshape(-1), call.steps, call.method)
        path = path.reshape(call.steps, *start.shape)
        images = await self.images_of(path, label, deadline)
        return Drawn(path, images, codes=self.codes_of(path))

    @abstractmethod
    def label_index(self, label: int | None) -> int | None:
        """The graph's class index for a label (None for a model that takes none)."""

    @abstractmethod
    async def endpoint(self, end: Endpoint, label: int | None, deadline: float) -> FloatArray:
        """One interpolation end as a latent (an image: its posterior mean)."""

    @abstractmethod
    async def images_of(
        self, z: FloatArray, label: int | None, deadline: float, noise: FloatArray | None = None
    ) -> FloatArray:
        """Latents -> finite images [N,C,H,W] in [0,1]; InvalidLatent when the decoder
        overflows."""

    def codes_of(self, path: FloatArray) -> CodeArray | None:
        """The code grids latents quantize to, for a family that has codes (None here)."""
        return None

"""The manifest.json of a model version: what the graphs take and give, and how they were made."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageSpec(BaseModel):
    """The image size a model takes and produces."""

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        return self.channels, self.height, self.width


class TrainingInfo(BaseModel):
    """Where a version came from."""

    dataset: str
    sha256: str
    config: dict[str, Any]
    seconds: float
    epochs_run: float
    train_images: int
    heldout_images: int


class Metrics(BaseModel):
    """Held-out evaluation, computed from the ONNX graphs."""

    model_config = ConfigDict(extra="allow")

    elbo: float
    iwae_nll: float
    k: int
    eval_images: int
    active_units: int
    kl: float
    reconstruction_nll: float
    kl_per_dim: list[float]


class Manifest(BaseModel):
    """models/<name>/<version>/manifest.json."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    kind: Literal["vae", "cvae", "hvae"] = "vae"
    latent_dim: int
    image: ImageSpec
    likelihood: Literal["bernoulli", "gaussian"]
    classes: list[str] = Field(
        default_factory=list, description="a conditional model's class names"
    )
    label_values: list[int] = Field(
        default_factory=list, description="the `label` each class answers to, in graph order"
    )
    noise_dim: int = Field(0, description="extra decoder inputs the API fills with noise (hvae)")
    training: TrainingInfo | None = None
    metrics: Metrics | None = None
    files: dict[str, str] = Field(default_factory=dict)
    parity: dict[str, float] = Field(default_factory=dict)
    created_at: str

    @property
    def conditional(self) -> bool:
        """True when the graphs also take a label `y`."""
        return self.kind == "cvae"

    def label_index(self, label: int) -> int:
        """The graph's class index for a dataset label; ValueError names the valid ones."""
        if label not in self.label_values:
            raise ValueError(f"label must be one of {self.label_values}, got {label}")
        return self.label_values.index(label)

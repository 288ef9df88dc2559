"""The manifest.json of a model version: what the graphs take and give, and how they were made."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    epochs_run: int | float = Field(
        description="epochs trained: a whole number, unless stopped within an epoch"
    )
    train_images: int
    heldout_images: int

    @field_validator("epochs_run")
    @classmethod
    def _whole_epochs(cls, value: int | float) -> int | float:
        """150.0 (as older manifests wrote it) is 150."""
        return int(value) if float(value).is_integer() else value


class Metrics(BaseModel):
    """Held-out evaluation, computed from the ONNX graphs.

    For a vqvae, `elbo` is log p(x|z_q) + log p_prior(codes) (a true bound: the one-hot
    posterior has no entropy) and `kl` the prior's NLL of the codes; `iwae_nll`, `k`,
    `active_units` and `kl_per_dim` are null (not defined for a deterministic encoder), and
    VQ terms (commitment, vq_loss, codebook usage, perplexity) come as extra fields."""

    model_config = ConfigDict(extra="allow")

    elbo: float
    iwae_nll: float | None
    k: int | None
    eval_images: int
    active_units: int | None
    kl: float
    reconstruction_nll: float
    kl_per_dim: list[float] | None


class VQMetrics(Metrics):
    """A vqvae's held-out metrics: the shared fields (see Metrics) and its VQ terms."""

    prior_nll: float
    uniform_prior_nll: float
    commitment: float
    vq_loss: float
    codes_used: int
    codebook_usage: float
    perplexity: float


class Manifest(BaseModel):
    """models/<name>/<version>/manifest.json."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: int
    kind: Literal["vae", "cvae", "hvae", "vqvae"] = "vae"
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
    grid: list[int] = Field(
        default_factory=list, description="a vqvae's code grid [h, w]; latent_dim = D*h*w"
    )
    codebook_size: int = Field(0, description="a vqvae's number of codes K")
    embedding_dim: int = Field(0, description="a vqvae's code vector size D")
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

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


class SpatialSpec(BaseModel):
    """A spatial model's latent grid: [channels, H/downscale, W/downscale] for an image H x W.

    With `free_size` the model takes any height and width that are multiples of `downscale`,
    at least `min_size` on each side (and at most the server's `VAE_MAX_PIXELS`); otherwise
    only the manifest's `image` size."""

    latent_channels: int = Field(ge=1)
    downscale: int = Field(ge=1, description="image pixels per latent cell, on each axis")
    min_size: int = Field(ge=1, description="the smallest height or width taken, in pixels")
    free_size: bool = True

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The latent [C, h, w] of an image height x width."""
        return self.latent_channels, height // self.downscale, width // self.downscale


class GraphDtypes(BaseModel):
    """The float type each graph was exported in (its inputs and outputs)."""

    encoder: Literal["float32", "float16"] = "float32"
    decoder: Literal["float32", "float16"] = "float32"


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
    active_units_per_layer: list[int] | None = Field(
        None, description="a hierarchical model's active units, top layer first"
    )


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
    kind: Literal["vae", "cvae", "hvae", "vqvae", "autoencoder"] = "vae"
    latent_dim: int = Field(description="D of a flat latent; a spatial model's latent channels")
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
    spatial: SpatialSpec | None = Field(
        None, description="a spatial latent [C,h,w] (None: a flat latent [latent_dim])"
    )
    value_range: tuple[float, float] = Field(
        (0.0, 1.0), description="the pixel values the graphs take and give: [0,1] or [-1,1]"
    )
    scaling_factor: float = Field(
        1.0, description="a diffusion model's latent = (mean - shift_factor) * scaling_factor"
    )
    shift_factor: float = 0.0
    dtypes: GraphDtypes = Field(default_factory=GraphDtypes)
    prior_meaningful: bool = Field(
        True, description="whether decoding draws from N(0, I) gives images (/sample)"
    )
    prior_note: str = Field("", description="why not, when the prior is not meaningful")
    source: dict[str, Any] = Field(
        default_factory=dict, description="where an imported version came from"
    )
    training: TrainingInfo | None = None
    metrics: Metrics | None = None
    files: dict[str, str] = Field(default_factory=dict)
    parity: dict[str, float] = Field(default_factory=dict)
    created_at: str

    @field_validator("value_range")
    @classmethod
    def _known_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if tuple(value) not in {(0.0, 1.0), (-1.0, 1.0)}:
            raise ValueError("value_range must be [0, 1] or [-1, 1]")
        return value

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The latent of one image at the manifest's image size: (D,) or (C, h, w)."""
        if self.spatial is None:
            return (self.latent_dim,)
        return self.spatial.latent_shape(self.image.height, self.image.width)

    @property
    def conditional(self) -> bool:
        """True when the graphs also take a label `y`."""
        return self.kind == "cvae"

    def label_index(self, label: int) -> int:
        """The graph's class index for a dataset label; ValueError names the valid ones."""
        if label not in self.label_values:
            raise ValueError(f"label must be one of {self.label_values}, got {label}")
        return self.label_values.index(label)

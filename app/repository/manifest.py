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


class TimeChunks(BaseModel):
    """How a video graph walks a clip's time axis, so that a clip's memory does not grow with its
    frames. Counts are the graph's *input* frames (latent frames for a decoder, video frames for
    an encoder) unless they say output.

    - `causal_cache` (Wan, Qwen-Image): the first call runs `<graph>_first.onnx` on
      `first_frames` input frames; every later call runs `<graph>.onnx` on the next `chunk_frames`
      with the `caches` tensors the previous call gave (`cache_out_<i>` fed back as
      `cache_in_<i>`): exactly what diffusers' own loop computes with its feature cache.
    - `temporal_tiles` (HunyuanVideo, LTX-Video): diffusers' framewise tiles. A clip of at most
      `chunk_frames - 1` input frames is one call of `<graph>.onnx`; a longer one is cut in tiles
      of `chunk_frames` input frames starting every `stride_frames`; every tile after the first
      drops its `drop` output frame, blends its first `blend_frames` output frames with the tail
      of the tile before (linearly, as diffusers' `blend_t`) and keeps `out_stride` output frames
      (the first tile `out_stride + 1`)."""

    scheme: Literal["causal_cache", "temporal_tiles"]
    chunk_frames: int = Field(ge=1)
    first_frames: int = Field(1, ge=1)
    caches: int = Field(0, ge=0)
    stride_frames: int = Field(0, ge=0)
    blend_frames: int = Field(0, ge=0)
    out_stride: int = Field(0, ge=0)
    drop: Literal["first", "last"] = "first"


class VideoSpec(BaseModel):
    """A video autoencoder's time axis: a clip of F frames has T = (F - 1) / temporal_downscale + 1
    latent frames (the first frame is encoded alone, causally), and how its graphs walk time."""

    temporal_downscale: int = Field(ge=1)
    fps: float = Field(16.0, gt=0, description="frames per second of the model's clips")
    decode: TimeChunks
    encode: TimeChunks | None = None

    def frames(self, latent_frames: int) -> int:
        """The video frames of `latent_frames` latent frames."""
        return (latent_frames - 1) * self.temporal_downscale + 1

    def latent_frames(self, frames: int) -> int | None:
        """The latent frames of a clip of `frames` frames; None when no latent clip gives it."""
        if frames < 1 or (frames - 1) % self.temporal_downscale:
            return None
        return (frames - 1) // self.temporal_downscale + 1


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
    kind: Literal["vae", "cvae", "hvae", "vqvae", "autoencoder", "video_autoencoder"] = "vae"
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
    latents_mean: list[float] = Field(
        default_factory=list,
        description="per latent channel (Wan, LTX-Video): a pipeline holds a latent mean mu as "
        "((mu - latents_mean) / latents_std - shift_factor) * scaling_factor; empty: 0 and 1",
    )
    latents_std: list[float] = Field(default_factory=list)
    video: VideoSpec | None = Field(
        None, description="a video autoencoder's time axis (None: an image model)"
    )
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

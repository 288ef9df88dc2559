"""Training configuration: one validated object shared by `vae train`, jobs and manifests.

This module must stay free of torch so the API can validate job configs up front.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Architecture = Literal["mlp", "conv"]
Likelihood = Literal["bernoulli", "gaussian"]
Activation = Literal["relu", "elu", "gelu", "tanh"]


class TrainConfig(BaseModel):
    """Everything that decides what a training run produces. Every field has a usable default."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["vae", "cvae", "hvae", "vqvae"] = Field(
        "vae",
        description="vae; cvae (conditioned on labels); hvae (two stochastic layers, ladder); "
        "vqvae (a discrete code grid with a learned autoregressive prior)",
    )
    arch: Architecture = "mlp"
    latent_dim: int = Field(32, ge=1, le=512, description="z (for hvae: the top layer)")
    bottom_latent_dim: int = Field(32, ge=1, le=512, description="hvae: the lower layer z1")
    hidden: list[int] = Field(default_factory=lambda: [512, 512], min_length=1, max_length=6)
    activation: Activation = "elu"
    conv_channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=1, max_length=4)
    conv_fc: int = Field(256, ge=8, le=4096)
    likelihood: Likelihood = "bernoulli"
    binarize: Literal["dynamic", "none"] = Field(
        "dynamic",
        description="dynamic: resample binary pixels from intensities every batch (Bernoulli only)",
    )

    num_embeddings: int = Field(128, ge=2, le=4096, description="vqvae: codebook size K")
    embedding_dim: int = Field(16, ge=1, le=256, description="vqvae: code vector size D")
    commitment_cost: float = Field(
        0.25, ge=0.0, le=10.0, description="vqvae: weight of the commitment loss"
    )
    ema_decay: float = Field(0.99, gt=0.0, lt=1.0, description="vqvae: codebook EMA decay")
    dead_code_patience: int = Field(
        1, ge=1, le=10000, description="vqvae: a code unused for this many batches is re-seeded"
    )
    prior_epochs: int = Field(10, ge=1, le=1000, description="vqvae: epochs of the PixelCNN prior")
    prior_channels: int = Field(64, ge=4, le=512, description="vqvae: PixelCNN width")
    prior_layers: int = Field(6, ge=1, le=20, description="vqvae: gated PixelCNN layers")

    objective: Literal["elbo", "iwae"] = Field(
        "elbo",
        description="elbo: the evidence lower bound (analytic KL); iwae: the importance-weighted "
        "bound with iwae_k posterior draws an image (Burda et al. 2015)",
    )
    iwae_k: int = Field(5, ge=1, le=1000, description="objective iwae: draws an image")

    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(128, ge=1, le=4096)
    lr: float = Field(1e-3, gt=0, le=1.0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    beta: float = Field(1.0, ge=0.0, le=100.0)
    kl_warmup_epochs: float = Field(0.0, ge=0.0, le=1000.0)
    free_bits: float = Field(0.0, ge=0.0, le=10.0, description="minimum KL nats per latent dim")
    seed: int = 0
    max_seconds: float | None = Field(None, gt=0, description="stop training after this long")

    holdout: int | float = Field(
        0.1, gt=0, description="held-out images: a fraction (< 1) or a count (>= 1)"
    )
    eval_k: int = Field(1000, ge=1, le=20000, description="importance samples for the IWAE bound")
    quality: bool = Field(
        True, description="score samples with a classifier trained on the labels (labelled data)"
    )
    eval_images: int | None = Field(
        None, ge=1, description="held-out images the IWAE bound is computed on (all when unset)"
    )

    @field_validator("holdout")
    @classmethod
    def _whole_count(cls, value: int | float) -> int | float:
        """A count of images is an int (10000, never 10000.0); a fraction stays a float."""
        return int(value) if value >= 1 and float(value).is_integer() else value

    @model_validator(mode="after")
    def _check_likelihood(self) -> TrainConfig:
        if self.likelihood == "gaussian" and self.binarize == "dynamic":
            self.binarize = "none"
        if self.kind == "vqvae":
            if self.free_bits > 0:
                raise ValueError("free_bits applies to a Gaussian KL: a vqvae has none")
            self.arch = "conv"  # the code grid comes from a convolutional encoder
            if self.objective == "iwae":
                raise ValueError("objective iwae needs a Gaussian posterior: a vqvae has none")
        return self

    def holdout_count(self, total: int) -> int:
        """How many of `total` images are held out for evaluation."""
        n = round(self.holdout * total) if self.holdout < 1 else int(self.holdout)
        return max(1, min(n, total - 1))

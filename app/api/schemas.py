"""Request and response bodies of the HTTP API: the shapes clients rely on (see the README's route
table, and the OpenAPI document at /docs, which is built from these classes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

ImageFormat = Literal["png", "array", "npy", "jpeg", "raw"]
DecodeFormat = Literal["png", "array", "npy", "jpeg", "raw", "mp4"]
FlatOrGrid = (
    list[list[float]]
    | list[list[list[float]]]
    | list[list[list[list[float]]]]
    | list[list[list[list[list[float]]]]]
)
"""Latent vectors [N][D], a spatial model's latents [C][h][w] or [N][C][h][w], or a video
model's [C][T][h][w] or [N][C][T][h][w]."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Request(BaseModel):
    # strict: a JSON false or "8" is not the number it would be coerced to, it is a client bug.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(
        None, description="'name' or 'name:version'; the default model when left out"
    )


class EncodeRequest(_Request):
    """Images as base64 PNG/JPEG (`images`) or as pixel arrays in [0,1] (`arrays`)."""

    images: list[str] | None = Field(None, description="base64 PNG or JPEG images")
    arrays: list[Any] | None = Field(
        None, description="images as nested lists [C][H][W], [H][W] or [H][W][C]"
    )
    samples: int = Field(0, ge=0, le=64, description="draws of z ~ q(z|x) to return per image")
    seed: int | None = Field(None, description="seed for the z draws")
    label: int | None = Field(None, description="the class, for a conditional model")
    layers: Literal["top", "all"] = Field(
        "top", description="a hierarchical model's lower layer too, with 'all'"
    )

    @model_validator(mode="after")
    def _one_source(self) -> EncodeRequest:
        if (self.images is None) == (self.arrays is None):
            raise ValueError("send exactly one of 'images' (base64) or 'arrays'")
        if not (self.images or self.arrays):
            raise ValueError("send at least one image")
        return self


class DecodeRequest(_Request):
    """Latent vectors (or, for a vqvae, grids of code indices) to turn into images; a video
    model's latent clips to turn into clips."""

    latents: FlatOrGrid | None = Field(
        None,
        min_length=1,
        description="[N][D] vectors; a spatial model's [N][C][h][w] grids; a video model's one "
        "clip [C][T][h][w] or clips [N][C][T][h][w]",
    )
    codes: list[list[list[int]]] | None = Field(
        None, min_length=1, description="a vqvae's code grids, N x h x w indices into the codebook"
    )
    format: DecodeFormat | None = Field(
        None,
        description="png, array, npy, jpeg or raw for images (default png, or what Accept asks "
        "for); mp4, npy, raw or png for a video model (default mp4)",
    )
    label: int | None = None
    fps: float | None = Field(
        None, gt=0, description="a video model's frames per second (default: the model's)"
    )
    normalized: bool = Field(
        False,
        description="a video model's latents as a diffusion pipeline holds them (normalised and "
        "scaled): the model's normalisation is undone before decoding",
    )

    @field_validator("latents", mode="before")
    @classmethod
    def _not_one_bare_vector(cls, value: Any) -> Any:
        """One latent vector sent bare ([z1, z2, ...]) is refused with what to send instead, not
        with the union's "Input should be a valid array" for each number."""
        if isinstance(value, list) and value and all(_is_number(v) for v in value):
            raise PydanticCustomError(
                "bare_vector",
                "latents is a list of latent vectors: send one vector as [[z1, z2, ...]], "
                "not [z1, z2, ...]",
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> DecodeRequest:
        if (self.latents is None) == (self.codes is None):
            raise ValueError("send exactly one of 'latents' or 'codes'")
        return self


class SampleRequest(_Request):
    """Draws from the prior N(0, temperature^2 I), decoded."""

    n: int = Field(8, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    seed: int | None = Field(None, ge=0, lt=2**63)
    label: int | None = None
    format: Literal["png", "array"] = "png"


class Endpoint(BaseModel):
    """One end of an interpolation: an image (base64), a pixel array, or a latent vector."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image: str | None = None
    array: list[Any] | None = None
    latent: list[float] | list[list[list[float]]] | None = Field(
        None, description="a latent vector, or a spatial model's grid [C][h][w]"
    )
    codes: list[list[int]] | None = Field(None, description="a vqvae's code grid, h x w")

    @model_validator(mode="after")
    def _one_source(self) -> Endpoint:
        given = [v is not None for v in (self.image, self.array, self.latent, self.codes)]
        if sum(given) != 1:
            raise ValueError("give exactly one of 'image', 'array', 'latent' or 'codes'")
        return self


class InterpolateRequest(_Request):
    """A path through latent space between two points, decoded."""

    start: Endpoint
    end: Endpoint
    steps: int = Field(8, ge=2)
    method: Literal["lerp", "slerp"] = "slerp"
    format: Literal["png", "array", "jpeg"] = "png"
    label: int | None = None


class LatentOut(BaseModel):
    """One image's posterior (a vqvae gives `codes` and `z_e` instead of mu and sigma)."""

    mu: list[float] | None = None
    sigma: list[float] | None = None
    z: list[list[float]] | None = None
    codes: list[list[int]] | None = None
    z_e: list[float] | None = None
    cached: bool


class EncodeResponse(BaseModel):
    """Per image: mu, sigma, optional z draws, and whether the cache answered."""

    model: str
    version: int
    latents: list[LatentOut]


class ImagesResponse(BaseModel):
    """Images as base64 PNG (`images`) or as arrays (`arrays`), with the latents behind them."""

    model: str
    version: int
    images: list[str] | None = None
    arrays: list[Any] | None = None
    latents: list[list[float]] | None = None
    codes: list[list[list[int]]] | None = None
    seed: int | None = None


class ErrorResponse(BaseModel):
    """Every error: a message a person can act on."""

    error: str
    message: str
    detail: Any = None

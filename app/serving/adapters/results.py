"""What a model's adapter gives: typed results, one encoding class per kind family, and the
decoded images of /decode, /sample and /interpolate. The HTTP layer renders them without asking
which kind answered: an encoding lists its per-image fields (`entries`), its batch-wide ones
(`fields`) and the one array a .npy or raw answer holds (`tensor`), and says which answer the
client gets (`form`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.arrays import CodeArray, FloatArray

Form = Literal["json", "npy", "raw"]


def sigma_of(logvar: FloatArray) -> FloatArray:
    """Standard deviations from log-variances, as float32."""
    return np.exp(0.5 * logvar).astype(np.float32)


@dataclass(frozen=True)
class Encoding:
    """An encode's answer, and the form the client gets it in."""

    form: Form

    def tensor(self) -> np.ndarray:
        """The one array a .npy or raw answer holds."""
        raise NotImplementedError

    def entries(self) -> list[dict[str, Any]]:
        """Per image, the fields of the JSON answer's `latents`."""
        raise NotImplementedError

    def fields(self) -> dict[str, Any]:
        """The JSON answer's fields about the whole batch (none by default)."""
        return {}

    @property
    def tiling(self) -> str | None:
        """How the inputs were tiled (the X-VAE-Tiling header), None when they were not."""
        return None


@dataclass(frozen=True)
class GaussianEncoding(Encoding):
    """A Gaussian posterior per image (mean, standard deviation), whether the cache answered,
    and `draws` [N, samples, D] of z when asked for."""

    mu: FloatArray
    sigma: FloatArray
    cached: list[bool]
    draws: FloatArray | None = None

    def tensor(self) -> np.ndarray:
        """[N, 2, D]: mu and sigma per image."""
        return np.stack([self.mu, self.sigma], axis=1)

    def entries(self) -> list[dict[str, Any]]:
        """mu, sigma, cached (and z) per image."""
        out = []
        for i in range(len(self.mu)):
            entry: dict[str, Any] = {
                "mu": self.mu[i],
                "sigma": self.sigma[i],
                "cached": self.cached[i],
            }
            if self.draws is not None:
                entry["z"] = self.draws[i]
            out.append(entry)
        return out


@dataclass(frozen=True)
class LayersEncoding(Encoding):
    """A ladder model's two layers per image: the top posterior, and the lower one given the
    top's mean (never cached)."""

    mu: FloatArray
    logvar: FloatArray
    mu_bottom: FloatArray
    logvar_bottom: FloatArray

    def tensor(self) -> np.ndarray:
        """[N, 2, D]: the top layer's mu and sigma per image."""
        return np.stack([self.mu, sigma_of(self.logvar)], axis=1)

    def entries(self) -> list[dict[str, Any]]:
        """mu, sigma, mu_bottom, sigma_bottom per image."""
        sigma, sigma_bottom = sigma_of(self.logvar), sigma_of(self.logvar_bottom)
        return [
            {"mu": self.mu[i], "sigma": sigma[i], "mu_bottom": self.mu_bottom[i],
             "sigma_bottom": sigma_bottom[i], "cached": False}
            for i in range(len(self.mu))
        ]  # fmt: skip


@dataclass(frozen=True)
class CodeEncoding(Encoding):
    """A VQ-VAE's code grid [h,w] per image and its z_e before quantization, flattened like a
    latent [D*h*w] (never cached)."""

    codes: CodeArray
    z_e: FloatArray

    def entries(self) -> list[dict[str, Any]]:
        """codes and z_e per image."""
        return [
            {"codes": codes, "z_e": z_e, "cached": False}
            for codes, z_e in zip(self.codes, self.z_e, strict=True)
        ]

    def tensor(self) -> np.ndarray:
        """z_e [N, D*h*w]."""
        return self.z_e


@dataclass(frozen=True)
class GridEncoding(Encoding):
    """A spatial model's latent means [N,C,h,w], their standard deviations (None for a
    deterministic encoder), which rows the cache answered, and the model's scaling and shift."""

    mean: FloatArray
    sigma: FloatArray | None
    cached: list[bool]
    scaling_factor: float
    shift_factor: float
    tiled: str | None = None

    @property
    def tiling(self) -> str | None:
        """How the images were tiled to encode them (diffusers' tiles, or exact halo tiles)."""
        return self.tiled

    def tensor(self) -> np.ndarray:
        """The latent means [N,C,h,w]."""
        return self.mean

    def entries(self) -> list[dict[str, Any]]:
        """mu, sigma (or null) and cached per image."""
        return [
            {"mu": self.mean[i], "sigma": None if self.sigma is None else self.sigma[i],
             "cached": self.cached[i]}
            for i in range(len(self.mean))
        ]  # fmt: skip

    def fields(self) -> dict[str, Any]:
        """The latents' shape [C,h,w], and the factors that scale them for a diffusion model."""
        return {
            "latent_shape": list(self.mean.shape[1:]),
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
        }


@dataclass(frozen=True, slots=True)
class Decoded:
    """Images [N,C,H,W] in [0,1], finite, in the `format` to give them in; `file` when the client
    takes an image file back (png or jpeg) rather than JSON; the decoder's `output` in the
    model's own value range (the images themselves for a model whose range is [0,1]); and how the
    latents were tiled (`tiled`: the X-VAE-Tiling header), None when they were not."""

    images: FloatArray
    format: str
    file: bool = False
    output: FloatArray | None = None
    tiled: str | None = None

    @property
    def raw_output(self) -> FloatArray:
        """The decoder's output in the model's own value range."""
        return self.images if self.output is None else self.output


@dataclass(frozen=True)
class DecodedVideo:
    """Clips decoded chunk by chunk in time: `pieces` yields the decoder's output
    [N, C, t, H, W] in the model's `value_range` (finite), in order, each piece final when
    yielded, `frames` frames a clip in all; to be given as `format` (mp4, npy, raw, png) at `fps`.
    `batched`: the latents came with a batch axis ([N,C,T,h,w]), so the answer keeps one
    (npy [N,F,C,H,W] float32 in [0,1], raw uint8 [N,F,H,W,C]); else one clip's [F,C,H,W] and
    [F,H,W,C]. The pieces are computed as they are read: a renderer that streams them sends the
    first frames before the last are decoded."""

    pieces: AsyncIterator[FloatArray]
    clips: int
    frames: int
    height: int
    width: int
    channels: int
    fps: float
    format: str
    value_range: tuple[float, float]
    batched: bool = False
    tiled: str | None = None

    def unit_frames(self, piece: FloatArray) -> FloatArray:
        """A piece [N, C, t, H, W] as frames [N, t, C, H, W] in [0,1] (float32)."""
        low, high = self.value_range
        frames = np.moveaxis(piece, 2, 1).astype(np.float32, copy=False)
        if (low, high) != (0.0, 1.0):
            frames = (frames - np.float32(low)) / np.float32(high - low)
        return np.clip(frames, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Drawn:
    """The answer of /sample and /interpolate: the latents, their images in [0,1] (finite), the
    seed of a draw, and a VQ-VAE's code grids for the latents."""

    latents: FloatArray
    images: FloatArray
    seed: int | None = None
    codes: CodeArray | None = None

"""The torch modules a diffusers video autoencoder is traced through to ONNX, one a graph.

Two schemes (app/repository/manifest.TimeChunks):

- `temporal_tiles` (AutoencoderKLHunyuanVideo, AutoencoderKLLTXVideo): one whole-clip encoder
  and decoder with a dynamic time axis; diffusers' framewise tiling is walked outside the graph.
- `causal_cache` (AutoencoderKLWan, AutoencoderKLQwenImage): diffusers' own chunk loop, one
  call a chunk, with its feature cache as graph inputs and outputs. Every cache is a fixed
  CACHE_FRAMES-frame tensor: diffusers' missing or one-frame cache (before the second chunk)
  is the same cache with zero frames in front, because each causal convolution it feeds pads
  time with zeros; the upsampler's "Rep" marker (first chunk: no time convolution yet) is a zero
  cache for the same reason. The parity gate checks both equivalences numerically.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TILED_CLASSES = ("AutoencoderKLHunyuanVideo", "AutoencoderKLLTXVideo")
CAUSAL_CLASSES = ("AutoencoderKLWan", "AutoencoderKLQwenImage")
CACHE_FRAMES = 2
"""Frames of every cache tensor (diffusers' CACHE_T)."""


def _gaussian(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' DiagonalGaussianDistribution's mean and (clamped) log-variance."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    dist = DiagonalGaussianDistribution(moments)
    return dist.mean, dist.logvar


class _Wrapped(nn.Module):
    """One graph of a diffusers video model, for tracing to ONNX."""

    def __init__(self, vae: Any, class_name: str) -> None:
        super().__init__()
        self.vae: Any = vae
        self.class_name = class_name


DECODE_TIMESTEP = 0.0
"""The decode timestep a timestep-conditioned LTX-Video decoder (0.9.1 on) is exported with:
LTXPipeline's default `decode_timestep`, at which the pipeline mixes no noise into the latents."""


def decode_timestep(vae: Any, batch: int) -> torch.Tensor | None:
    """The `temb` diffusers' LTX-Video decode takes for a batch (None: not conditioned)."""
    if not getattr(vae.config, "timestep_conditioning", False):
        return None
    return torch.full((batch,), DECODE_TIMESTEP)


class ClipDecoder(_Wrapped):
    """Latents [N,C,t,h,w] -> frames [N,3,f,H,W] in [-1,1]: one whole clip (a temporal tile),
    what diffusers' `decode` computes without its tiling (a timestep-conditioned LTX-Video
    decoder at DECODE_TIMESTEP)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.class_name == "AutoencoderKLLTXVideo":
            temb = None
            if getattr(self.vae.config, "timestep_conditioning", False):
                temb = z.new_zeros(z.shape[0]) + DECODE_TIMESTEP
            return self.vae.decoder(z, temb)  # type: ignore[no-any-return]
        return self.vae.decoder(self.vae.post_quant_conv(z))  # type: ignore[no-any-return]


class ClipEncoder(_Wrapped):
    """Frames [N,3,f,H,W] in [-1,1] -> the latent distribution's mean and log-variance
    [N,C,t,h,w] of one whole clip (a temporal tile)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moments = self.vae.encoder(x)
        if self.class_name != "AutoencoderKLLTXVideo":
            moments = self.vae.quant_conv(moments)
        return _gaussian(moments)


class _CausalGraph(_Wrapped):
    """A chunk of diffusers' causal loop: the first chunk (no cache in) or a later one (the
    caches of the chunk before in), giving its series and the caches for the next chunk."""

    part = ""

    def __init__(self, vae: Any, class_name: str, first: bool) -> None:
        super().__init__(vae, class_name)
        self.first = first
        self._inputs: dict[int, torch.Tensor] = {}
        module = getattr(vae, self.part)
        self._hooks = [
            m.register_forward_pre_hook(self._record_input, with_kwargs=True)
            for m in module.modules()
            if getattr(m, "mode", None) == "upsample3d"
        ]

    def _record_input(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Keeps an upsampler's input at its cache index (the shape of its zero cache)."""
        feat_cache = kwargs.get("feat_cache", args[1] if len(args) > 1 else None)
        feat_idx = kwargs.get("feat_idx", args[2] if len(args) > 2 else None)
        if feat_cache is not None and feat_idx is not None:
            self._inputs[feat_idx[0]] = args[0]

    def close(self) -> None:
        """Removes the hooks (the model is the caller's)."""
        for hook in self._hooks:
            hook.remove()

    def cache_count(self) -> int:
        """The feature-cache slots a forward of the whole model's `part` may use (diffusers'
        count of causal convolutions, an upper bound of the used ones)."""
        return int(self.vae._cached_conv_counts[self.part])

    def _run(self, x: torch.Tensor, caches: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        self._inputs.clear()
        feat_cache: list[Any] = [None] * self.cache_count() if self.first else list(caches)
        feat_idx = [0]
        out = self._call(x, feat_cache, feat_idx)
        used = feat_idx[0]
        fixed = [self._fixed(feat_cache[i], i) for i in range(used)]
        return (out, *fixed)

    def _call(self, x: torch.Tensor, feat_cache: list[Any], feat_idx: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def _fixed(self, cache: Any, index: int) -> torch.Tensor:
        """A cache entry as CACHE_FRAMES frames: zeros for "Rep", zero frames in front of a
        shorter one."""
        if isinstance(cache, str):  # "Rep": the upsampler has not convolved time yet
            last = self._inputs[index][:, :, -1:]
            return torch.zeros_like(last).repeat(1, 1, CACHE_FRAMES, 1, 1)
        cache = cache[:, :, -CACHE_FRAMES:]
        missing = CACHE_FRAMES - int(cache.shape[2])
        if missing > 0:
            zeros = torch.zeros_like(cache[:, :, :1]).repeat(1, 1, missing, 1, 1)
            cache = torch.cat([zeros, cache], dim=2)
        return cache


class CausalDecoder(_CausalGraph):
    """Latent frames [N,C,1,h,w] (+ caches) -> frames [N,3,f,H,W] in [-1,1] (+ caches): one
    step of AutoencoderKLWan._decode's loop, with its post_quant_conv, unpatchify and clamp."""

    part = "decoder"

    def forward(self, z: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._run(z, caches)

    def _call(self, x: torch.Tensor, feat_cache: list[Any], feat_idx: list[int]) -> torch.Tensor:
        x = self.vae.post_quant_conv(x)
        if self.first and self.class_name == "AutoencoderKLWan":
            out = self.vae.decoder(x, feat_cache=feat_cache, feat_idx=feat_idx, first_chunk=True)
        else:  # Qwen-Image's decoder has no first_chunk (nothing of it differs on the first)
            out = self.vae.decoder(x, feat_cache=feat_cache, feat_idx=feat_idx)
        patch = getattr(self.vae.config, "patch_size", None)
        if patch is not None:
            from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

            out = unpatchify(out, patch_size=patch)
        return torch.clamp(out, min=-1.0, max=1.0)


class CausalEncoder(_CausalGraph):
    """Frames [N,3,f,H,W] in [-1,1] (+ caches) -> mean and log-variance [N,C,t,h,w] (+ caches):
    one step of AutoencoderKLWan._encode's loop (the first frame, then 4 at a time), with its
    patchify and quant_conv."""

    part = "encoder"

    def forward(self, x: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self._run(x, caches)
        mean, logvar = _gaussian(out[0])
        return (mean, logvar, *out[1:])

    def _call(self, x: torch.Tensor, feat_cache: list[Any], feat_idx: list[int]) -> torch.Tensor:
        patch = getattr(self.vae.config, "patch_size", None)
        if patch is not None:
            from diffusers.models.autoencoders.autoencoder_kl_wan import patchify

            x = patchify(x, patch_size=patch)
        out = self.vae.encoder(x, feat_cache=feat_cache, feat_idx=feat_idx)
        return self.vae.quant_conv(out)  # type: ignore[no-any-return]


def _nearest_causal_upsample(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """HunyuanVideoUpsampleCausal3D.forward without its Python branch on the frame count: the
    whole clip upsampled (nearest) and the first frame's extra copies dropped is the same as the
    first frame upsampled in space only, followed by the rest upsampled in time and space."""
    factor = self.upsample_factor
    hidden_states = F.interpolate(hidden_states, scale_factor=factor, mode="nearest")
    if int(factor[0]) > 1:
        hidden_states = hidden_states[:, :, int(factor[0]) - 1 :]
    return self.conv(hidden_states)  # type: ignore[no-any-return]


def _movedim_with_positive_dims(original: Any) -> Any:
    """Tensor.movedim with its dims made non-negative: the TorchScript exporter writes a
    Transpose with a negative perm entry (which ONNX Runtime refuses) for movedim(-1, 1), as
    LTX-Video's RMSNorm calls do."""

    def movedim(self: torch.Tensor, source: Any, destination: Any) -> torch.Tensor:
        rank = self.dim()

        def positive(dims: Any) -> Any:
            return dims % rank if isinstance(dims, int) else tuple(d % rank for d in dims)

        return original(self, positive(source), positive(destination))  # type: ignore[no-any-return]

    return movedim


@contextlib.contextmanager
def traceable(vae: nn.Module) -> Iterator[None]:
    """Within: `vae` traces to a graph that is right for every frame count (Hunyuan's upsampler
    without its branch on frames) and ONNX Runtime loads (movedim without negative dims).
    Both are undone on leaving; the parity gate runs diffusers' own code."""
    from diffusers.models.autoencoders.autoencoder_kl_hunyuan_video import (
        HunyuanVideoUpsampleCausal3D,
    )

    patched = [m for m in vae.modules() if isinstance(m, HunyuanVideoUpsampleCausal3D)]
    # Wan's and Qwen-Image's 2x "nearest-exact" upsampling, which the exporter does not know,
    # picks the same source pixels as "nearest" at whole scale factors.
    exact = [
        m
        for m in vae.modules()
        if isinstance(m, nn.Upsample)
        and m.mode == "nearest-exact"
        and all(float(f).is_integer() for f in _factors(m.scale_factor))
    ]
    original_movedim = torch.Tensor.movedim
    for module in patched:
        module.forward = types.MethodType(_nearest_causal_upsample, module)  # type: ignore[method-assign]
    for upsample in exact:
        upsample.mode = "nearest"
    torch.Tensor.movedim = _movedim_with_positive_dims(original_movedim)  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.movedim = original_movedim  # type: ignore[method-assign]
        for upsample in exact:
            upsample.mode = "nearest-exact"
        for module in patched:
            del module.forward


def _factors(scale: Any) -> tuple[float, ...]:
    if scale is None:
        return (0.5,)  # a size, not a factor: not patched
    return tuple(scale) if isinstance(scale, tuple | list) else (scale,)

"""The video autoencoder family (kind `video_autoencoder`, imported from diffusers: Wan,
HunyuanVideo, LTX-Video, Qwen-Image): latent clips [C,T,h,w], each clip's time walked in chunks
(`app/serving/video/timeline.py`) so that its memory does not grow with its frames.

- /decode gives a `DecodedVideo` whose pieces are computed as the renderer reads them (one engine
  call ahead), each engine call in its graph's lane (`app/serving/video/lanes.py`), so the clips
  of concurrent requests take turns chunk by chunk; each call has a deadline of its own.
- /encode reads frames (a video file, .npy, raw, PNG frames, nested lists) and gives latent
  means and sigmas [N,C,T,h,w], normalised as a pipeline holds them when asked.
- /interpolate gives the latent path between two clips and decodes nothing (the explorer decodes
  a chosen step with /decode); /sample is refused (the prior gives no clips).
No latent cache: a clip's key would hash all its frames, and clips rarely repeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from app.arrays import FloatArray
from app.repository.manifest import Manifest, TimeChunks
from app.serving.adapters import requests as calls
from app.serving.adapters.base import Loading, ModelAdapter, require_prior
from app.serving.adapters.errors import (
    ImageSizeError,
    InvalidLabel,
    InvalidLatent,
    InvalidRequest,
    LatentsExpected,
    PriorNotMeaningful,
    TooLarge,
    check_count,
)
from app.serving.adapters.inputs import check_finite_output
from app.serving.adapters.results import DecodedVideo, Drawn, Form, GridEncoding, sigma_of
from app.serving.adapters.spatial_sizes import check_request_pixels
from app.serving.adapters.video_budget import VideoRequest, check_budget, peak_bytes
from app.serving.adapters.video_clips import (
    check_frames,
    check_latents,
    latent_clips,
    normalize,
    unit_clips,
    unnormalized,
    video_spec,
)
from app.serving.imaging import ImageError, decode_base64
from app.serving.latents import interpolate
from app.serving.loaded import ModelParts
from app.serving.memory import Engine, budget_bytes
from app.serving.packing import PackedGraph
from app.serving.spatial_io import decode_any_size, same_size, to_model_range
from app.serving.video.frame_tiles import FrameTiles, frame_tiles_for, tiled
from app.serving.video.graphs import TimeGraph, VideoGraphs
from app.serving.video.loading import load_video_graphs
from app.serving.video.streams import one_ahead
from app.serving.video.timeline import Step, steps_of, walk

FORMATS = ("mp4", "npy", "raw", "png")
MAX_FPS = 240.0
MAX_UPLOAD_FRAMES = 4096
"""The most frames a video file sent to /encode may have (its pixels are capped by
VAE_MAX_REQUEST_PIXELS too)."""


@dataclass(frozen=True)
class VideoEncoding(GridEncoding):
    """A video model's latent means [N,C,T,h,w] and sigmas, with the per-channel statistics a
    pipeline normalises them with, and whether they are normalised already."""

    latents_mean: list[float] = field(default_factory=list)
    latents_std: list[float] = field(default_factory=list)
    normalized: bool = False

    def fields(self) -> dict[str, Any]:
        """The grid's fields ([C,T,h,w] as latent_shape), the per-channel statistics, and
        whether the means are normalised."""
        return {
            **super().fields(),
            "latents_mean": self.latents_mean,
            "latents_std": self.latents_std,
            "normalized": self.normalized,
        }


class VideoAdapter(ModelAdapter):
    """video_autoencoder: decode (streamed, time in chunks), encode and interpolate clips."""

    @classmethod
    def load(cls, manifest: Manifest, directory: Path, loading: Loading) -> ModelParts:
        """Both directions' graphs on the engines chosen for them, warmed; the chunk graphs
        stand as the version's encoder and decoder (GET /models/{name} shows their engines);
        the runners in front of them are unbatched and unused (the lanes run the calls)."""
        graphs = load_video_graphs(directory, manifest, loading.settings)
        spec, _ = video_spec(manifest)
        decoder = PackedGraph(
            graphs.decoder.chunk, (spec.latent_channels,), False, graphs.decoder_choice
        )
        encoder = PackedGraph(graphs.encoder.chunk, (3,), False, graphs.encoder_choice)
        return ModelParts(
            manifest,
            directory,
            encoder,
            decoder,
            loading.runner(encoder, "encoder", None, False),
            loading.runner(decoder, "decoder", None, False),
            video=graphs,
        )

    @property
    def graphs(self) -> VideoGraphs:
        """The version's time-walked graphs."""
        graphs = self.model.video
        if graphs is None:
            raise RuntimeError(f"model {self.manifest.name} was loaded without its video graphs")
        return graphs

    async def _direction(self, which: str, exact: bool) -> TimeGraph:
        """The direction (decoder, encoder) a call runs on: its fp32 twin when `exact` and the
        chosen one runs at a lower precision (opened by the first such call)."""
        graphs = self.graphs
        lazy = graphs.exact.get(which) if exact else None
        if lazy is not None:
            return await lazy.direction()
        return graphs.decoder if which == "decoder" else graphs.encoder

    def label_index(self, label: int | None) -> int | None:
        """None: a video model takes no label."""
        if label is not None:
            raise InvalidLabel("a video model takes no 'label'")
        return None

    # ---- decode ------------------------------------------------------------------------------
    async def decode(self, call: calls.DecodeCall) -> DecodedVideo:
        """Latent clips [C,T,h,w] or [N,C,T,h,w] (JSON, .npy or raw) -> frames, computed as the
        answer is read. 422 for latents the model cannot take, a format or fps it does not
        give, mp4 for more than one clip; 413 past the memory budget."""
        spec, video = video_spec(self.manifest)
        z, batched = self._latents(call)
        check_count(len(z), self.settings.max_items, "clip")
        check_latents(self.manifest, z, self.settings.max_pixels)
        fmt, fps = _format(call), _fps(call.fps, video.fps)
        if fmt == "mp4" and len(z) > 1:
            raise InvalidRequest(
                f"an mp4 holds one clip, got {len(z)}: ask for npy, raw or png, or send one clip"
            )
        z = unnormalized(self.manifest, z, call.normalized, call.scaling_factor, call.shift_factor)
        if not np.isfinite(z).all():
            raise InvalidLatent("the latents overflow float32 once their normalisation is undone")
        clips, latent_frames = len(z), z.shape[2]
        frames = video.frames(latent_frames)
        height, width = z.shape[3] * spec.downscale, z.shape[4] * spec.downscale
        whole = batched or fmt == "png"  # rendered whole: every frame held at once
        if whole:
            check_request_pixels(clips * frames * height * width, self.settings.max_request_pixels)
        decoder = await self._direction("decoder", call.exact)
        chunks = decoder.chunks_for(latent_frames)
        request = VideoRequest(clips, latent_frames, frames, height, width, whole=whole)
        tiles = self._frame_tiles(z, chunks, request, _engine(decoder))
        if tiles is not None:
            request = replace(request, tile=tiles.tile)
        check_budget(self.manifest, self.settings, chunks, request, _engine(decoder))
        pieces = self._decoded(decoder, z, chunks, frames, height * width, tiles)
        notes = [_tiling(chunks, latent_frames, "latent"), tiles.note if tiles else None]
        return DecodedVideo(
            pieces=one_ahead(pieces),
            clips=clips,
            frames=frames,
            height=height,
            width=width,
            channels=3,
            fps=fps,
            format=fmt,
            value_range=self.manifest.value_range,
            batched=batched,
            tiled="; ".join(note for note in notes if note) or None,
        )

    def _frame_tiles(
        self, z: FloatArray, chunks: TimeChunks, request: VideoRequest, engine: Engine
    ) -> FrameTiles | None:
        """diffusers' frame tiles where the model has them and the frames are larger than a
        tile: always with VAE_TILING=always, else only when one call on whole frames would pass
        the memory budget."""
        tiles = frame_tiles_for(self.manifest, self.settings)
        if tiles is None or not tiles.needed(z.shape[3], z.shape[4]):
            return None
        if self.settings.tiling == "always":
            return tiles
        whole = peak_bytes(self.manifest, chunks, request, engine)
        return tiles if whole > budget_bytes(self.settings) else None

    async def _decoded(
        self,
        decoder: TimeGraph,
        z: FloatArray,
        chunks: TimeChunks,
        frames: int,
        pixels: int,
        tiles: FrameTiles | None = None,
    ) -> AsyncGenerator[FloatArray, None]:
        """The decoder's output pieces [N,3,t,H,W] (its steps in frame `tiles` when given),
        each checked finite; every engine call's deadline counts from when the walk asks for it
        (a long clip that keeps moving does not time out, a call stuck in a queue does)."""
        scale = video_spec(self.manifest)[1].temporal_downscale

        def deadline(step: Step) -> float:
            return self.service.deadline(len(z) * step.frames.shape[2] * scale * pixels)

        run = decoder.runner(deadline)
        async for piece in walk(z, chunks, frames, run if tiles is None else tiled(run, tiles)):
            yield check_finite_output(piece)

    def _latents(self, call: calls.DecodeCall) -> tuple[FloatArray, bool]:
        source = call.latents
        self.label_index(call.label)
        if isinstance(source, calls.ImageFile):
            raise LatentsExpected("/decode takes latents, not an image")
        if isinstance(source, calls.NestedLatents):
            if source.codes is not None:
                raise InvalidRequest("a video model takes only 'latents'")
            return latent_clips(source.latents)
        if isinstance(source, calls.RawTensor):
            return latent_clips(source.array())
        return latent_clips(source.array)

    # ---- encode ------------------------------------------------------------------------------
    async def encode(self, call: calls.EncodeCall) -> VideoEncoding:
        """Clips of frames -> latent means [N,C,T,h,w] and sigmas (normalised as a pipeline
        holds them with `normalized`), as JSON, .npy or raw bytes."""
        if call.samples or call.label is not None or call.layers != "top":
            raise InvalidRequest(
                f"model {self.manifest.name} is a video autoencoder: 'samples', 'label' and "
                "'layers' do not apply"
            )
        x = await self._model_clips(call.images)
        mean, sigma, tiled = await self._encode(x, call.exact)
        if call.normalized:
            mean, sigma = normalize(self.manifest, mean, sigma)
        accepts = call.accepts
        form: Form = "npy" if accepts.npy else "raw" if accepts.raw else "json"
        manifest = self.manifest
        return VideoEncoding(
            form, mean, sigma, [False] * len(mean), manifest.scaling_factor,
            manifest.shift_factor, tiled, list(manifest.latents_mean),
            list(manifest.latents_std), call.normalized,
        )  # fmt: skip

    async def _encode(
        self, x: FloatArray, exact: bool = False
    ) -> tuple[FloatArray, FloatArray | None, str | None]:
        """Clips [N,F,3,H,W] in the model's range -> latent means, sigmas (None for an encoder
        without a log-variance) and the tiling note; on the fp32 encoder when `exact`."""
        spec, _ = video_spec(self.manifest)
        check_count(len(x), self.settings.max_items, "clip")
        clips, frames, _, height, width = x.shape
        latent_frames = check_frames(self.manifest, x, self.settings.max_pixels)
        check_request_pixels(clips * frames * height * width, self.settings.max_request_pixels)
        encoder = await self._direction("encoder", exact)
        chunks = encoder.chunks_for(frames)
        request = VideoRequest(clips, latent_frames, frames, height, width, encode=True)
        check_budget(self.manifest, self.settings, chunks, request, _engine(encoder))
        series = np.ascontiguousarray(x.transpose(0, 2, 1, 3, 4))  # [N, 3, F, H, W]

        def deadline(step: Step) -> float:
            return self.service.deadline(clips * step.frames.shape[2] * height * width)

        run = encoder.runner(deadline)
        pieces = [piece async for piece in walk(series, chunks, latent_frames, run)]
        moments = np.concatenate(pieces, axis=2) if len(pieces) > 1 else pieces[0]
        channels = spec.latent_channels
        mean = np.ascontiguousarray(moments[:, :channels])
        if moments.shape[1] != 2 * channels:
            return mean, None, _tiling(chunks, frames, "")
        logvar = moments[:, channels:]
        return mean, sigma_of(logvar), _tiling(chunks, frames, "")

    async def _model_clips(self, source: calls.ImageSource) -> FloatArray:
        """Clips [N,F,3,H,W] in the model's range from any source (a raw tensor may come in it
        already; files are decoded off the event loop)."""
        if isinstance(source, calls.RawTensor) and source.model_range and source.dtype != "uint8":
            return _model_range_clips(source.array())
        return to_model_range(self.manifest, await self._unit_clips(source))

    async def _unit_clips(self, source: calls.ImageSource) -> FloatArray:
        """Clips [N,F,3,H,W] in [0,1] from any source."""
        settings = self.settings
        if isinstance(source, calls.VideoFile):
            frames = await asyncio.to_thread(_read_video, source.data, settings.max_request_pixels,
                                             settings.max_pixels)  # fmt: skip
            return unit_clips(frames)
        if isinstance(source, calls.RawTensor):
            tensor = source.array()
            return unit_clips(tensor.astype(np.uint8) if source.dtype == "uint8" else tensor)
        if isinstance(source, calls.NpyArray):
            return unit_clips(source.array)
        if isinstance(source, calls.ImageFile):
            image = await asyncio.to_thread(decode_any_size, source.data, 3, settings.max_pixels)
            return image[None, None]
        if isinstance(source, calls.Base64Images):
            images = await asyncio.to_thread(self._decode_frames, source.texts)
            return images[None]
        try:
            stacked = np.asarray(source.values)
        except (ValueError, TypeError):
            raise ImageError("frames must be equal-size nested lists of numbers") from None
        if stacked.dtype.kind not in "uif":
            raise ImageError("frames must be equal-size nested lists of numbers")
        return unit_clips(stacked)

    def _decode_frames(self, texts: list[str]) -> FloatArray:
        """Base64 PNG or JPEG frames of one clip -> [F,3,H,W] in [0,1]."""
        limit, total, decoded = self.settings.max_request_pixels, 0, []
        for text in texts:
            image = decode_any_size(decode_base64(text), 3, self.settings.max_pixels)
            total += image.shape[-2] * image.shape[-1]
            check_request_pixels(total, limit)
            decoded.append(image)
        if not decoded:
            raise InvalidRequest("send at least one frame")
        return same_size(decoded)

    # ---- sample, interpolate -------------------------------------------------------------------
    async def sample(self, call: calls.SampleCall) -> Drawn:
        """Refused: a video latent's prior gives no clips."""
        require_prior(self.manifest)
        raise PriorNotMeaningful(
            f"model {self.manifest.name} cannot sample: a video latent has no prior to draw from"
        )

    async def interpolate(self, call: calls.InterpolateCall) -> Drawn:
        """The latent path [steps, C, T, h, w] between two clips (latents, or frames encoded to
        their means), by lerp or slerp over the whole clip; nothing is decoded (`images` is
        empty): a client decodes the steps it shows with /decode."""
        self.label_index(call.label)
        deadline = self.service.deadline()
        start = await self.endpoint(call.start, None, deadline)
        end = await self.endpoint(call.end, None, deadline)
        if start.shape != end.shape:
            raise ImageSizeError(
                f"both ends must have one latent shape, got {list(start.shape)} and {list(end.shape)}"
            )
        path = interpolate(start.reshape(-1), end.reshape(-1), call.steps, call.method)
        path = path.reshape(call.steps, *start.shape).astype(np.float32, copy=False)
        return Drawn(path, np.zeros((0, 3, 0, 0), np.float32))

    async def endpoint(self, end: calls.Endpoint, label: int | None, deadline: float) -> FloatArray:
        """A latent clip [C,T,h,w] as given, or a clip of frames' latent means."""
        if isinstance(end, calls.LatentPoint):
            z, batched = latent_clips(end.value)
            if batched:
                raise InvalidLatent("a video model's latent endpoint is one clip [C][T][h][w]")
            check_latents(self.manifest, z, self.settings.max_pixels)
            return z[0]
        if isinstance(end, calls.CodesPoint):
            raise InvalidRequest("a video model has no codes")
        clips = to_model_range(self.manifest, await self._unit_clips(end))
        if len(clips) != 1:
            raise InvalidRequest("an interpolation end is one clip")
        mean, _, _ = await self._encode(clips)
        return mean[0]

    async def images_of(
        self, z: FloatArray, label: int | None, deadline: float, noise: FloatArray | None = None
    ) -> FloatArray:
        """Refused: a video model's latents decode to clips, through /decode."""
        raise InvalidRequest(
            f"model {self.manifest.name} decodes latent clips to video through /decode"
        )


def _engine(direction: TimeGraph) -> Engine:
    return Engine.of(direction.chunk)


def _tiling(chunks: TimeChunks, frames: int, unit: str) -> str | None:
    """The X-VAE-Tiling note of a walk in diffusers' temporal tiles (blended: not what one call
    on the whole clip would give, but what diffusers gives by default); None for one call, or
    for causal chunks (exact: diffusers' own loop)."""
    if chunks.scheme != "temporal_tiles" or steps_of(chunks, frames) < 2:
        return None
    what = f"{unit} frames" if unit else "frames"
    return (
        f"diffusers temporal tiles of {chunks.chunk_frames} {what}, every {chunks.stride_frames}, "
        f"blended over {chunks.blend_frames} output frames"
    )


def _read_video(data: bytes, max_pixels: int, max_frame_pixels: int) -> np.ndarray:
    """A video file's frames uint8 [F,H,W,3]; ImageError when it is not one, TooLarge past the
    limits."""
    from app.serving.video import mp4  # PyAV loads with the first video read

    try:
        return mp4.read_frames(data, MAX_UPLOAD_FRAMES, max_pixels, max_frame_pixels)
    except mp4.VideoTooLarge as error:
        raise TooLarge(str(error)) from None
    except mp4.VideoError as error:
        raise ImageError(str(error)) from None


def _model_range_clips(tensor: FloatArray) -> FloatArray:
    """A raw tensor already in the model's range, as clips [N,F,3,H,W] (channels first)."""
    clips = tensor if tensor.ndim == 5 else tensor[None] if tensor.ndim == 4 else None
    if clips is None or clips.shape[2] != 3:
        raise ImageError(
            f"frames in the model's range are [F,3,H,W] or [N,F,3,H,W], got {list(tensor.shape)}"
        )
    if not np.isfinite(clips).all():
        raise ImageError("frames must not contain NaN or infinity")
    return clips


def _format(call: calls.DecodeCall) -> str:
    """The format asked for, else npy or raw as the client accepts, else mp4."""
    fmt = call.format
    if fmt is None:
        accepts = call.accepts
        fmt = "npy" if accepts.npy else "raw" if accepts.raw else "mp4"
    if fmt not in FORMATS:
        raise InvalidRequest(f"a video model's format is one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def _fps(asked: float | None, default: float) -> float:
    """Frames per second: the one asked for (0 < fps <= 240), else the model's."""
    fps = default if asked is None else asked
    if not (0 < fps <= MAX_FPS) or not np.isfinite(fps):
        raise InvalidRequest(f"fps must be above 0 and at most {MAX_FPS:g}, got {fps:g}")
    return float(fps)

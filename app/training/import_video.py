"""`vae import diffusers DIR` for diffusers' video autoencoders (AutoencoderKLHunyuanVideo,
AutoencoderKLLTXVideo, AutoencoderKLWan, AutoencoderKLQwenImage): graphs that walk a clip's time
in chunks (app/serving/video/timeline), checked against diffusers' own `decode`/`encode` at two
frame counts (one clip in a single call, one over several chunks) and non-square sizes, then
published as a `video_autoencoder` version. Nothing is downloaded.

Schemes (see app/training/video_graphs):

- HunyuanVideo and LTX-Video: `temporal_tiles`, diffusers' framewise tiling with the model's
  tile_sample_min_num_frames / tile_sample_stride_num_frames. diffusers' LTX-Video decodes
  whole clips unless `use_framewise_decoding` is on; served clips are always tiled (memory flat
  in frames), so a clip past one tile agrees with diffusers' framewise tiling, and a clip within
  one tile with its whole-clip decode (the same single call). A timestep-conditioned decoder
  (LTX-Video 0.9.5 on) is exported at a fixed decode timestep, DECODE_TIMESTEP (0.0,
  LTXPipeline's default; the manifest's source says it); a decoder that injects random noise
  (LTX-Video 0.9.1's `decoder_inject_noise`) is refused: its decode is not deterministic.
- Wan and Qwen-Image: `causal_cache`, diffusers' own chunk loop (latent frames one at a time;
  video frames the first, then 4 at a time) with the feature cache as fixed-size tensors.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.importers.report import probe_images
from app.repository.manifest import (
    GraphDtypes,
    ImageSpec,
    Manifest,
    SpatialSpec,
    TimeChunks,
    VideoSpec,
)
from app.repository.store import ModelRepository
from app.runtime.sessions import cpu_session
from app.serving.imaging import encode_png, tile
from app.serving.video.timeline import Caches, Step, walk
from app.storage.files import check_name
from app.training.export import export_onnx
from app.training.import_diffusers import TOLERANCE, ParityError
from app.training.video_graphs import (
    CAUSAL_CLASSES,
    DECODE_TIMESTEP,
    TILED_CLASSES,
    CausalDecoder,
    CausalEncoder,
    ClipDecoder,
    ClipEncoder,
    decode_timestep,
    traceable,
)

VIDEO_CLASSES = (*TILED_CLASSES, *CAUSAL_CLASSES)
FPS = {
    "AutoencoderKLHunyuanVideo": 24.0,
    "AutoencoderKLLTXVideo": 24.0,
    "AutoencoderKLWan": 16.0,
    "AutoencoderKLQwenImage": 16.0,
}
"""Frames per second of each family's clips (LTX-Video's pipelines take 24 or 25: 24, as its
examples write their mp4s; Qwen-Image is an image model, clips of one frame). Wan 2.2's
patchified VAE (TI2V-5B) makes 24 fps clips: WAN_2_2_FPS."""
WAN_2_2_FPS = 24.0
IMAGE = {
    "AutoencoderKLHunyuanVideo": (720, 1280),
    "AutoencoderKLLTXVideo": (512, 704),
    "AutoencoderKLWan": (480, 832),
    "AutoencoderKLQwenImage": (1024, 1024),
}
"""The manifest's image size (a frame of the family's pipelines' default clips)."""
VIDEO_PRIOR_NOTE = (
    "its latents are what a video diffusion model denoises, not draws from N(0, I): make "
    "latents with the diffusion model (or /encode a clip) and POST them to /decode"
)
ENCODE_CHUNK = 4
"""Video frames a causal encoder call takes after the first (diffusers' Wan loop)."""


@dataclass(frozen=True)
class FrameTiles:
    """diffusers' framewise tiling of a temporal-tiles model, in video frames: a tile of
    `min_frames` (+1) frames every `stride_frames`."""

    min_frames: int
    stride_frames: int


@dataclass(frozen=True)
class Clip:
    """A parity clip: batch, latent frames, latent height and width."""

    batch: int
    latent_frames: int
    height: int
    width: int


def diffusers_class_name(directory: Path) -> str:
    """The `_class_name` of a diffusers model folder's config.json."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{directory} has no config.json: not a diffusers model folder")
    return str(json.loads(config_path.read_text()).get("_class_name", ""))


def load_video_autoencoder(directory: Path) -> tuple[nn.Module, str]:
    """The diffusers video model in `directory` (float32, eval mode) and its class name;
    ValueError for a class or configuration the importer does not take."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    class_name = diffusers_class_name(directory)
    if class_name not in VIDEO_CLASSES:
        raise ValueError(f"{class_name or 'this model'} is not one of {', '.join(VIDEO_CLASSES)}")
    import diffusers

    cls = getattr(diffusers, class_name)
    model = cls.from_pretrained(
        str(directory), local_files_only=True, torch_dtype=torch.float32, low_cpu_mem_usage=False
    )
    refuse_unsupported(model, class_name)
    return model.eval(), class_name


def refuse_unsupported(vae: nn.Module, class_name: str) -> None:
    """ValueError for a configuration whose decode the API cannot reproduce."""
    config: Any = getattr(vae, "config", {})
    if class_name == "AutoencoderKLLTXVideo" and any(config.get("decoder_inject_noise") or ()):
        raise ValueError(
            "this LTX-Video VAE's decoder injects random noise (decoder_inject_noise, as "
            "LTX-Video 0.9.1's): its decode is not deterministic; not imported"
        )


def compression(vae: nn.Module, class_name: str) -> tuple[int, int, int]:
    """(spatial downscale incl. patch size, temporal downscale, latent channels)."""
    model: Any = vae
    config = model.config
    if class_name in TILED_CLASSES:
        return (
            int(model.spatial_compression_ratio),
            int(model.temporal_compression_ratio),
            int(config.latent_channels),
        )
    # Wan's config says its spatial ratio (with Wan 2.2's patches); Qwen-Image's is its
    # downsampling stages'
    spatial = int(config.get("scale_factor_spatial") or 2 ** len(config.temperal_downsample))
    return spatial, 2 ** sum(bool(d) for d in config.temperal_downsample), int(config.z_dim)


def frame_tiles_of(vae: nn.Module) -> FrameTiles:
    """A temporal-tiles model's framewise tiling as diffusers' attributes set it."""
    model: Any = vae
    return FrameTiles(
        int(model.tile_sample_min_num_frames), int(model.tile_sample_stride_num_frames)
    )


def use_frame_tiles(vae: nn.Module, tiles: FrameTiles) -> None:
    """Turns diffusers' framewise tiling on with `tiles` (and spatial tiling off): what the
    graphs' walk reproduces."""
    model: Any = vae
    model.use_tiling = False
    model.use_framewise_encoding = True
    model.use_framewise_decoding = True
    model.tile_sample_min_num_frames = tiles.min_frames
    model.tile_sample_stride_num_frames = tiles.stride_frames


def time_chunks(
    class_name: str, temporal: int, tiles: FrameTiles | None, caches: tuple[int, int]
) -> tuple[TimeChunks, TimeChunks]:
    """How the decoder and the encoder walk time (`caches`: the causal graphs' cache counts,
    decoder then encoder)."""
    if class_name in CAUSAL_CLASSES:
        return (
            TimeChunks(scheme="causal_cache", first_frames=1, chunk_frames=1, caches=caches[0]),
            TimeChunks(
                scheme="causal_cache", first_frames=1, chunk_frames=ENCODE_CHUNK, caches=caches[1]
            ),
        )
    if tiles is None:
        raise ValueError(f"{class_name} walks time in tiles: give its frame tiles")
    latent_min, latent_stride = tiles.min_frames // temporal, tiles.stride_frames // temporal
    if latent_stride < 1 or tiles.stride_frames > tiles.min_frames:
        raise ValueError(
            f"frame tiles of {tiles.min_frames} every {tiles.stride_frames} frames do not "
            f"overlap in whole latent frames (temporal downscale {temporal})"
        )
    decode = TimeChunks(
        scheme="temporal_tiles",
        chunk_frames=latent_min + 1,
        stride_frames=latent_stride,
        blend_frames=tiles.min_frames - tiles.stride_frames,
        out_stride=tiles.stride_frames,
        drop="last" if class_name == "AutoencoderKLLTXVideo" else "first",
    )
    encode = TimeChunks(
        scheme="temporal_tiles",
        chunk_frames=tiles.min_frames + 1,
        stride_frames=tiles.stride_frames,
        blend_frames=latent_min - latent_stride,
        out_stride=latent_stride,
        drop="first",
    )
    return decode, encode


def _axes(prefix: str) -> dict[int, str]:
    return {0: "N", 3: f"{prefix}_h", 4: f"{prefix}_w"}


def _export_causal(
    first: nn.Module,
    chunk: nn.Module,
    series: tuple[torch.Tensor, torch.Tensor],
    names: tuple[str, list[str]],
    directory: Path,
    stem: str,
) -> int:
    """Writes `<stem>_first.onnx` (traced on the first of `series`) and `<stem>.onnx` (on the
    second, with the caches the first gives); `names` are the series input's and outputs'.
    Returns the number of caches. The time axis is fixed (a chunk's frames): diffusers' cache
    code branches on it."""
    in_name, out_names = names
    first_x, chunk_x = series
    with torch.no_grad():
        caches = first(first_x)[len(out_names) :]
    count = len(caches)
    cache_in = [f"cache_in_{i}" for i in range(count)]
    cache_out = [f"cache_out_{i}" for i in range(count)]
    grid = "latent" if in_name == "z" else "frame"
    out_grid = "frame" if in_name == "z" else "latent"
    series_axes = {in_name: _axes(grid), **{name: _axes(out_grid) for name in out_names}}
    cache_axes = {name: _axes(f"cache_{i}") for i, name in enumerate(cache_in)}
    cache_axes.update({name: _axes(f"cache_{i}") for i, name in enumerate(cache_out)})
    export_onnx(
        first, (first_x,), directory / f"{stem}_first.onnx", [in_name],
        [*out_names, *cache_out], {**series_axes, **cache_axes},
    )  # fmt: skip
    export_onnx(
        chunk, (chunk_x, *caches), directory / f"{stem}.onnx", [in_name, *cache_in],
        [*out_names, *cache_out], {**series_axes, **cache_axes},
    )  # fmt: skip
    return count


def export_video(
    vae: nn.Module, class_name: str, directory: Path, spatial: int, temporal: int, channels: int
) -> tuple[int, int]:
    """Writes the version's graphs into `directory`: decoder.onnx and encoder.onnx (dynamic N,
    t, h, w), and for a causal model decoder_first.onnx and encoder_first.onnx too. Returns the
    causal graphs' cache counts (decoder, encoder; 0 for tiles)."""
    height, width = 4, 6  # latent cells: a small non-square trace
    latent = (1, channels)
    pixels = (height * spatial, width * spatial)
    with traceable(vae):
        if class_name in TILED_CLASSES:
            z = torch.zeros(*latent, 3, height, width)
            x = torch.zeros(1, 3, 2 * temporal + 1, *pixels)
            clip = {0: "N", 2: "t", 3: "h", 4: "w"}
            video = {0: "N", 2: "f", 3: "H", 4: "W"}
            export_onnx(
                ClipDecoder(vae, class_name), (z,), directory / "decoder.onnx", ["z"], ["x"],
                {"z": clip, "x": video},
            )  # fmt: skip
            export_onnx(
                ClipEncoder(vae, class_name), (x,), directory / "encoder.onnx", ["x"],
                ["mu", "logvar"], {"x": video, "mu": clip, "logvar": clip},
            )  # fmt: skip
            return 0, 0
        graphs = [
            CausalDecoder(vae, class_name, first=True),
            CausalDecoder(vae, class_name, first=False),
            CausalEncoder(vae, class_name, first=True),
            CausalEncoder(vae, class_name, first=False),
        ]
        try:
            z = torch.zeros(*latent, 1, height, width)
            decoder_caches = _export_causal(
                graphs[0], graphs[1], (z, z), ("z", ["x"]), directory, "decoder"
            )
            x_first = torch.zeros(1, 3, 1, *pixels)
            x_chunk = torch.zeros(1, 3, ENCODE_CHUNK, *pixels)
            encoder_caches = _export_causal(
                graphs[2], graphs[3], (x_first, x_chunk), ("x", ["mu", "logvar"]), directory,
                "encoder",
            )  # fmt: skip
        finally:
            for graph in graphs:
                graph.close()  # type: ignore[operator]
    return decoder_caches, encoder_caches


class VideoGraphs:
    """A version's graphs on ONNX Runtime (CPU), walked over a clip's time as its manifest says."""

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        if manifest.video is None or manifest.spatial is None:
            raise ValueError("a video autoencoder's manifest needs `video` and `spatial`")
        self.video = manifest.video
        self.spatial_downscale = manifest.spatial.downscale
        self.sessions = {path.stem: cpu_session(path) for path in sorted(directory.glob("*.onnx"))}

    def _runner(self, stem: str, outputs: int) -> Callable[[Step], Any]:
        async def run(step: Step) -> tuple[np.ndarray, Caches]:
            session = self.sessions[f"{stem}_first" if step.first else stem]
            names = [i.name for i in session.get_inputs()]
            feeds = {names[0]: np.ascontiguousarray(step.frames, np.float32)}
            feeds.update(zip(names[1:], step.caches, strict=True))
            result = session.run(None, feeds)
            series = np.concatenate(result[:outputs], axis=1) if outputs > 1 else result[0]
            return series, list(result[outputs:])

        return run

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Frames [N,3,F,H,W] of latents [N,C,T,h,w] (un-normalised)."""
        total = self.video.frames(z.shape[2])
        return _collect(walk(z, self.video.decode, total, self._runner("decoder", 1)))

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) [N,C,T,h,w] of frames [N,3,F,H,W] in [-1,1]."""
        chunks = self.video.encode
        latent = self.video.latent_frames(x.shape[2])
        if chunks is None or latent is None:
            raise ValueError(f"cannot encode {x.shape[2]} frames")
        moments = _collect(walk(x, chunks, latent, self._runner("encoder", 2)))
        mu, logvar = np.split(moments, 2, axis=1)
        return mu, logvar


def _collect(pieces: Any) -> np.ndarray:
    async def gather() -> list[np.ndarray]:
        return [piece async for piece in pieces]

    return np.concatenate(asyncio.run(gather()), axis=2)


def reconstructions(graphs: VideoGraphs, directory: Path, shown: int = 4) -> dict[str, float]:
    """Writes `report/reconstructions.png` (`shown` frames of a synthetic panning clip of three
    latent frames above their reconstructions through the graphs' walk) and returns the clip's
    mean and max absolute pixel error in [0,1] units."""
    scale = graphs.spatial_downscale
    height = scale * -(-64 // scale)
    width = scale * -(-96 // scale)
    frames = graphs.video.frames(3)
    scene = probe_images(1, 3, height, width + 2 * frames)[0]
    clip = np.stack([scene[:, :, 2 * k : 2 * k + width] for k in range(frames)], axis=1)[None]
    mu, _ = graphs.encode(clip * 2 - 1)
    decoded = np.clip((graphs.decode(mu) + 1) / 2, 0.0, 1.0)
    picked = np.linspace(0, frames - 1, shown).round().astype(int)
    originals = clip[0].transpose(1, 0, 2, 3)[picked]
    rebuilt = decoded[0].transpose(1, 0, 2, 3)[picked]
    report = directory / "report"
    report.mkdir(exist_ok=True)
    grid = tile(np.concatenate([originals, rebuilt]), columns=shown)
    (report / "reconstructions.png").write_bytes(encode_png(grid))
    error = np.abs(decoded - clip)
    return {
        "reconstruction_mae": float(error.mean()),
        "reconstruction_max": float(error.max()),
        "frames": frames,
    }


def parity_clips(class_name: str, chunks: TimeChunks) -> list[Clip]:
    """Two clips at non-square sizes not traced: one a single call takes, one over several
    chunks (three tiles, or the first call and two more)."""
    if chunks.scheme == "causal_cache":
        return [Clip(2, 1, 3, 5), Clip(1, 3, 5, 2)]
    return [Clip(2, 2, 3, 5), Clip(1, chunks.chunk_frames + chunks.stride_frames, 5, 2)]


def _decode_arguments(vae: Any, batch: int) -> dict[str, torch.Tensor]:
    temb = decode_timestep(vae, batch)
    return {} if temb is None else {"temb": temb}


def _relative_error(got: np.ndarray, want: np.ndarray, what: str) -> float:
    if got.shape != want.shape:
        raise ParityError(
            f"{what}: ONNX Runtime gives {list(got.shape)}, diffusers {list(want.shape)}"
        )
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


def check_video_parity(
    vae: nn.Module, graphs: VideoGraphs, clips: list[Clip], tolerance: float, seed: int = 0
) -> dict[str, float]:
    """The largest relative |ONNX Runtime - diffusers| of each clip's encode (mu, logvar) and
    decode (of diffusers' mu), keyed `<graph>_T<latent frames>_<h>x<w>`, and `max_rel_err`;
    ParityError past `tolerance`."""
    model: Any = vae
    video = graphs.video
    spatial = graphs.spatial_downscale
    generator = torch.Generator().manual_seed(seed)
    errors: dict[str, float] = {}
    for clip in clips:
        frames = video.frames(clip.latent_frames)
        size = (clip.height * spatial, clip.width * spatial)
        x = torch.rand(clip.batch, 3, frames, *size, generator=generator) * 2 - 1
        with torch.no_grad():
            dist = model.encode(x).latent_dist
            mean, logvar = dist.mean, dist.logvar
            decoded = model.decode(mean, **_decode_arguments(model, clip.batch)).sample
        mu, our_logvar = graphs.encode(x.numpy())
        ours = graphs.decode(mean.numpy())
        tag = f"T{clip.latent_frames}_{size[0]}x{size[1]}"
        errors[f"encoder_{tag}"] = max(
            _relative_error(mu, mean.numpy(), f"mu of {tag}"),
            _relative_error(our_logvar, logvar.numpy(), f"logvar of {tag}"),
        )
        errors[f"decoder_{tag}"] = _relative_error(ours, decoded.numpy(), f"frames of {tag}")
    worst = max(errors.values())
    if not worst <= tolerance:
        raise ParityError(
            f"ONNX Runtime differs from diffusers by {worst:.2e} (relative; the gate is "
            f"{tolerance:g}): nothing published"
        )
    return {"max_rel_err": worst, **errors}


def fps_of(vae: nn.Module, class_name: str) -> float:
    """The frames per second of the family's clips."""
    config: Any = getattr(vae, "config", {})
    if class_name == "AutoencoderKLWan" and config.get("patch_size"):
        return WAN_2_2_FPS
    return FPS[class_name]


def manifest_for_video(
    vae: nn.Module,
    class_name: str,
    name: str,
    compression_: tuple[int, int, int],
    chunks: tuple[TimeChunks, TimeChunks],
    image: tuple[int, int] | None = None,
) -> Manifest:
    """The manifest of an imported video autoencoder (version and files filled on publish)."""
    model: Any = vae
    spatial, temporal, channels = compression_
    config: dict[str, Any] = dict(getattr(vae, "config", {}))
    latents_mean: list[float] = []
    latents_std: list[float] = []
    if class_name == "AutoencoderKLLTXVideo":
        latents_mean = [float(v) for v in model.latents_mean.flatten()]
        latents_std = [float(v) for v in model.latents_std.flatten()]
    elif config.get("latents_mean") is not None:
        latents_mean = [float(v) for v in config["latents_mean"]]
        latents_std = [float(v) for v in config["latents_std"]]
    height, width = image or IMAGE[class_name]
    return Manifest(
        name=name,
        version=0,
        kind="video_autoencoder",
        latent_dim=channels,
        image=ImageSpec(height=height, width=width, channels=3),
        likelihood="gaussian",
        spatial=SpatialSpec(latent_channels=channels, downscale=spatial, min_size=spatial),
        video=VideoSpec(
            temporal_downscale=temporal,
            fps=fps_of(vae, class_name),
            decode=chunks[0],
            encode=chunks[1],
        ),
        value_range=(-1.0, 1.0),
        scaling_factor=float(config.get("scaling_factor") or 1.0),
        shift_factor=float(config.get("shift_factor") or 0.0),
        latents_mean=latents_mean,
        latents_std=latents_std,
        dtypes=GraphDtypes(encoder="float32", decoder="float32"),
        prior_meaningful=False,
        prior_note=VIDEO_PRIOR_NOTE,
        source={
            "format": "diffusers",
            "class": class_name,
            "config": json.loads(json.dumps(config, default=str)),
        },
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def import_video_autoencoder(
    repository: ModelRepository,
    directory: Path,
    name: str,
    frame_tiles: FrameTiles | None = None,
    image: tuple[int, int] | None = None,
    tolerance: float = TOLERANCE["float32"],
) -> tuple[int, Manifest]:
    """Exports, checks and publishes a diffusers video autoencoder as the next version of
    `name`. `frame_tiles` (HunyuanVideo, LTX-Video) overrides the model's own framewise tiling;
    `image` the manifest's example frame size."""
    check_name(name)
    vae, class_name = load_video_autoencoder(directory)
    spatial, temporal, channels = compression(vae, class_name)
    tiles = None
    if class_name in TILED_CLASSES:
        tiles = frame_tiles or frame_tiles_of(vae)
        use_frame_tiles(vae, tiles)
    staging = repository.staging_dir(name)
    try:
        caches = export_video(vae, class_name, staging, spatial, temporal, channels)
        chunks = time_chunks(class_name, temporal, tiles, caches)
        manifest = manifest_for_video(
            vae, class_name, name, (spatial, temporal, channels), chunks, image
        )
        graphs = VideoGraphs(staging, manifest)
        clips = parity_clips(class_name, chunks[0])
        parity = check_video_parity(vae, graphs, clips, tolerance)
        source = {
            **manifest.source,
            "parity_clips": [[c.batch, c.latent_frames, c.height, c.width] for c in clips],
        }
        if decode_timestep(vae, 1) is not None:
            source["decode_timestep"] = DECODE_TIMESTEP
        if tiles is not None:
            source["frame_tiles"] = {
                "tile_sample_min_num_frames": tiles.min_frames,
                "tile_sample_stride_num_frames": tiles.stride_frames,
            }
        source["reconstructions"] = reconstructions(graphs, staging)
        manifest = manifest.model_copy(update={"parity": parity, "source": source})
        version = repository.publish(name, staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version, repository.manifest(name, version)

"""The memory budget (`VAE_MEMORY_BUDGET_MB`): what the loaded versions and one request's peak may
take together, and estimates of a spatial decode's or encode's peak, so that a request too large
for it is tiled or refused before it runs, not after the machine swaps."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Settings
from app.repository.manifest import Manifest
from app.runtime.graph import Graph

MIB = 1024 * 1024
BUDGET_SHARE = 0.75  # of the container's limit (or the machine's memory) when none is set
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def memory_limit_bytes() -> int:
    """The container's memory limit (cgroup v2, then v1), else the machine's memory."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 8 * 1024 * MIB  # pragma: no cover - not Linux


def budget_bytes(settings: Settings) -> int:
    """VAE_MEMORY_BUDGET_MB, or 3/4 of the container's limit."""
    if settings.memory_budget_mb is not None:
        return settings.memory_budget_mb * MIB
    return int(memory_limit_bytes() * BUDGET_SHARE)


def version_bytes(directory: Path) -> int:
    """A loaded version's resident size, estimated from its graph files."""
    return sum(path.stat().st_size for path in directory.glob("*.onnx")) * 2


def _config(manifest: Manifest) -> dict[str, Any]:
    config = manifest.source.get("config")
    return config if isinstance(config, dict) else {}


def _channels(config: dict[str, Any], key: str, index: int) -> int:
    channels = config.get(key)
    if isinstance(channels, list) and channels:
        return int(channels[index])
    return 64


@dataclass(frozen=True)
class Engine:
    """What runs a graph and at which arithmetic (a `Graph`'s `engine` and `precision`): a
    peak depends on it. The default, ONNX Runtime fp32, is the costlier."""

    name: str = "onnxruntime"
    precision: str = "fp32"

    @classmethod
    def of(cls, graph: Graph) -> Engine:
        """The engine and precision running `graph`."""
        return cls(graph.engine, graph.precision)


ONNX_RUNTIME = Engine()


@dataclass(frozen=True)
class Footprint:
    """What a model's graphs hold at their peak, per image: `attention_copies` float32 score
    matrices of tokens x tokens for a mid-block attention over the latent grid (0 without one,
    or when the engine fuses it), `bytes_per_pixel` of activations at full resolution
    (convolution buffers and a fused attention included) and `call_bytes` an engine call holds
    whatever its size (OpenVINO: a compiled shape's packed weights and buffers)."""

    attention_copies: int
    bytes_per_pixel: int
    downscale: int
    call_bytes: int = 0

    def graph_bytes(self, count: int, height: int, width: int) -> int:
        """The peak of one engine call on `count` images height x width (pixels), counting
        `call_bytes` once an image (more than it is for a batch: on the safe side)."""
        tokens = (height // self.downscale) * (width // self.downscale)
        attention = self.attention_copies * tokens * tokens * 4
        return count * (self.call_bytes + attention + self.bytes_per_pixel * height * width)


# OpenVINO's CPU plugin fuses an AutoencoderKL's attention (no score matrix in memory): its peak
# grows with pixels only. Measured: VmHWM over VmRSS of a fresh process around its first call at
# a size (its compile included) on bench.spatial's models, first block 32 channels (kl-small) and
# 128 (kl-sd), fitted as bytes a pixel per first-block channel plus a constant a call that grows
# with the weights a compiled shape packs (as the first block's channels squared):
#   decoder bf16: kl-small 512 px +164 MiB, 1024 px +479, 2048 px +1743; kl-sd +551, +1749:
#     13.1 and 12.5 B a pixel a channel, 59 and 152 MiB a call;
#   decoder fp32: kl-small +266, +875; kl-sd +1032, +3406: 25.4 and 24.7 B, 63 and 241 MiB;
#   encoder (kl-small, 512 and 1024 px): bf16 +112, +284; fp32 +164, +485: 7.2 and 13.4 B a
#     pixel a channel, half the decoder's (kl-sd 512 px bf16: +322), which is taken for both.
# A call at a size compiled before holds its working memory alone (kl-small decoder bf16: 384 MiB
# at 1024 px, 1584 at 2048; fp32: 768 at 1024). After a call past RELEASE_ABOVE elements the
# compiled shape keeps ~120-210 MiB (weights, allocator), once a shape. fp16 (not measured: AMX-FP16
# CPUs only) is taken as bf16. In `vae serve` on its defaults (kl-small's decoder on OpenVINO
# bf16) a 2048 px decode peaked 1701 MiB over the RSS before it, estimated 2240 with its arrays.
OPENVINO_BYTES_PER_PIXEL_CHANNEL = {"fp32": 26, "bf16": 14, "fp16": 14}
OPENVINO_CALL_BYTES = 64 * MIB
OPENVINO_CALL_BYTES_PER_CHANNEL_SQUARED = {"fp32": 12 * 1024, "bf16": 6 * 1024, "fp16": 6 * 1024}


def openvino_footprint(first: int, precision: str, downscale: int) -> Footprint:
    """An AutoencoderKL's peak on OpenVINO at `precision`, its first block `first` channels
    wide (an unknown precision is taken as fp32)."""
    known = precision if precision in OPENVINO_BYTES_PER_PIXEL_CHANNEL else "fp32"
    call = OPENVINO_CALL_BYTES + OPENVINO_CALL_BYTES_PER_CHANNEL_SQUARED[known] * first * first
    return Footprint(0, OPENVINO_BYTES_PER_PIXEL_CHANNEL[known] * first, downscale, call)


def footprint(manifest: Manifest, engine: Engine = ONNX_RUNTIME) -> Footprint:
    """The model's peak per image on `engine`. ONNX Runtime fp32 (calibrated by VmHWM deltas,
    its arena shrunk after each run, as spatial graphs run): an AutoencoderKL's attention holds
    2.0 to 2.1 score matrices at once (scores and softmax: 2178 MB over idle for kl-small at
    1024 px), its convolutions 13-23 bytes a pixel per channel of its first block (32 taken);
    TAESD's 12 (16 taken). OpenVINO: see `openvino_footprint`."""
    config, downscale = _config(manifest), 8
    if manifest.spatial is not None:
        downscale = manifest.spatial.downscale
    if manifest.source.get("class") == "AutoencoderTiny":
        width = _channels(config, "decoder_block_out_channels", -1)
        return Footprint(0, 16 * width, downscale)
    first = _channels(config, "block_out_channels", 0)
    if engine.name == "openvino":
        return openvino_footprint(first, engine.precision, downscale)
    attention = 2 if config.get("mid_block_add_attention", True) else 0
    return Footprint(attention, 32 * first, downscale)


# The request's own arrays beside the engine's: the output in float32, its copy in [0,1], the
# uint8 or PNG rendering (measured: 30-40 bytes a pixel of an RGB image).
IO_BYTES_PER_PIXEL = 48


def io_bytes(count: int, height: int, width: int) -> int:
    """What a request's inputs, outputs and their renderings hold, for `count` images."""
    return count * IO_BYTES_PER_PIXEL * height * width


def decode_peak_bytes(
    manifest: Manifest, count: int, height: int, width: int, engine: Engine = ONNX_RUNTIME
) -> int:
    """The estimated peak memory of decoding `count` images height x width in one piece."""
    graph = footprint(manifest, engine).graph_bytes(count, height, width)
    return graph + io_bytes(count, height, width)


def release_memory() -> None:
    """Gives the C heap's free pages back to the system (glibc's malloc_trim): ONNX Runtime
    without its arena frees a large request's buffers, but glibc keeps them mapped otherwise."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # pragma: no cover - not glibc
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


# ---- video autoencoders -------------------------------------------------------------------------
# A video graph's call holds activations for every frame of the call (time is walked in chunks,
# so a clip's frames never add up): bytes a pixel of a frame of the call (output frames for a
# decoder, input frames for an encoder) per channel of the graph's full-resolution block (its
# first; at 1/patch_size resolution for a patchified model, so that many fewer a pixel), and an
# attention's score matrices where the class has one (HunyuanVideo: one over all the latent cells
# of a call, causal in time; Wan and Qwen-Image: one per latent frame over its cells; LTX-Video:
# none). Measured (VmHWM over VmRSS around one call in a fresh process, 32-channel first blocks,
# 128-512 px, its compile included for OpenVINO):
#   HunyuanVideo (temporal tiles) decoder, ONNX Runtime fp32: 16.0, 17.4, 19.0 B a pixel-frame a
#     channel at 128, 256, 384 px (scores included); encoder 16.5; OpenVINO bf16 decoder 13.0.
#   Wan (causal cache) decoder chunk call (1 latent -> 4 frames, 24 caches), ONNX Runtime fp32:
#     49.2 and 50.5 at 256 and 512 px (its first call, one frame: 80, as much in all as a chunk's
#     40%); encoder chunk (4 frames) 31.5; OpenVINO decoder 86 (bf16) and 94 (fp32) at 512 px.
# A causal graph holds more: its convolutions pad time with the cached frames, and the caches
# come in and go out. Taken with some room: the schemes' largest measured, rounded up.
VIDEO_BYTES_PER_PIXEL_CHANNEL = {
    ("causal_cache", "onnxruntime"): 56,
    ("causal_cache", "openvino"): 100,
    ("temporal_tiles", "onnxruntime"): 24,
    ("temporal_tiles", "openvino"): 24,
}
VIDEO_ATTENTION_COPIES = 2
_VIDEO_FIRST_CHANNELS = {
    "AutoencoderKLHunyuanVideo": ("block_out_channels", 128),
    "AutoencoderKLLTXVideo": ("decoder_block_out_channels", 128),
}


@dataclass(frozen=True)
class VideoFootprint:
    """What one engine call of a video graph holds at its peak: `bytes_per_pixel` of each
    output (decoder) or input (encoder) frame's pixels, and `attention` "clip" (one score
    matrix over all a call's latent cells), "frame" (one per latent frame) or "" (none)."""

    bytes_per_pixel: int
    attention: str
    downscale: int

    def call_bytes(
        self, clips: int, latent_frames: int, frames: int, height: int, width: int
    ) -> int:
        """The peak of one call on `clips` clips of `latent_frames` latent frames and `frames`
        frames of height x width pixels (either side of the graph)."""
        cells = (height // self.downscale) * (width // self.downscale)
        if self.attention == "clip":
            scores = (latent_frames * cells) ** 2
        elif self.attention == "frame":
            scores = latent_frames * cells * cells
        else:
            scores = 0
        attention = VIDEO_ATTENTION_COPIES * 4 * scores
        return clips * (attention + self.bytes_per_pixel * frames * height * width)


def video_first_channels(manifest: Manifest) -> int:
    """The channels of a video model's full-resolution block, per output pixel (a patchified
    model's divided by its patch's pixels)."""
    config, kind = _config(manifest), str(manifest.source.get("class", ""))
    if kind in _VIDEO_FIRST_CHANNELS:
        key, default = _VIDEO_FIRST_CHANNELS[kind]
        channels = _channels(config, key, 0) if key in config else default
    else:  # Wan, Qwen-Image: base_dim x dim_mult[0]
        base = int(config.get("base_dim", 96))
        mult = config.get("dim_mult") or [1]
        channels = base * int(mult[0])
    patch = config.get("patch_size") or 1
    return max(1, channels // (int(patch) ** 2))


def video_footprint(manifest: Manifest, engine: Engine = ONNX_RUNTIME) -> VideoFootprint:
    """A video model's peak per call on `engine` (ONNX Runtime or OpenVINO, either precision)."""
    kind = str(manifest.source.get("class", ""))
    attention = "clip" if kind == "AutoencoderKLHunyuanVideo" else "frame"
    if kind == "AutoencoderKLLTXVideo":
        attention = ""
    scheme = manifest.video.decode.scheme if manifest.video is not None else "causal_cache"
    engine_name = engine.name if engine.name == "openvino" else "onnxruntime"
    per_channel = VIDEO_BYTES_PER_PIXEL_CHANNEL[(scheme, engine_name)]
    downscale = manifest.spatial.downscale if manifest.spatial is not None else 8
    return VideoFootprint(per_channel * video_first_channels(manifest), attention, downscale)

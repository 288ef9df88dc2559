"""Whether a video request fits the memory budget (VAE_MEMORY_BUDGET_MB): its peak is the
largest engine call of its walk (time is walked in chunks, so a clip's length never adds to it)
plus the arrays the request holds (its input clip for an encode; the pieces on their way out, or
every frame for an answer rendered whole); past the budget, a 413 naming the largest frame size
of the same shape that fits."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.repository.manifest import Manifest, TimeChunks
from app.serving.adapters.spatial_sizes import OverMemoryBudget
from app.serving.adapters.video_clips import video_spec
from app.serving.memory import (
    IO_BYTES_PER_PIXEL,
    MIB,
    ONNX_RUNTIME,
    Engine,
    budget_bytes,
    video_footprint,
)
from app.serving.video.timeline import largest_call_frames

INPUT_BYTES_PER_PIXEL = 3 * 4 * 2 + 3
"""An encode's input clip a frame pixel: RGB float32 in [0, 1] and in the model's range, and
the uint8 it came as."""


@dataclass(frozen=True)
class VideoRequest:
    """What a request computes: `clips` clips of `latent_frames` latent frames and `frames`
    frames of height x width pixels; `encode` or decode; `whole`: the answer holds every frame
    at once (not streamed); `tile`: its frames decoded in spatial tiles of this many pixels."""

    clips: int
    latent_frames: int
    frames: int
    height: int
    width: int
    encode: bool = False
    whole: bool = False
    tile: int | None = None


def call_frames(manifest: Manifest, chunks: TimeChunks, request: VideoRequest) -> tuple[int, int]:
    """The largest call's (latent frames, frames): a decoder's calls take latent frames, an
    encoder's frames."""
    _, video = video_spec(manifest)
    scale = video.temporal_downscale
    if request.encode:
        frames = largest_call_frames(chunks, request.frames)
        return min(request.latent_frames, -(-frames // scale)), frames
    latent = largest_call_frames(chunks, request.latent_frames)
    return latent, min(request.frames, latent * scale)


def peak_bytes(
    manifest: Manifest, chunks: TimeChunks, request: VideoRequest, engine: Engine = ONNX_RUNTIME
) -> int:
    """The request's estimated peak: its largest call, and the arrays it holds meanwhile."""
    latent, frames = call_frames(manifest, chunks, request)
    pixels = request.height * request.width
    tile = request.tile or max(request.height, request.width)
    graph = video_footprint(manifest, engine).call_bytes(
        request.clips, latent, frames, min(request.height, tile), min(request.width, tile)
    )
    held = frames if not request.whole else request.frames
    io = request.clips * IO_BYTES_PER_PIXEL * pixels * (2 * held)  # a piece rendered, one coming
    if request.encode:
        io = request.clips * INPUT_BYTES_PER_PIXEL * pixels * request.frames
    return graph + io


def check_budget(
    manifest: Manifest,
    settings: Settings,
    chunks: TimeChunks,
    request: VideoRequest,
    engine: Engine = ONNX_RUNTIME,
) -> int:
    """The request's estimated peak in bytes; OverMemoryBudget (413) past the budget, naming
    the largest frame size (of the request's aspect, in the model's steps) that fits."""
    need, budget = peak_bytes(manifest, chunks, request, engine), budget_bytes(settings)
    if need <= budget:
        return need
    what = "encoding" if request.encode else "decoding"
    plural = "s" if request.clips > 1 else ""
    text = (
        f"{what} {request.clips} clip{plural} of {request.frames} frames of "
        f"{request.width}x{request.height} needs about {need // MIB} MB at its largest engine "
        f"call, more than the memory budget of {budget // MIB} MB (VAE_MEMORY_BUDGET_MB)"
        + (f", even in frame tiles of {request.tile} px" if request.tile else "")
    )
    fits = largest_fitting(manifest, settings, chunks, request, engine)
    if fits is None:
        raise OverMemoryBudget(text + ": raise VAE_MEMORY_BUDGET_MB")
    width, height = fits
    raise OverMemoryBudget(
        text + f": the largest frame size of its shape that fits is {width}x{height}"
    )


def largest_fitting(
    manifest: Manifest,
    settings: Settings,
    chunks: TimeChunks,
    request: VideoRequest,
    engine: Engine = ONNX_RUNTIME,
) -> tuple[int, int] | None:
    """The largest frame size (width, height) of the request's aspect ratio whose request fits
    the budget (sides in multiples of the model's downscale, at least its smallest size)."""
    spec, _ = video_spec(manifest)
    step, budget = spec.downscale, budget_bytes(settings)
    smallest = -(-spec.min_size // step)
    tall = request.height >= request.width
    long_cells, short_cells = (
        (request.height // step, request.width // step)
        if tall
        else (request.width // step, request.height // step)
    )

    def size(cells: int) -> tuple[int, int]:
        other = max(smallest, cells * short_cells // max(1, long_cells))
        height, width = (cells, other) if tall else (other, cells)
        return width * step, height * step

    def fits(cells: int) -> bool:
        width, height = size(cells)
        sized = VideoRequest(
            request.clips, request.latent_frames, request.frames, height, width,
            request.encode, request.whole, request.tile,
        )  # fmt: skip
        return peak_bytes(manifest, chunks, sized, engine) <= budget

    low, high = smallest, max(smallest, long_cells)
    if not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return size(low)

"""A clip's time axis walked chunk by chunk, as a manifest's `TimeChunks` says, yielding the
output along time as each piece is final. Torch-free and engine-free: the caller runs each call
(`StepRunner`), so serving (on its engines) and the importer's parity check (ONNX Runtime against
diffusers) share one walk.

Arrays are diffusers' layout, [N, C, T, H, W]; a call's series output is one array (an encoder's
mean and log-variance concatenated on C by the caller), its caches a list in graph order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from app.repository.manifest import TimeChunks

Caches = list[np.ndarray]


@dataclass(frozen=True, slots=True)
class Step:
    """One call of a walk: `first` for the `<graph>_first` graph of a causal walk, the input
    frames, and the caches the previous call gave (empty for the first call and for tiles)."""

    first: bool
    frames: np.ndarray
    caches: Caches


StepRunner = Callable[[Step], Awaitable[tuple[np.ndarray, Caches]]]
"""Runs one call: (the series output [N, C', t, H', W'], the caches it gives)."""


def steps_of(chunks: TimeChunks, input_frames: int) -> int:
    """How many graph calls a clip of `input_frames` takes (the deadline and progress count them)."""
    if chunks.scheme == "causal_cache":
        rest = max(0, input_frames - chunks.first_frames)
        return 1 + -(-rest // chunks.chunk_frames)
    if input_frames <= chunks.chunk_frames - 1:
        return 1
    return len(range(0, input_frames, chunks.stride_frames))


def largest_call_frames(chunks: TimeChunks, input_frames: int) -> int:
    """The most input frames one call of the walk takes (what a call's memory grows with)."""
    if chunks.scheme == "causal_cache":
        rest = min(chunks.chunk_frames, max(0, input_frames - chunks.first_frames))
        return max(min(input_frames, chunks.first_frames), rest)
    return input_frames if input_frames <= chunks.chunk_frames - 1 else chunks.chunk_frames


async def walk(
    x: np.ndarray, chunks: TimeChunks, total_out: int, run: StepRunner
) -> AsyncIterator[np.ndarray]:
    """The output of input clip `x` [N, C, T, H, W] along time, piece by piece (each final when
    yielded; concatenated on axis 2 they are the first `total_out` output frames)."""
    causal = chunks.scheme == "causal_cache"
    pieces = _causal(x, chunks, run) if causal else _tiles(x, chunks, run)
    emitted = 0
    async for piece in pieces:
        piece = piece[:, :, : total_out - emitted]
        if piece.shape[2]:
            emitted += piece.shape[2]
            yield piece
        if emitted >= total_out:
            return


async def _causal(x: np.ndarray, chunks: TimeChunks, run: StepRunner) -> AsyncIterator[np.ndarray]:
    out, caches = await run(Step(True, x[:, :, : chunks.first_frames], []))
    yield out
    for start in range(chunks.first_frames, x.shape[2], chunks.chunk_frames):
        out, caches = await run(Step(False, x[:, :, start : start + chunks.chunk_frames], caches))
        yield out


async def _tiles(x: np.ndarray, chunks: TimeChunks, run: StepRunner) -> AsyncIterator[np.ndarray]:
    frames = x.shape[2]
    if frames <= chunks.chunk_frames - 1:
        yield (await run(Step(False, x, [])))[0]
        return
    previous: np.ndarray | None = None
    for start in range(0, frames, chunks.stride_frames):
        tile, _ = await run(Step(False, x[:, :, start : start + chunks.chunk_frames], []))
        if previous is None:
            yield tile[:, :, : chunks.out_stride + 1]
        else:
            tile = tile[:, :, 1:] if chunks.drop == "first" else tile[:, :, :-1]
            tile = blend_in_time(previous, tile, chunks.blend_frames)
            yield tile[:, :, : chunks.out_stride]
        previous = tile


def blend_in_time(before: np.ndarray, tile: np.ndarray, extent: int) -> np.ndarray:
    """`tile` with its first frames faded in from the last of `before`, as diffusers' `blend_t`
    does (the same weights, in float32)."""
    extent = min(before.shape[2], tile.shape[2], extent)
    tile = tile.copy()
    for i in range(extent):
        weight = i / extent
        tile[:, :, i] = before[:, :, -extent + i] * (1 - weight) + tile[:, :, i] * weight
    return tile

"""A VQ-VAE in the API: its codebook, its PixelCNN prior graph and the sampling loop.

Sampling is ancestral over the code grid in raster order: position (i, j) is drawn from the
prior's logits given every code before it, one prior call per position for the whole batch.
The prior is causal, so a call needs only the rows decided so far (the graph's grid axes are
dynamic). Randomness is numpy's, seeded by the request, so the graphs stay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.arrays import CodeArray, FloatArray
from app.runtime.graph import Graph
from app.serving.batcher import Runner

Outputs = dict[str, FloatArray]
PRIOR_FILE = "prior.onnx"
CODEBOOK_FILE = "codebook.npy"


@dataclass(frozen=True)
class CodePrior:
    """prior.onnx behind the runner interface: rows are code grids carried as float32 (exact
    for any codebook size the config allows) and handed to the graph as int64."""

    graph: Graph

    def run(self, packed: FloatArray) -> Outputs:
        """Logits [N,K,H,W] for code grids [N,H,W]."""
        return self.graph.run_feeds({"codes": np.rint(packed).astype(np.int64)})

    def warm(self, rows: int, grid: tuple[int, int]) -> None:
        """One run at a batch size, so the session's buffers exist before traffic comes."""
        self.run(np.zeros((rows, *grid), np.float32))


@dataclass
class VQParts:
    """What a VQ-VAE version adds to the encoder and decoder: the codebook [K,D], the grid
    (h, w), the prior and the runner in front of it."""

    codebook: FloatArray
    grid: tuple[int, int]
    prior: CodePrior
    runner: Runner

    @property
    def size(self) -> int:
        """K, the number of codes."""
        return int(self.codebook.shape[0])

    def latents(self, codes: CodeArray) -> FloatArray:
        """Code grids [N,h,w] -> decoder inputs [N, D*h*w]."""
        return codes_to_latents(self.codebook, codes)

    def nearest(self, z: FloatArray) -> CodeArray:
        """The codes the decoder quantizes latents [N, D*h*w] to: [N,h,w]."""
        d = self.codebook.shape[1]
        vectors = z.reshape(len(z), d, -1).transpose(0, 2, 1).astype(np.float64)  # [N,hw,D]
        book = self.codebook.astype(np.float64)
        distances = (
            (vectors**2).sum(axis=2, keepdims=True) - 2.0 * vectors @ book.T + (book**2).sum(axis=1)
        )
        return distances.argmin(axis=2).reshape(len(z), *self.grid).astype(np.int64)

    async def sample(
        self, n: int, temperature: float, rng: np.random.Generator, deadline: float | None
    ) -> CodeArray:
        """n code grids drawn from the prior, one runner call per grid position."""
        sampling = _Ancestral(n, self.grid, temperature, rng)
        for grids in sampling:
            sampling.draw(await self.runner.submit(grids, deadline))
        return sampling.codes


def load_vq_parts(
    directory: Path,
    grid: tuple[int, int],
    open_graph: Callable[[Path], Graph],
    make_runner: Callable[..., Runner],
) -> VQParts:
    """Loads codebook.npy and prior.onnx (opened by `open_graph`) from a version directory;
    `make_runner(prior)` puts a runner in front of the prior."""
    codebook = np.load(directory / CODEBOOK_FILE).astype(np.float32)
    if codebook.ndim != 2:
        raise ValueError(f"{CODEBOOK_FILE} must be [K,D], got shape {list(codebook.shape)}")
    prior = CodePrior(open_graph(directory / PRIOR_FILE))
    return VQParts(codebook, grid, prior, make_runner(prior))


def codes_to_latents(codebook: FloatArray, codes: CodeArray) -> FloatArray:
    """Code grids [N,h,w] -> decoder inputs [N, D*h*w]: each code's vector, laid out as the
    encoder's z_e [N,D,h,w] flattened (a codebook vector quantizes to itself)."""
    vectors = codebook[codes]  # [N,h,w,D]
    return np.ascontiguousarray(vectors.transpose(0, 3, 1, 2).reshape(len(codes), -1))


def draw(logits: NDArray[np.floating], temperature: float, rng: np.random.Generator) -> CodeArray:
    """One code per row of logits [N,K] from softmax(logits / temperature); the most likely
    code at temperature 0."""
    if temperature <= 0:
        return np.asarray(logits.argmax(axis=1), dtype=np.int64)
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    probabilities = np.exp(scaled)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(logits))[:, None] * cumulative[:, -1:]
    picked = (cumulative < u).sum(axis=1)
    return np.minimum(picked, logits.shape[1] - 1).astype(np.int64)


class _Ancestral:
    """Ancestral sampling of n code grids, position by position, the prior call left to the
    caller (async in `VQParts.sample`, blocking in `sample_codes_blocking`):

        sampling = _Ancestral(n, grid, temperature, rng)
        for grids in sampling:  # the grids so far (rows up to the current position)
            sampling.draw(prior(grids))  # the prior's outputs ({"logits"}) for them
        return sampling.codes
    """

    def __init__(
        self, n: int, grid: tuple[int, int], temperature: float, rng: np.random.Generator
    ) -> None:
        self.codes: CodeArray = np.zeros((n, *grid), np.int64)
        self.temperature = temperature
        self.rng = rng
        self.position = (0, 0)

    def __iter__(self) -> Iterator[FloatArray]:
        for position in np.ndindex(*self.codes.shape[1:]):
            self.position = position
            yield self.codes[:, : position[0] + 1].astype(np.float32)

    def draw(self, outputs: Outputs) -> None:
        """Draws the codes at the current position from the prior's logits [N,K,h',w']."""
        i, j = self.position
        self.codes[:, i, j] = draw(outputs["logits"][:, :, i, j], self.temperature, self.rng)


def sample_codes_blocking(
    run: Callable[[FloatArray], Outputs],
    n: int,
    grid: tuple[int, int],
    temperature: float,
    rng: np.random.Generator,
) -> CodeArray:
    """Ancestral sampling of n grids with a blocking prior call `run` (grids -> {"logits"}):
    evaluation and reports (`VQParts.sample` is the API's, through the prior's runner)."""
    sampling = _Ancestral(n, grid, temperature, rng)
    for grids in sampling:
        sampling.draw(run(grids))
    return sampling.codes

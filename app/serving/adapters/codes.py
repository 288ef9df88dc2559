"""The VQ family (kind vqvae): a grid of discrete codes per image. /encode gives the codes and
z_e (the encoder's output before quantization, flattened like a latent [D*h*w]); /decode takes
latents or code grids (an integer .npy is code grids); /sample draws code grids from the
PixelCNN prior; an interpolation walks z_e and says which codes each point quantizes to."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.arrays import CodeArray, FloatArray
from app.repository.manifest import Manifest
from app.serving.adapters.base import Loading, require_prior
from app.serving.adapters.errors import InvalidRequest
from app.serving.adapters.gaussian import GaussianAdapter
from app.serving.adapters.inputs import code_batch
from app.serving.adapters.requests import EncodeCall, LatentSource, NpyArray, SampleCall
from app.serving.adapters.results import CodeEncoding, Drawn, Encoding
from app.serving.engine_choice import FlatGate
from app.serving.flat_graphs import prior_graph
from app.serving.imaging import canonical_pixels
from app.serving.loaded import ModelParts
from app.serving.vq import VQParts, load_vq_parts


class CodeAdapter(GaussianAdapter):
    """vqvae: the flat family's reading and decoding, with codes in and out and the code prior."""

    GATE: ClassVar[FlatGate] = "codes"

    @classmethod
    def load(cls, manifest: Manifest, directory: Path, loading: Loading) -> ModelParts:
        """The flat family's two graphs, and the codebook and the PixelCNN prior (warmed, behind
        an unbatched runner)."""
        parts = super().load(manifest, directory, loading)
        settings, grid = loading.settings, (manifest.grid[0], manifest.grid[1])
        vq = load_vq_parts(
            directory,
            grid,
            lambda path: prior_graph(path, settings),
            lambda prior: loading.runner(prior, "prior"),
        )
        for rows in sorted({1, settings.max_batch_size}):
            vq.prior.warm(rows, grid)
        return replace(parts, vq=vq)

    @property
    def vq(self) -> VQParts:
        """The codebook, the grid and the prior's runner."""
        assert self.model.vq is not None  # the registry loads them for this kind
        return self.model.vq

    async def encode_images(
        self, images: FloatArray, labels: np.ndarray | None, call: EncodeCall
    ) -> Encoding:
        """Per image its code grid and z_e, straight from the encoder (not cached: the cache
        holds Gaussian posteriors)."""
        if call.samples:
            raise InvalidRequest("a vqvae's encoder is deterministic: leave out 'samples'")
        z_e, codes = await self._z_e(images, self.service.deadline())
        return CodeEncoding("npy" if call.accepts.npy else "json", codes, z_e)

    async def _z_e(self, images: FloatArray, deadline: float) -> tuple[FloatArray, CodeArray]:
        packed = self.model.encoder.pack(canonical_pixels(images))
        out = await self.model.encode_runner.submit(packed, deadline)
        z_e = out["z_e"]
        return z_e.reshape(len(z_e), -1), out["codes"].astype(np.int64)

    def latents_of(self, source: LatentSource) -> FloatArray:
        """Latents, or code grids (JSON `codes`, or an integer .npy) as their codebook vectors."""
        if isinstance(source, NpyArray) and source.array.dtype.kind in "iu":
            return self.codes_to_latents(source.array)
        return super().latents_of(source)

    def codes_to_latents(self, codes: Any) -> FloatArray:
        """Code grids [N,h,w] -> decoder inputs [N, D*h*w]."""
        return self.vq.latents(code_batch(codes, self.manifest))

    def codes_of(self, path: FloatArray) -> CodeArray | None:
        """The codes the decoder quantizes each latent of a path to."""
        return self.vq.nearest(path)

    async def image_latent(
        self, images: FloatArray, label: int | None, deadline: float
    ) -> FloatArray:
        """An image's z_e: an interpolation walks the latents before quantization."""
        z_e, _ = await self._z_e(images, deadline)
        return z_e[0]

    async def sample(self, call: SampleCall) -> Drawn:
        """`n` code grids from the PixelCNN prior (logits divided by temperature; the most
        likely codes at 0), their codebook vectors and images, and the seed used."""
        require_prior(self.manifest)
        self.label_index(call.label)
        seed = call.seed
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        deadline = self.service.deadline()
        rng = np.random.default_rng(seed)
        codes = await self.vq.sample(call.n, call.temperature, rng, deadline)
        z = self.vq.latents(codes)
        return Drawn(z, await self.images_of(z, None, deadline), seed, codes)

"""The ladder family (kind hvae): two Gaussian layers. The latent a client sees is the top one
[D]; the decoder also takes the lower layer's noise [noise_dim] (zeros, the layer's mean, unless
sampling draws it too), and /encode with layers "all" gives the lower layer's posterior as well."""

from __future__ import annotations

import numpy as np

from app.arrays import FloatArray
from app.serving.adapters.gaussian import GaussianAdapter
from app.serving.adapters.requests import EncodeCall
from app.serving.adapters.results import Encoding, LayersEncoding
from app.serving.imaging import canonical_pixels


class LadderAdapter(GaussianAdapter):
    """hvae: a flat Gaussian model whose decoder also takes the lower layer's noise."""

    async def encode_images(
        self, images: FloatArray, labels: np.ndarray | None, call: EncodeCall
    ) -> Encoding:
        """The top layer's posterior (cached), or with layers "all" both layers straight from
        the graph (not cached)."""
        if call.layers != "all":
            return await super().encode_images(images, labels, call)
        packed = self.model.encoder.pack(canonical_pixels(images), labels)
        out = await self.model.encode_runner.submit(packed, self.service.deadline())
        return LayersEncoding(
            "json", out["mu"], out["logvar"], out["mu_bottom"], out["logvar_bottom"]
        )

    def decoder_input(self, z: FloatArray, noise: FloatArray | None) -> FloatArray:
        """The top latents with the lower layer's noise beside them (zeros when None)."""
        extra = self.manifest.noise_dim
        fill = np.zeros((len(z), extra), np.float32) if noise is None else noise
        return np.concatenate([z, fill], axis=1)

    def prior_width(self) -> int:
        """The top layer's D and the lower layer's noise: sampling is ancestral."""
        return self.manifest.latent_dim + self.manifest.noise_dim

"""The flat Gaussian family (kinds vae, cvae): a latent vector [D] per image, a Gaussian posterior
(cached by the image's pixels), a standard normal prior, and a class label for a conditional
model. Images are of the model's own size; raw tensors and image files are for spatial models."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from app.arrays import FloatArray
from app.repository.manifest import Manifest
from app.serving.adapters.base import Loading, ModelAdapter, refuse_video, require_prior
from app.serving.adapters.errors import InvalidCodes, InvalidRequest, check_count
from app.serving.adapters.inputs import (
    check_finite_output,
    check_label,
    image_batch,
    label_column,
    latent_batch,
    npy_images,
)
from app.serving.adapters.requests import (
    Base64Images,
    CodesPoint,
    DecodeCall,
    EncodeCall,
    Endpoint,
    ImageFile,
    ImageSource,
    LatentPoint,
    LatentSource,
    ListImages,
    NestedLatents,
    NpyArray,
    RawTensor,
    SampleCall,
    VideoFile,
)
from app.serving.adapters.results import Decoded, Drawn, Encoding, Form, GaussianEncoding, sigma_of
from app.serving.cache.memory import LatentCache, pixel_digest
from app.serving.engine_choice import FlatGate
from app.serving.flat_graphs import load_flat_graphs
from app.serving.imaging import canonical_pixels
from app.serving.inference import CachedMoments
from app.serving.latents import sample_prior
from app.serving.loaded import ModelParts

FORMATS = ("png", "array", "npy")


class GaussianAdapter(ModelAdapter):
    """vae and cvae: encode (cached), decode, sample and interpolate over a flat latent."""

    GATE: ClassVar[FlatGate] = "iwae"
    """How a lower precision is judged against fp32 for this family (`flat_graphs`)."""

    @classmethod
    def load(cls, manifest: Manifest, directory: Path, loading: Loading) -> ModelParts:
        """encoder.onnx and decoder.onnx (with a label input for a conditional model), each on
        the engine and precision chosen for it, warmed at one row and at a full batch, each
        behind a micro-batcher."""
        settings = loading.settings
        encoder, decoder = load_flat_graphs(manifest, directory, settings, cls.GATE)
        # Warm-up: the first run of a session allocates its buffers; do it before traffic does.
        for rows in sorted({1, settings.max_batch_size}):
            encoder.warm(rows)
            decoder.warm(rows)
        return ModelParts(
            manifest,
            directory,
            encoder,
            decoder,
            loading.runner(encoder, "encoder"),
            loading.runner(decoder, "decoder"),
        )

    def label_index(self, label: int | None) -> int | None:
        """The graph's class index: required by a conditional model, refused by any other."""
        return check_label(label, self.manifest)

    def _flat_images(self, source: ImageSource) -> None:
        """Images as this family takes them (JSON or a .npy), or what to send instead."""
        if isinstance(source, VideoFile):
            raise refuse_video(self.manifest)
        if isinstance(source, ImageFile):
            raise InvalidRequest(
                f"model {self.manifest.name} has a flat latent and takes images as JSON "
                '({"images": ["<base64 PNG>"]}) or as a .npy array (Content-Type: '
                "application/x-npy); an image file as the whole body is for spatial models"
            )
        self._flat_only(source)

    def _flat_only(self, source: ImageSource | LatentSource) -> None:
        if isinstance(source, RawTensor | ImageFile):
            raise InvalidRequest(
                f"model {self.manifest.name} has a flat latent: send JSON or application/x-npy"
            )

    def read_images(self, source: ImageSource) -> FloatArray:
        """Images of the model's size as float32 [N,C,H,W] in [0,1]."""
        self._flat_images(source)
        if isinstance(source, Base64Images):
            return image_batch(source.texts, None, self.manifest)
        if isinstance(source, ListImages):
            return image_batch(None, source.values, self.manifest)
        assert isinstance(source, NpyArray)  # _flat_only refused the others
        return npy_images(source.array, self.manifest)

    async def encode(self, call: EncodeCall) -> Encoding:
        """Images -> per image mu, sigma, whether the cache answered (and `samples` z draws)."""
        self._flat_images(call.images)
        label = self.label_index(call.label)
        images = self.read_images(call.images)
        check_count(len(images), self.settings.max_items, "image")
        return await self.encode_images(images, label_column(label, len(images)), call)

    async def encode_images(
        self, images: FloatArray, labels: np.ndarray | None, call: EncodeCall
    ) -> Encoding:
        """The posterior of checked images (the cache first)."""
        moments = await self.posterior(images, labels, self.service.deadline())
        mu, sigma = moments.mean, sigma_of(moments.logvar)
        draws = None
        if call.samples and not call.accepts.npy:
            eps = np.random.default_rng(call.seed).standard_normal(
                (len(images), call.samples, sigma.shape[1]), dtype=np.float32
            )
            draws = mu[:, None] + sigma[:, None] * eps
        form: Form = "npy" if call.accepts.npy else "json"
        return GaussianEncoding(form, mu, sigma, moments.cached, draws)

    async def posterior(
        self, images: FloatArray, labels: np.ndarray | None, deadline: float
    ) -> CachedMoments:
        """(mu, logvar) [N,D] of images: the cache first (keyed by the pixels and the label),
        the encoder for the misses; identical images in flight are encoded once."""
        images = canonical_pixels(images)
        keys = [
            LatentCache.key(self.manifest, pixel_digest(image, _label(labels, i)))
            for i, image in enumerate(images)
        ]

        async def compute(rows: list[int]) -> tuple[FloatArray, FloatArray]:
            packed = self.model.encoder.pack(images[rows], None if labels is None else labels[rows])
            out = await self.model.encode_runner.submit(packed, deadline)
            return out["mu"], out["logvar"]

        return await self.service.moments(keys, self.manifest.latent_dim, compute)

    async def decode(self, call: DecodeCall) -> Decoded:
        """Latent vectors (JSON or .npy) -> images as png, array or npy."""
        self._flat_only(call.latents)
        label = self.label_index(call.label)
        z = self.latents_of(call.latents)
        check_count(len(z), self.settings.max_items, "latent")
        fmt = _format(call)
        images = await self.images_of(z, label, self.service.deadline())
        return Decoded(images, fmt)

    def latents_of(self, source: LatentSource) -> FloatArray:
        """Decoder inputs [N,D] from latent vectors (or, for a family with codes, code grids)."""
        if isinstance(source, NestedLatents):
            if source.codes is not None:
                return self.codes_to_latents(source.codes)
            return latent_batch(source.latents, self.manifest)
        assert isinstance(source, NpyArray)  # _flat_only refused the others
        return latent_batch(source.array, self.manifest)

    def codes_to_latents(self, codes: object) -> FloatArray:
        """Code grids -> decoder inputs; InvalidCodes for a model without a codebook."""
        raise InvalidCodes(f"model {self.manifest.name} has no codebook: send 'latents'")

    async def images_of(
        self, z: FloatArray, label: int | None, deadline: float, noise: FloatArray | None = None
    ) -> FloatArray:
        """x_mean [N,C,H,W] in [0,1] for latents [N,D] (of class index `label`)."""
        rows = self.model.decoder.pack(self.decoder_input(z, noise), label_column(label, len(z)))
        out = await self.model.decode_runner.submit(rows, deadline)
        return check_finite_output(out["x_mean"])

    def decoder_input(self, z: FloatArray, noise: FloatArray | None) -> FloatArray:
        """What the decoder graph takes for latents z (the latents themselves here)."""
        return z

    def prior_width(self) -> int:
        """How many standard normal numbers one draw from the prior takes (D here)."""
        return self.manifest.latent_dim

    async def sample(self, call: SampleCall) -> Drawn:
        """`n` draws from N(0, temperature^2 I), decoded, with the seed that reproduces them."""
        require_prior(self.manifest)
        label = self.label_index(call.label)
        dim = self.manifest.latent_dim
        drawn, seed = sample_prior(call.n, self.prior_width(), call.temperature, call.seed)
        z, noise = np.ascontiguousarray(drawn[:, :dim]), np.ascontiguousarray(drawn[:, dim:])
        images = await self.images_of(
            z, label, self.service.deadline(), noise if noise.size else None
        )
        return Drawn(z, images, seed)

    async def endpoint(self, end: Endpoint, label: int | None, deadline: float) -> FloatArray:
        """A latent end as given, code grids as their vectors, an image as its posterior mean."""
        if isinstance(end, LatentPoint):
            return latent_batch([end.value], self.manifest)[0]
        if isinstance(end, CodesPoint):
            return self.codes_to_latents([end.value])[0]
        return await self.image_latent(self.read_images(end), label, deadline)

    async def image_latent(
        self, images: FloatArray, label: int | None, deadline: float
    ) -> FloatArray:
        """The latent an interpolation takes for one image [1,C,H,W]: its posterior mean."""
        moments = await self.posterior(images, label_column(label, 1), deadline)
        return moments.mean[0]


def _format(call: DecodeCall) -> str:
    """png, array or npy: a JSON body's `format` (png becomes npy for a client that accepts
    .npy), else the query's, else npy for a client that accepts it, else png."""
    if isinstance(call.latents, NestedLatents):
        asked = call.format or "png"
        fmt = "npy" if call.accepts.npy and asked == "png" else asked
    else:
        fmt = call.format if call.format is not None else "npy" if call.accepts.npy else "png"
    if fmt not in FORMATS:
        raise InvalidRequest("format must be png, array or npy")
    return fmt


def _label(labels: np.ndarray | None, index: int) -> int | None:
    return None if labels is None else int(labels[index])

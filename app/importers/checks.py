"""Checks an imported graph pair must pass before it is published: the files are the ones the
manifest names (sha256), and a trial run at sizes the model takes gives latents and images of the
shapes, dtypes and value range the manifest declares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.arrays import FloatArray
from app.repository.manifest import Manifest, SpatialSpec
from app.runtime.sessions import cpu_session
from app.storage.files import sha256_of

GRAPHS = ("encoder.onnx", "decoder.onnx")
_NUMPY = {"float32": np.float32, "float16": np.float16}


class ImportRefused(ValueError):
    """The graphs or their manifest failed a check; nothing was published."""


def check_hashes(directory: Path, expected: dict[str, str]) -> None:
    """ImportRefused when a file the manifest hashes differs from its hash (a tampered or
    damaged graph)."""
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise ImportRefused(f"the manifest lists {name}, which is not there")
        actual = sha256_of(path)
        if actual != digest:
            raise ImportRefused(
                f"{name} has sha256 {actual[:12]}..., the manifest says {digest[:12]}...: "
                "the graph was changed after its manifest was written"
            )


@dataclass
class GraphPair:
    """An encoder and a decoder in ONNX Runtime, fed and read as float32."""

    encoder: ort.InferenceSession
    decoder: ort.InferenceSession
    manifest: Manifest

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> GraphPair:
        """Both graphs of `directory` on the CPU."""
        try:
            sessions = [cpu_session(directory / name) for name in GRAPHS]
        except Exception as error:  # ORT raises its own types for unreadable graphs
            raise ImportRefused(f"ONNX Runtime cannot load the graphs: {error}") from None
        return cls(sessions[0], sessions[1], manifest)

    def encode(self, x: FloatArray) -> dict[str, FloatArray]:
        """Encoder outputs by name (mu, and logvar when the encoder gives one)."""
        dtype = _NUMPY[self.manifest.dtypes.encoder]
        name = self.encoder.get_inputs()[0].name
        outputs = self.encoder.run(None, {name: x.astype(dtype)})
        names = [o.name for o in self.encoder.get_outputs()]
        return {n: np.asarray(v, np.float32) for n, v in zip(names, outputs, strict=True)}

    def decode(self, z: FloatArray) -> FloatArray:
        """Decoder output (images in the manifest's value range)."""
        dtype = _NUMPY[self.manifest.dtypes.decoder]
        name = self.decoder.get_inputs()[0].name
        return np.asarray(self.decoder.run(None, {name: z.astype(dtype)})[0], np.float32)


def trial_sizes(spec: SpatialSpec, manifest: Manifest) -> list[tuple[int, int]]:
    """Two sizes to try: the smallest square the model takes, and a non-square one."""
    if not spec.free_size:
        return [(manifest.image.height, manifest.image.width)]
    small = max(spec.min_size, spec.downscale)
    small = -(-small // spec.downscale) * spec.downscale
    return [(small, small), (small + spec.downscale, small + 2 * spec.downscale)]


def trial_run(pair: GraphPair, seed: int = 0) -> dict[str, float]:
    """Runs both graphs at the trial sizes on a batch of two; ImportRefused when an output has
    the wrong shape, is not finite, or (the decoder) leaves the value range by far."""
    manifest = pair.manifest
    spec = manifest.spatial
    if spec is None:
        raise ImportRefused("an imported autoencoder's manifest needs `spatial`")
    rng = np.random.default_rng(seed)
    low, high = manifest.value_range
    worst_range = 0.0
    for height, width in trial_sizes(spec, manifest):
        x = rng.uniform(low, high, (2, manifest.image.channels, height, width)).astype(np.float32)
        try:
            encoded = pair.encode(x)
        except Exception as error:
            raise ImportRefused(f"the encoder failed on {width}x{height}: {error}") from None
        latent = (2, *spec.latent_shape(height, width))
        if "mu" not in encoded:
            raise ImportRefused(f"the encoder must output `mu`, it gives {sorted(encoded)}")
        for name, value in encoded.items():
            if name in {"mu", "logvar"} and value.shape != latent:
                raise ImportRefused(
                    f"encoder output {name} is {list(value.shape)} for a {width}x{height} "
                    f"image, the manifest says {list(latent)}"
                )
            if not np.isfinite(value).all():
                raise ImportRefused(f"encoder output {name} is not finite")
        try:
            images = pair.decode(encoded["mu"])
        except Exception as error:
            raise ImportRefused(f"the decoder failed on {list(latent)}: {error}") from None
        if images.shape != x.shape:
            raise ImportRefused(
                f"the decoder gives {list(images.shape)} for latents {list(latent)}, "
                f"expected {list(x.shape)}"
            )
        if not np.isfinite(images).all():
            raise ImportRefused("the decoder's images are not finite")
        outside = max(float(low - images.min()), float(images.max() - high), 0.0)
        worst_range = max(worst_range, outside)
    if worst_range > 0.5 * (high - low):
        raise ImportRefused(
            f"decoded values leave the declared range {list(manifest.value_range)} by "
            f"{worst_range:.2f}: check value_range"
        )
    return {"range_overshoot": worst_range}

"""The tensors a model's adapter takes and gives, named and shaped as the Open Inference
Protocol's model metadata lists them (`app/api/oip.py` serves them): per family, what its encoder
and decoder graphs take through the adapter (not the raw ONNX graphs' own inputs: the adapter
packs labels and noise itself). -1 is a free size (the batch, a spatial model's free sides).

- decoder: in `z` FP32 [-1, D] or [-1, C, h, w], a conditional model's `label` INT64 [-1], a VQ
  model's `codes` INT64 [-1, h, w] (instead of `z`); out `arrays` FP32 [-1, C, H, W] in [0, 1] and
  `images` BYTES [-1] (base64 PNGs).
- encoder: in `arrays` FP32 [-1, C, H, W] in [0, 1] (or UINT8 0..255) or `images` BYTES [-1] (PNG
  or JPEG files), and `label`; out what /encode gives per image (`mu`, `sigma`; a ladder's
  `mu_bottom`, `sigma_bottom`; a VQ model's `codes` and `z_e`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.repository.store import ModelNotFound
from app.serving.adapters.base import ModelAdapter
from app.serving.adapters.codes import CodeAdapter
from app.serving.adapters.ladder import LadderAdapter
from app.serving.adapters.spatial import SpatialAdapter
from app.serving.adapters.video import VideoAdapter

Graph = Literal["encoder", "decoder"]
GRAPHS: tuple[Graph, ...] = ("encoder", "decoder")
_FLOATS = ("FP16", "FP64")


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: its name, datatype and shape (-1: any size); `accepts` the other
    datatypes an input is taken in."""

    name: str
    datatype: str
    shape: list[int]
    accepts: tuple[str, ...] = ()

    def metadata(self) -> dict[str, Any]:
        """The protocol's `metadata_tensor`."""
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass(frozen=True)
class Signature:
    """A graph's inputs and outputs as the adapter serves them."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def input_names(self) -> list[str]:
        """The inputs' names, in order."""
        return [spec.name for spec in self.inputs]


def _image_shape(adapter: ModelAdapter) -> list[int]:
    manifest = adapter.manifest
    channels, height, width = manifest.image.shape
    if manifest.spatial is not None and manifest.spatial.free_size:
        return [-1, channels, -1, -1]
    return [-1, channels, height, width]


def _latent_shape(adapter: ModelAdapter) -> list[int]:
    manifest = adapter.manifest
    spatial = manifest.spatial
    if spatial is not None and spatial.free_size:
        return [-1, spatial.latent_channels, -1, -1]
    return [-1, *manifest.latent_shape]


def _encoder_outputs(adapter: ModelAdapter) -> list[TensorSpec]:
    manifest, latent = adapter.manifest, _latent_shape(adapter)
    if isinstance(adapter, CodeAdapter):
        return [
            TensorSpec("codes", "INT64", [-1, *manifest.grid]),
            TensorSpec("z_e", "FP32", [-1, manifest.latent_dim]),
        ]
    outputs = [TensorSpec("mu", "FP32", latent)]
    deterministic = "logvar" not in adapter.model.encoder.graph.output_names
    if not (isinstance(adapter, SpatialAdapter) and deterministic):
        outputs.append(TensorSpec("sigma", "FP32", latent))
    if isinstance(adapter, LadderAdapter):
        outputs += [TensorSpec(name, "FP32", [-1, -1]) for name in ("mu_bottom", "sigma_bottom")]
    return outputs


def signature(adapter: ModelAdapter, graph: Graph) -> Signature:
    """The inputs and outputs of the model's encoder or decoder as its adapter serves them;
    ModelNotFound for a video model, whose clips the protocol's routes do not serve."""
    if isinstance(adapter, VideoAdapter):
        name = adapter.manifest.name
        raise ModelNotFound(
            f"model {name} is a video model: the Open Inference Protocol routes serve image "
            f"models' graphs only; decode and encode its clips with POST /decode and /encode "
            f"(or /remote/{name}/decode)"
        )
    label = [TensorSpec("label", "INT64", [-1], ("INT32",))] if adapter.manifest.conditional else []
    image = _image_shape(adapter)
    if graph == "decoder":
        inputs = [TensorSpec("z", "FP32", _latent_shape(adapter), _FLOATS), *label]
        if isinstance(adapter, CodeAdapter):
            inputs.append(TensorSpec("codes", "INT64", [-1, *adapter.manifest.grid], ("INT32",)))
        outputs = [TensorSpec("arrays", "FP32", image), TensorSpec("images", "BYTES", [-1])]
        return Signature(inputs, outputs)
    inputs = [
        TensorSpec("arrays", "FP32", image, (*_FLOATS, "UINT8")),
        TensorSpec("images", "BYTES", [-1]),
        *label,
    ]
    return Signature(inputs, _encoder_outputs(adapter))

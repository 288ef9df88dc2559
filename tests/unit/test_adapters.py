"""The kind families' adapters (app/serving/adapters), each over small fakes of its graphs: a
runner that records the rows it was given and answers with a function of them. What a family
reads, what it refuses, what it answers; and the table that picks a family for every kind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.repository.kinds import KINDS
from app.repository.manifest import ImageSpec, Manifest, SpatialSpec
from app.serving.adapters import ADAPTERS, adapter_for
from app.serving.adapters.base import ModelAdapter
from app.serving.adapters.codes import CodeAdapter
from app.serving.adapters.errors import (
    InvalidCodes,
    InvalidLabel,
    InvalidRequest,
    LatentsExpected,
    PriorNotMeaningful,
    TooLarge,
)
from app.serving.adapters.gaussian import GaussianAdapter
from app.serving.adapters.ladder import LadderAdapter
from app.serving.adapters.requests import (
    Accepts,
    CodesPoint,
    DecodeCall,
    EncodeCall,
    ImageFile,
    InterpolateCall,
    LatentPoint,
    ListImages,
    NestedLatents,
    NpyArray,
    RawTensor,
    SampleCall,
)
from app.serving.adapters.results import CodeEncoding, GaussianEncoding, GridEncoding
from app.serving.adapters.spatial import SpatialAdapter
from app.serving.cache.memory import LatentCache, MemoryBackend
from app.serving.imaging import ImageError
from app.serving.inference import InferenceService
from app.serving.packing import PackedGraph
from app.serving.vq import VQParts

Outputs = dict[str, np.ndarray]


class RecordingRunner:
    """Answers each submitted batch with `answer(rows)` and records the rows."""

    def __init__(self, answer: Callable[[np.ndarray], Outputs]) -> None:
        self.answer = answer
        self.batches: list[np.ndarray] = []

    async def submit(self, rows: np.ndarray, deadline: float | None) -> Outputs:
        self.batches.append(rows.copy())
        return self.answer(rows)


@dataclass
class FakeGraph:
    """The graph's output names (a deterministic encoder: no logvar), engine and precision."""

    output_names: tuple[str, ...] = ("mu",)
    engine: str = "onnxruntime"
    precision: str = "fp32"


@dataclass
class FakeParts:
    """A loaded version's parts, with recording runners in front of no graph."""

    manifest: Manifest
    encode_runner: RecordingRunner
    decode_runner: RecordingRunner
    vq: VQParts | None = None
    encoder: PackedGraph = field(init=False)
    decoder: PackedGraph = field(init=False)

    def __post_init__(self) -> None:
        m = self.manifest
        graph: Any = FakeGraph()  # packing never runs the graph
        self.encoder = PackedGraph(graph, m.image.shape, m.conditional)
        self.decoder = PackedGraph(graph, (m.latent_dim + m.noise_dim,), m.conditional)


def manifest(kind: str = "vae", **fields: Any) -> Manifest:
    values: dict[str, Any] = {
        "name": "m", "version": 1, "kind": kind, "latent_dim": 2, "likelihood": "bernoulli",
        "image": ImageSpec(height=2, width=2, channels=1), "created_at": "now", **fields,
    }  # fmt: skip
    return Manifest(**values)


def service(**settings: Any) -> InferenceService:
    config = Settings(_env_file=None, **settings)  # type: ignore[call-arg]
    return InferenceService(LatentCache(MemoryBackend(100), 60), config)


def gaussian_runners() -> tuple[RecordingRunner, RecordingRunner]:
    """An encoder giving mu = the mean pixel, logvar 0; a decoder giving its input's mean."""

    def encode(rows: np.ndarray) -> Outputs:
        mu = np.repeat(rows.reshape(len(rows), -1).mean(axis=1, keepdims=True), 2, axis=1)
        return {"mu": mu.astype(np.float32), "logvar": np.zeros_like(mu, np.float32)}

    def decode(rows: np.ndarray) -> Outputs:
        value = np.clip(rows.mean(axis=1), 0, 1)
        return {"x_mean": np.broadcast_to(value[:, None, None, None], (len(rows), 1, 2, 2))}

    return RecordingRunner(encode), RecordingRunner(decode)


def flat(kind: str = "vae", adapter: type[GaussianAdapter] = GaussianAdapter, **fields: Any) -> Any:
    encode, decode = gaussian_runners()
    return adapter(FakeParts(manifest(kind, **fields), encode, decode), service())


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# ---- the table ---------------------------------------------------------------------------------
def test_every_kind_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(KINDS)
    assert all(issubclass(adapter_for(kind), ModelAdapter) for kind in KINDS)


def test_an_unknown_kind_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="'gan'"):
        adapter_for("gan")


# ---- flat Gaussian -----------------------------------------------------------------------------
def test_a_flat_model_encodes_images_and_the_second_time_the_cache_answers() -> None:
    adapter = flat()
    call = EncodeCall(ListImages([[[0.5, 0.5], [0.5, 0.5]]]))
    first, second = run(adapter.encode(call)), run(adapter.encode(call))
    assert isinstance(first, GaussianEncoding) and first.form == "json"
    assert first.mu.tolist() == [[0.5, 0.5]] and first.sigma.tolist() == [[1.0, 1.0]]
    assert first.cached == [False] and second.cached == [True]
    assert len(adapter.model.encode_runner.batches) == 1


def test_a_flat_encoding_for_a_npy_client_is_mu_and_sigma_stacked() -> None:
    call = EncodeCall(NpyArray(np.ones((3, 2, 2), np.float32)), accepts=Accepts(npy=True))
    encoding = run(flat().encode(call))
    assert encoding.form == "npy" and encoding.tensor().shape == (3, 2, 2)


def test_a_flat_model_refuses_raw_tensors_and_image_files() -> None:
    adapter = flat()
    with pytest.raises(InvalidRequest, match="flat latent"):
        run(adapter.encode(EncodeCall(ImageFile(b"png"))))
    with pytest.raises(InvalidRequest, match="flat latent"):
        run(adapter.decode(DecodeCall(RawTensor(b"", ["1", "2"]))))


def test_a_flat_model_decodes_latents_and_picks_npy_for_a_npy_client() -> None:
    adapter = flat()
    decoded = run(adapter.decode(DecodeCall(NestedLatents([[0.2, 0.4]]), format="png")))
    assert decoded.format == "png" and decoded.images.shape == (1, 1, 2, 2)
    assert np.allclose(decoded.images, 0.3)
    asked = DecodeCall(NpyArray(np.zeros((2, 2), np.float32)), accepts=Accepts(npy=True))
    assert run(adapter.decode(asked)).format == "npy"


def test_a_flat_model_refuses_formats_it_does_not_give_and_codes() -> None:
    adapter = flat()
    with pytest.raises(InvalidRequest, match="png, array or npy"):
        run(adapter.decode(DecodeCall(NestedLatents([[0.0, 0.0]]), format="jpeg")))
    with pytest.raises(InvalidCodes, match="no codebook"):
        run(adapter.decode(DecodeCall(NestedLatents(None, [[[0]]]), format="png")))


def test_too_many_latents_are_too_large() -> None:
    adapter = GaussianAdapter(FakeParts(manifest(), *gaussian_runners()), service(max_items=2))
    with pytest.raises(TooLarge):
        run(adapter.decode(DecodeCall(NestedLatents([[0.0, 0.0]] * 3), format="png")))


def test_a_conditional_model_needs_a_label_and_sends_its_index_with_every_row() -> None:
    adapter = flat("cvae", label_values=[3, 7])
    with pytest.raises(InvalidLabel, match="conditional"):
        run(adapter.decode(DecodeCall(NestedLatents([[0.0, 0.0]]), format="png")))
    run(adapter.decode(DecodeCall(NestedLatents([[0.0, 0.0]] * 2), label=7, format="png")))
    assert adapter.model.decode_runner.batches[0][:, -1].tolist() == [1.0, 1.0]


def test_sampling_is_reproducible_by_its_seed() -> None:
    adapter = flat()
    first = run(adapter.sample(SampleCall(3, seed=5)))
    again = run(adapter.sample(SampleCall(3, seed=5)))
    assert first.seed == 5 and np.array_equal(first.latents, again.latents)


def test_interpolating_walks_from_one_latent_to_the_other() -> None:
    call = InterpolateCall(LatentPoint([0.0, 0.0]), LatentPoint([1.0, 1.0]), 3, "lerp")
    drawn = run(flat().interpolate(call))
    assert drawn.latents.tolist() == [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]] and drawn.codes is None


# ---- ladder -------------------------------------------------------------------------------------
def test_a_ladder_model_decodes_with_zero_noise_and_samples_the_noise_too() -> None:
    adapter = flat("hvae", LadderAdapter, noise_dim=3)
    run(adapter.decode(DecodeCall(NestedLatents([[0.5, 0.5]]), format="png")))
    assert adapter.model.decode_runner.batches[0].tolist() == [[0.5, 0.5, 0.0, 0.0, 0.0]]
    drawn = run(adapter.sample(SampleCall(2, seed=1)))
    assert drawn.latents.shape == (2, 2) and adapter.model.decode_runner.batches[1][:, 2:].any()


# ---- vq -----------------------------------------------------------------------------------------
def vq_adapter() -> CodeAdapter:
    def encode(rows: np.ndarray) -> Outputs:
        n = len(rows)
        return {"z_e": np.ones((n, 1, 2, 1), np.float32), "codes": np.ones((n, 2, 1), np.int64)}

    _, decode = gaussian_runners()
    m = manifest("vqvae", grid=[2, 1], codebook_size=2, embedding_dim=1)
    codebook = np.array([[0.0], [1.0]], np.float32)
    parts = FakeParts(m, RecordingRunner(encode), decode)
    parts.vq = VQParts(codebook, (2, 1), None, None)  # type: ignore[arg-type]
    return CodeAdapter(parts, service())


def test_a_vq_model_encodes_to_codes_and_refuses_samples() -> None:
    adapter = vq_adapter()
    encoding = run(adapter.encode(EncodeCall(ListImages([[[0.0, 1.0], [1.0, 0.0]]]))))
    assert isinstance(encoding, CodeEncoding) and encoding.codes.tolist() == [[[1], [1]]]
    with pytest.raises(InvalidRequest, match="deterministic"):
        run(adapter.encode(EncodeCall(ListImages([[[0.0, 1.0], [1.0, 0.0]]]), samples=2)))


def test_a_vq_model_decodes_code_grids_and_an_integer_npy_as_codes() -> None:
    adapter = vq_adapter()
    run(adapter.decode(DecodeCall(NestedLatents(None, [[[1], [0]]]), format="png")))
    run(adapter.decode(DecodeCall(NpyArray(np.array([[[0], [1]]])))))
    assert [b.tolist() for b in adapter.model.decode_runner.batches] == [[[1.0, 0.0]], [[0.0, 1.0]]]


def test_a_vq_interpolation_names_the_codes_of_its_path() -> None:
    call = InterpolateCall(CodesPoint([[0], [0]]), CodesPoint([[1], [1]]), 3, "lerp")
    drawn = run(vq_adapter().interpolate(call))
    assert drawn.codes is not None and drawn.codes[0].tolist() == [[0], [0]]


# ---- spatial ------------------------------------------------------------------------------------
def spatial_adapter() -> SpatialAdapter:
    def encode(rows: np.ndarray) -> Outputs:
        return {"mu": rows[:, :, ::2, ::2] * 2}  # a deterministic encoder (no logvar)

    def decode(rows: np.ndarray) -> Outputs:
        return {"sample": rows.repeat(2, axis=2).repeat(2, axis=3) / 2}

    spec = SpatialSpec(latent_channels=1, downscale=2, min_size=2)
    m = manifest("autoencoder", latent_dim=1, spatial=spec, value_range=(-1.0, 1.0),
                 prior_meaningful=False)  # fmt: skip
    parts = FakeParts(m, RecordingRunner(encode), RecordingRunner(decode))
    return SpatialAdapter(parts, service())


def test_a_spatial_model_encodes_images_of_any_allowed_size_to_latent_grids() -> None:
    images = NpyArray(np.full((1, 1, 4, 6), 0.75, np.float32))
    encoding = run(spatial_adapter().encode(EncodeCall(images)))
    assert isinstance(encoding, GridEncoding) and encoding.mean.shape == (1, 1, 2, 3)
    assert encoding.sigma is None and np.allclose(encoding.mean, 1.0)  # 0.75 is 0.5 in [-1, 1]


def test_a_spatial_model_reads_raw_tensors_and_answers_an_image_file_when_accepted() -> None:
    z = np.zeros((1, 1, 2, 2), np.float32).tobytes()
    call = DecodeCall(RawTensor(z, ["1", "1", "2", "2"]), accepts=Accepts(png=True))
    decoded = run(spatial_adapter().decode(call))
    assert decoded.format == "png" and decoded.file and decoded.images.shape == (1, 1, 4, 4)
    assert np.allclose(decoded.images, 0.5) and np.allclose(decoded.raw_output, 0.0)


def test_a_spatial_model_refuses_an_image_to_decode_a_label_and_sampling() -> None:
    adapter = spatial_adapter()
    with pytest.raises(LatentsExpected):
        run(adapter.decode(DecodeCall(ImageFile(b"png"))))
    with pytest.raises(InvalidRequest, match="only 'latents'"):
        run(adapter.decode(DecodeCall(NestedLatents([[[[0.0]]]]), label=1, format="png")))
    with pytest.raises(PriorNotMeaningful):
        run(adapter.sample(SampleCall(1)))


def test_scaled_latents_are_unscaled_before_decoding_and_a_zero_scale_is_refused() -> None:
    z = np.full((1, 1, 1, 1), 2.0, np.float32).tobytes()
    call = DecodeCall(RawTensor(z, ["1", "1", "1", "1"]), scaling_factor=4.0, shift_factor=0.5)
    assert np.allclose(run(spatial_adapter().decode(call)).raw_output, 0.5)
    zero = DecodeCall(RawTensor(z, ["1", "1", "1", "1"]), scaling_factor=0.0)
    with pytest.raises(InvalidRequest, match="must not be 0"):
        run(spatial_adapter().decode(zero))


def test_a_spatial_interpolation_end_sent_as_an_image_array_of_latents_says_where_they_go() -> None:
    latent_grid = np.full((1, 2, 2), 3.0).tolist()  # a latent, sent where an image goes
    call = InterpolateCall(ListImages([latent_grid]), LatentPoint(latent_grid), 3, "lerp")
    with pytest.raises(ImageError, match=r"goes in `latent` \(in vae_client: Latent\(grid\)\)"):
        run(spatial_adapter().interpolate(call))

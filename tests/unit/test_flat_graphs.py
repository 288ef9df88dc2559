"""A flat version's graphs on the engines chosen for them, on real engines: tiny hand-made Gaussian
VAEs whose decoder is one matrix product. With a broad likelihood bf16 keeps the IWAE bound; with
a sharp one (sigma 1e-4) bf16's rounding of the latents moves it by far more than 0.1 nats and
the decoder stays fp32. And the settings alone choose when they name one engine and precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.config import Settings
from app.repository.manifest import ImageSpec, Manifest
from app.runtime.cpu import this_cpu
from app.serving.flat_graphs import load_flat_graphs, traffic_sizes

needs_bf16 = pytest.mark.skipif(
    not this_cpu().native_bf16(), reason="auto tries bf16 only on a CPU that runs it natively"
)
SIDE, LATENT = 4, 2


def _save(path: Path, nodes: list, inputs: list, outputs: list, weights: dict) -> None:
    shapes = {"shape": [-1, 1, SIDE, SIDE], "grid": [-1, 1, 1]}
    initializers = [
        numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()
    ]
    initializers += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in shapes.items()]
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _tensor(name: str, *shape: object) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])


def flat_vae(directory: Path, logscale: float) -> Manifest:
    """encoder: mu = W_e x, logvar = -4; decoder: x_mean = sigmoid(W_d z + b), and the
    log-scale `logscale` for every pixel."""
    rng = np.random.default_rng(0)
    directory.mkdir()
    pixels = SIDE * SIDE
    _save(
        directory / "encoder.onnx",
        [
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["mu"]),
            helper.make_node("MatMul", ["flat", "zero"], ["none"]),
            helper.make_node("Add", ["none", "minus4"], ["logvar"]),
        ],
        [_tensor("x", 1, SIDE, SIDE)],
        [_tensor("mu", LATENT), _tensor("logvar", LATENT)],
        {"w": rng.normal(0, 0.3, (pixels, LATENT)), "zero": np.zeros((pixels, LATENT)),
         "minus4": [-4.0]},
    )  # fmt: skip
    _save(
        directory / "decoder.onnx",
        [
            helper.make_node("MatMul", ["z", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["pre"]),
            helper.make_node("Sigmoid", ["pre"], ["flat"]),
            helper.make_node("Reshape", ["flat", "shape"], ["x_mean"]),
            helper.make_node("Mul", ["x_mean", "zero"], ["none"]),
            helper.make_node("Add", ["none", "logscale"], ["x_logscale"]),
        ],
        [_tensor("z", LATENT)],
        [_tensor("x_mean", 1, SIDE, SIDE), _tensor("x_logscale", 1, SIDE, SIDE)],
        {"w": rng.normal(0, 2.0, (LATENT, pixels)), "b": rng.normal(0, 0.5, pixels),
         "zero": [0.0], "logscale": [logscale]},
    )  # fmt: skip
    return Manifest(
        name=directory.name, version=1, latent_dim=LATENT, likelihood="gaussian",
        image=ImageSpec(height=SIDE, width=SIDE, channels=1), created_at="2026-12-06T00:00:00Z",
    )  # fmt: skip


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, models_dir=tmp_path, threads=1, max_batch_size=16, **values)  # type: ignore[call-arg,arg-type]


def test_traffic_sizes_are_full_and_partial_batches() -> None:
    assert traffic_sizes(64) == [64, 1, 7, 32, 3, 64]
    assert traffic_sizes(1) == [1, 1, 1, 1, 1, 1]


@needs_bf16
def test_bf16_keeps_a_broad_likelihoods_bound_and_misses_a_sharp_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    broad = tmp_path / "broad"
    _, decoder = load_flat_graphs(flat_vae(broad, -2.0), broad, settings, "iwae")
    assert decoder.choice is not None
    (trial,) = [t for t in decoder.choice.trials if t.spec.precision == "bf16"]
    assert trial.gate is not None and trial.gate.passed and trial.gate.value <= 0.1
    assert trial.gate.value > 0.0  # bf16 did round: the gate saw it

    sharp = tmp_path / "sharp"
    _, decoder = load_flat_graphs(flat_vae(sharp, -9.0), sharp, settings, "iwae")
    assert decoder.choice is not None and decoder.choice.spec.precision == "fp32"
    (trial,) = [t for t in decoder.choice.trials if t.spec.precision == "bf16"]
    assert trial.gate is not None and not trial.gate.passed and trial.gate.value > 0.1
    assert "openvino bf16 refused: IWAE bound shift" in decoder.choice.reason
    z = np.random.default_rng(1).standard_normal((5, LATENT)).astype(np.float32)
    assert decoder.run(decoder.pack(z))["x_mean"].shape == (5, 1, SIDE, SIDE)


def test_one_engine_and_precision_named_are_what_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, engine="onnxruntime", precision="fp32")
    directory = tmp_path / "named"
    encoder, decoder = load_flat_graphs(flat_vae(directory, -2.0), directory, settings, "iwae")
    for graph in (encoder, decoder):
        assert graph.choice is not None and graph.graph.engine == "onnxruntime"
        assert graph.choice.spec.precision == "fp32" and len(graph.choice.trials) == 1
        assert "the one the settings allow" in graph.choice.reason


def flat_vqvae(directory: Path, codes: int = 8, dim: int = 3) -> Manifest:
    """A one-cell VQ-VAE: z_e = W_e x, its nearest code by a graph ArgMin; x_mean =
    sigmoid(W_d z + b)."""
    rng = np.random.default_rng(2)
    directory.mkdir()
    codebook = rng.normal(size=(codes, dim)).astype(np.float32)
    np.save(directory / "codebook.npy", codebook)
    pixels = SIDE * SIDE
    _save(
        directory / "encoder.onnx",
        [
            helper.make_node("Flatten", ["x"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["z_e"]),
            helper.make_node("MatMul", ["z_e", "book_t"], ["dots"]),
            helper.make_node("Mul", ["dots", "minus2"], ["cross"]),
            helper.make_node("Add", ["cross", "norms"], ["distance"]),
            helper.make_node("ArgMin", ["distance"], ["nearest"], axis=1, keepdims=0),
            helper.make_node("Reshape", ["nearest", "grid"], ["codes"]),
        ],
        [_tensor("x", 1, SIDE, SIDE)],
        [_tensor("z_e", dim), helper.make_tensor_value_info("codes", TensorProto.INT64, ["N", 1, 1])],
        {"w": rng.normal(0, 0.5, (pixels, dim)), "book_t": codebook.T, "minus2": [-2.0],
         "norms": (codebook**2).sum(axis=1)},
    )  # fmt: skip
    _save(
        directory / "decoder.onnx",
        [
            helper.make_node("MatMul", ["z", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["pre"]),
            helper.make_node("Sigmoid", ["pre"], ["flat"]),
            helper.make_node("Reshape", ["flat", "shape"], ["x_mean"]),
        ],
        [_tensor("z", dim)],
        [_tensor("x_mean", 1, SIDE, SIDE)],
        {"w": rng.normal(0, 1.0, (dim, pixels)), "b": rng.normal(0, 0.5, pixels)},
    )  # fmt: skip
    return Manifest(
        name=directory.name, version=1, kind="vqvae", latent_dim=dim, likelihood="bernoulli",
        grid=[1, 1], codebook_size=codes, embedding_dim=dim,
        image=ImageSpec(height=SIDE, width=SIDE, channels=1), created_at="2026-12-06T00:00:00Z",
    )  # fmt: skip


@needs_bf16
def test_a_vqvae_is_judged_by_the_images_of_its_codes(tmp_path: Path) -> None:
    directory = tmp_path / "vq"
    manifest = flat_vqvae(directory)
    encoder, decoder = load_flat_graphs(manifest, directory, _settings(tmp_path), "codes")
    for graph in (encoder, decoder):
        assert graph.choice is not None
        (trial,) = [t for t in graph.choice.trials if t.spec.precision == "bf16"]
        assert trial.gate is not None and (trial.gate.measure, trial.gate.unit) == ("PSNR", "dB")
        assert trial.gate.passed and trial.gate.value >= 40
    codes = np.rint(encoder.run(np.zeros((2, 1, SIDE, SIDE), np.float32))["codes"])
    assert codes.shape == (2, 1, 1) and codes.min() >= 0 and codes.max() < 8

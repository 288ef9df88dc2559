"""app/runtime/openvino_graph.py: OpenVINO runs the ONNX file ONNX Runtime runs, names its
outputs the same, compiles one static shape at a time into a bounded LRU, and runs bf16 close to
fp32 on this CPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.runtime.cpu import this_cpu
from app.runtime.graph import Graph
from app.runtime.openvino_graph import OpenVinoGraph
from app.runtime.sessions import load_graph
from tests.support.paths import SHIPPED_MODELS
from tests.support.tiny_graphs import conv_graph

MNIST_DECODER = SHIPPED_MODELS / "mnist" / "1" / "decoder.onnx"
native_bf16 = pytest.mark.skipif(not this_cpu().native_bf16(), reason="no native bf16 here")


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_graph(tmp_path_factory.mktemp("graphs") / "conv.onnx")


def latents(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("which", ["conv", "mnist"])
def test_openvino_fp32_matches_onnxruntime_output_for_output(which: str, conv: Path) -> None:
    path, shape = (conv, (2, 4, 12, 20)) if which == "conv" else (MNIST_DECODER, (3, 32))
    ours, theirs = OpenVinoGraph(path, "fp32", threads=1), load_graph(path, 1)
    assert isinstance(ours, Graph)
    assert (ours.input_name, ours.input_names) == (theirs.input_name, theirs.input_names)
    assert ours.output_names == theirs.output_names and ours.input_width == theirs.input_width
    inputs = latents(shape)
    got, want = ours.run(inputs), theirs.run(inputs)
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == np.float32 and got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)
    assert (ours.engine, ours.precision, ours.device) == ("openvino", "fp32", "cpu")


def test_the_mnist_decoder_declares_its_width_on_openvino_too() -> None:
    assert OpenVinoGraph(MNIST_DECODER).input_width == 32


def test_outputs_are_the_callers_not_views_of_openvinos_buffers(conv: Path) -> None:
    graph = OpenVinoGraph(conv)
    first = graph.run(latents((1, 4, 8, 8), seed=1))["image"]
    kept = first.copy()
    graph.run(latents((1, 4, 8, 8), seed=2))  # the same shape: the same infer request reused
    np.testing.assert_array_equal(first, kept)


def test_each_shape_is_compiled_once_and_the_lru_keeps_the_last_ones(conv: Path) -> None:
    graph = OpenVinoGraph(conv, compiled_shapes=2)
    small, large, other = (1, 4, 8, 8), (1, 4, 16, 16), (1, 4, 8, 24)
    for shape in (small, large, small, small):
        graph.run(latents(shape))
    assert graph.compiles == 2
    graph.run(latents(other))  # a third shape: `large`, the least recently used, goes
    assert [dict(key)["x"] for key in graph.shapes] == [small, other]
    graph.run(latents(large))  # seen again after eviction: compiled again
    assert graph.compiles == 4 and [dict(k)["x"] for k in graph.shapes] == [other, large]


def test_a_batch_size_is_a_shape_of_its_own(conv: Path) -> None:
    graph = OpenVinoGraph(conv, compiled_shapes=4)
    one, two = graph.run(latents((1, 4, 8, 8))), graph.run(latents((2, 4, 8, 8)))
    assert one["image"].shape == (1, 3, 8, 8) and two["image"].shape == (2, 3, 8, 8)
    assert graph.compiles == 2


@pytest.mark.parametrize("release_above", [None, 0], ids=["keeping", "releasing"])
def test_calls_from_several_threads_each_get_their_own_answer(
    conv: Path, release_above: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    # Releasing after every call: the plugin refuses a release while another call runs on the
    # same shape ("busy state"), so the release waits for the last call: no refusal logged.
    graph = OpenVinoGraph(conv, compiled_shapes=2, release_above=release_above)
    reference = load_graph(conv, 1)
    shapes = [(1, 4, 128, 128), (1, 4, 64, 128)] * 12
    inputs = [latents(shape, seed) for seed, shape in enumerate(shapes)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(graph.run, inputs))
    for given, got in zip(inputs, answers, strict=True):
        np.testing.assert_allclose(got["image"], reference.run(given)["image"], atol=1e-4)
    assert graph.compiles == 2
    assert "kept a compiled model's memory" not in caplog.text


def test_a_float16_graph_takes_float32_rows_and_answers_float32(tmp_path: Path) -> None:
    half = conv_graph(tmp_path / "half.onnx", np.float16)
    full = conv_graph(tmp_path / "full.onnx", np.float32)
    inputs = latents((1, 4, 8, 8))
    got = OpenVinoGraph(half).run(inputs)["image"]
    want = load_graph(full, 1).run(inputs)["image"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-2)


@native_bf16
def test_bf16_is_close_to_fp32_but_not_identical(conv: Path) -> None:
    graph, reference = OpenVinoGraph(conv, "bf16"), load_graph(conv, 1)
    inputs = latents((1, 4, 32, 32))
    got, want = graph.run(inputs)["image"], reference.run(inputs)["image"]
    assert graph.precision == "bf16"
    difference = np.abs(got - want)
    assert 0 < difference.max() < 0.1 and difference.mean() < 0.01


@pytest.mark.skipif("FP16" not in this_cpu().capabilities, reason="OpenVINO has no fp16 here")
def test_fp16_runs_on_openvino_close_to_fp32(conv: Path) -> None:
    graph, reference = OpenVinoGraph(conv, "fp16"), load_graph(conv, 1)
    inputs = latents((1, 4, 32, 32))
    got, want = graph.run(inputs)["image"], reference.run(inputs)["image"]
    assert graph.precision == "fp16" and got.dtype == np.float32
    assert 0 < np.abs(got - want).max() < 0.02


def test_a_precision_openvino_does_not_run_is_refused(conv: Path) -> None:
    with pytest.raises(ValueError, match="fp32, bf16 or fp16"):
        OpenVinoGraph(conv, "int4")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_large_call_gives_its_working_memory_back_and_a_small_one_keeps_it(
    conv: Path,
) -> None:
    # The features alone are 8 x 1024 x 1024 float32 (32 MiB): the compiled shape holds its
    # buffers after a call until they are released.
    large = latents((1, 4, 1024, 1024))
    keeping = OpenVinoGraph(conv, threads=1, release_above=None)
    answer = keeping.run(large)["image"]
    held = rss_mb()
    assert keeping.release_memory() == 1
    freed = held - rss_mb()
    assert freed > 30
    # From `release_above` elements of an input or output (here the features, twice the input)
    # the call released them itself: nothing is left to release.
    releasing = OpenVinoGraph(conv, threads=1, release_above=2 * large.size)
    np.testing.assert_array_equal(releasing.run(large)["image"], answer)
    left = rss_mb()
    assert releasing.release_memory() == 1
    assert left - rss_mb() < freed / 4
    # Released memory is allocated again by the next call, which answers the same.
    np.testing.assert_array_equal(releasing.run(large)["image"], answer)


def test_compiled_shapes_run_at_the_threads_and_precision_asked_unpinned(conv: Path) -> None:
    graph = OpenVinoGraph(conv, "bf16", threads=1)
    graph.run(latents((1, 4, 8, 8)))
    (compiled,) = graph._compiled.values()
    assert compiled.model.get_property("INFERENCE_NUM_THREADS") == 1
    assert compiled.model.get_property("PERFORMANCE_HINT") == "LATENCY"
    assert compiled.model.get_property("ENABLE_CPU_PINNING") is False


@pytest.fixture(scope="module")
def kl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight AutoencoderKL (GroupNorm, mid-block attention) exported as ONNX."""
    from app.training.import_diffusers import export_autoencoder
    from tests.support.autoencoders import build

    directory = tmp_path_factory.mktemp("kl")
    export_autoencoder(build("kl"), "AutoencoderKL", directory, trace_size=32)
    return directory


@pytest.mark.parametrize(
    ("graph", "shapes"),
    [
        ("decoder", [(1, 4, 16, 16), (2, 4, 8, 12)]),
        ("encoder", [(1, 3, 32, 32), (1, 3, 16, 48)]),
    ],
)
def test_a_diffusers_autoencoder_runs_on_openvino_as_on_onnxruntime_at_any_shape(
    kl: Path, graph: str, shapes: list[tuple[int, ...]]
) -> None:
    path = kl / f"{graph}.onnx"
    ours, theirs = OpenVinoGraph(path, threads=1), load_graph(path, 1)
    assert ours.output_names == theirs.output_names
    for seed, shape in enumerate(shapes):
        inputs = latents(shape, seed)
        got, want = ours.run(inputs), theirs.run(inputs)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
    assert ours.compiles == len(shapes)


@native_bf16
def test_a_diffusers_decoder_in_bf16_stays_above_40_db(kl: Path) -> None:
    path = kl / "decoder.onnx"
    inputs = latents((1, 4, 16, 16))
    got = np.clip(OpenVinoGraph(path, "bf16", threads=1).run(inputs)["x"], -1, 1)
    want = np.clip(load_graph(path, 1).run(inputs)["x"], -1, 1)
    psnr = 10 * np.log10(4.0 / np.mean((got - want) ** 2))
    assert 40 <= psnr < 100, psnr  # close, and not fp32 in disguise

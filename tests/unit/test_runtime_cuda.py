"""app/runtime/cuda.py on a machine without a GPU: the CUDA provider's options checked as data,
and the same I/O binding and float16 code run on the CPU provider against a plain fp32 session,
on the shipped mnist decoder, a two-input graph and a tiny random-weight diffusers decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from app.runtime.cuda import (
    ARENA_SHRINKAGE,
    CPU_PROVIDER,
    CUDA_PROVIDER,
    CudaOptions,
    CudaUnavailable,
    IoBoundGraph,
    cuda_available,
    cuda_in_build,
    float16_model,
    load_bound_graph,
    preload_cuda_libraries,
    providers_for,
    starts_on,
)
from app.runtime.engines import EngineOptions, EngineSpec, open_graph
from app.runtime.graph import Graph
from app.runtime.sessions import cpu_session

ROOT = Path(__file__).resolve().parents[2]
MNIST_DECODER = ROOT / "models" / "mnist" / "1" / "decoder.onnx"


def reference(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of a plain fp32 CPU session, by name."""
    session = cpu_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def psnr(got: np.ndarray, want: np.ndarray, peak_to_peak: float) -> float:
    """PSNR in dB of `got` against `want` for signals spanning `peak_to_peak`."""
    mse = float(np.mean((got.astype(np.float64) - want) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak_to_peak**2 / mse)


def test_cuda_gets_the_documented_provider_options_as_strings() -> None:
    assert providers_for("cuda", CudaOptions()) == [
        (
            CUDA_PROVIDER,
            {
                "device_id": "0",
                "arena_extend_strategy": "kSameAsRequested",
                "cudnn_conv_algo_search": "EXHAUSTIVE",
                "do_copy_in_default_stream": "1",
                "cudnn_conv_use_max_workspace": "1",
            },
        ),
        CPU_PROVIDER,
    ]


def test_chosen_provider_options_are_passed_through() -> None:
    options = CudaOptions(
        device_id=1,
        arena_extend_strategy="kNextPowerOfTwo",
        cudnn_conv_algo_search="HEURISTIC",
        do_copy_in_default_stream=False,
        cudnn_conv_use_max_workspace=False,
        gpu_mem_limit=2 * 1024**3,
    )
    assert providers_for("cuda", options)[0] == (
        CUDA_PROVIDER,
        {
            "device_id": "1",
            "arena_extend_strategy": "kNextPowerOfTwo",
            "cudnn_conv_algo_search": "HEURISTIC",
            "do_copy_in_default_stream": "0",
            "cudnn_conv_use_max_workspace": "0",
            "gpu_mem_limit": str(2 * 1024**3),
        },
    )
    assert providers_for("cpu", options) == [CPU_PROVIDER]


def test_cuda_opens_on_the_gpu_or_is_refused_with_what_to_install() -> None:
    if cuda_available():
        graph = load_bound_graph(MNIST_DECODER, "fp32", "cuda")
        assert (graph.device, graph.provider) == ("cuda", CUDA_PROVIDER)
        return
    with pytest.raises(CudaUnavailable, match="onnxruntime-gpu"):
        load_bound_graph(MNIST_DECODER, "fp32", "cuda")


def test_a_provider_is_found_usable_only_when_a_session_starts_on_it() -> None:
    assert starts_on([CPU_PROVIDER], CPU_PROVIDER)
    absent = [p for p in ort.get_all_providers() if p not in ort.get_available_providers()]
    with pytest.warns(UserWarning, match=absent[0]):
        assert not starts_on([(absent[0], {}), CPU_PROVIDER], absent[0])
    if not cuda_in_build():
        assert not cuda_available()


def test_the_gpu_wheels_libraries_are_loaded_before_cuda_is_tried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_build_has_cuda = cuda_in_build()
    calls: list[str] = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA_PROVIDER, CPU_PROVIDER])
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload"), raising=False)
    cuda_available.cache_clear()
    preload_cuda_libraries.cache_clear()
    try:
        usable = cuda_available(0)
    finally:
        cuda_available.cache_clear()
        preload_cuda_libraries.cache_clear()
    assert calls == ["preload"]
    if not real_build_has_cuda:  # listed, yet the session falls back to the CPU: not usable
        assert usable is False


def test_bf16_is_not_a_cuda_precision() -> None:
    with pytest.raises(ValueError, match="fp32 or fp16"):
        load_bound_graph(MNIST_DECODER, "bf16", "cpu")


def test_io_binding_gives_what_a_plain_run_gives_in_arrays_the_caller_owns() -> None:
    graph = load_bound_graph(MNIST_DECODER, "fp32", "cpu", threads=1)
    assert isinstance(graph, Graph)
    assert (graph.device, graph.engine, graph.precision) == ("cpu", "onnxruntime", "fp32")
    assert (graph.input_name, graph.input_width) == ("z", 32)
    z = np.random.default_rng(0).standard_normal((5, 32), np.float32)
    want = reference(MNIST_DECODER, {"z": z})
    first = graph.run(z)
    assert list(first) == graph.output_names == list(want)
    for name, value in first.items():
        assert value.dtype == np.float32 and value.flags.writeable
        np.testing.assert_allclose(value, want[name], rtol=1e-6, atol=1e-6)
    kept = {name: value.copy() for name, value in first.items()}
    for value in first.values():
        value.fill(np.nan)
    second = graph.run(z)
    for name, value in second.items():
        np.testing.assert_array_equal(value, kept[name])


def two_input_graph(path: Path) -> Path:
    """out = z * 2 + float(y): a float32 and an int64 input, like a conditional decoder's."""
    nodes = [
        helper.make_node("Cast", ["y"], ["yf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["z", "two"], ["z2"]),
        helper.make_node("Add", ["z2", "yf"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 1]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_every_named_input_is_bound(tmp_path: Path) -> None:
    graph = load_bound_graph(two_input_graph(tmp_path / "two.onnx"), "fp32", "cpu")
    assert graph.input_names == ["z", "y"]
    z = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([[10], [20]], np.int64)
    # A transposed view: binding must feed its values, not its memory layout.
    out = graph.run_feeds({"z": np.ascontiguousarray(z.T).T, "y": y})["out"]
    np.testing.assert_array_equal(out, z * 2 + y)


def test_fp16_graph_has_half_weights_and_float32_edges() -> None:
    model = onnx.load_from_string(float16_model(MNIST_DECODER))
    edges = [*model.graph.input, *model.graph.output]
    assert {v.type.tensor_type.elem_type for v in edges} == {TensorProto.FLOAT}
    weights = {t.data_type for t in model.graph.initializer if len(t.dims) >= 2}
    assert weights == {TensorProto.FLOAT16}
    assert any(node.op_type == "Cast" for node in model.graph.node)


def test_fp16_mnist_decoder_is_within_half_precision_of_fp32() -> None:
    graph = load_bound_graph(MNIST_DECODER, "fp16", "cpu", threads=1)
    assert graph.precision == "fp16"
    z = np.random.default_rng(1).standard_normal((16, 32), np.float32)
    want = reference(MNIST_DECODER, {"z": z})["x_mean"]
    got = graph.run(z)["x_mean"]
    assert got.dtype == np.float32
    # float32 differs from itself by ~1e-7 across thread counts; half weights by far more.
    assert 1e-5 < np.abs(got - want).max() < 1e-2, "the half-precision graph ran in float32?"
    assert psnr(got, want, 1.0) >= 40


@pytest.fixture(scope="module")
def kl_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight AutoencoderKL's decoder (mid-block attention, GroupNorm) as ONNX."""
    from app.training.import_diffusers import export_autoencoder
    from tests.support.autoencoders import build

    directory = tmp_path_factory.mktemp("kl")
    export_autoencoder(build("kl"), "AutoencoderKL", directory, trace_size=32)
    return directory / "decoder.onnx"


def test_fp16_diffusers_decoder_passes_the_40_db_gate_at_several_shapes(kl_decoder: Path) -> None:
    graph = load_bound_graph(kl_decoder, "fp16", "cpu")
    rng = np.random.default_rng(2)
    for shape in [(1, 4, 16, 16), (2, 4, 8, 12)]:
        z = rng.standard_normal(shape, np.float32)
        want = reference(kl_decoder, {"z": z})["x"]
        got = graph.run(z)["x"]
        assert got.shape == want.shape == (shape[0], 3, shape[2] * 2, shape[3] * 2)
        assert np.abs(got - want).max() > 1e-5, "the half-precision graph ran in float32?"
        assert psnr(np.clip(got, -1, 1), np.clip(want, -1, 1), 2.0) >= 40


def test_a_run_past_the_threshold_shrinks_the_arena_and_answers_the_same() -> None:
    graph = load_bound_graph(MNIST_DECODER, "fp32", "cpu")
    graph.shrink_above = 32 * 4
    assert graph.run_options(32 * 4) is None
    options = graph.run_options(32 * 4 + 1)
    assert isinstance(options, ort.RunOptions)
    assert options.get_run_config_entry(ARENA_SHRINKAGE) == "cpu:0"
    z = np.random.default_rng(3).standard_normal((8, 32), np.float32)
    want = reference(MNIST_DECODER, {"z": z})
    for name, value in graph.run(z).items():
        np.testing.assert_allclose(value, want[name], rtol=1e-6, atol=1e-6)


class _ReportsCuda:
    """A session that says CUDA runs it; everything else is the real session's."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session

    def __getattr__(self, name: str) -> object:
        return getattr(self.session, name)

    def get_providers(self) -> list[str]:
        return [CUDA_PROVIDER, CPU_PROVIDER]


def test_the_gpu_arena_of_the_configured_device_is_the_one_shrunk() -> None:
    session = _ReportsCuda(cpu_session(MNIST_DECODER))
    graph = IoBoundGraph(session, "fp32", device_id=1, shrink_above=0)  # type: ignore[arg-type]
    assert graph.device == "cuda"
    options = graph.run_options(1)
    assert options is not None and options.get_run_config_entry(ARENA_SHRINKAGE) == "gpu:1"


def test_open_graph_on_cuda_is_this_module_or_refuses_with_what_to_install() -> None:
    spec = EngineSpec("onnxruntime", "fp16", "cuda")
    options = EngineOptions(threads=1, spinning=False)
    if cuda_available():
        graph = open_graph(MNIST_DECODER, spec, options)
        assert isinstance(graph, IoBoundGraph)
        assert (graph.device, graph.precision) == ("cuda", "fp16")
        return
    with pytest.raises(CudaUnavailable, match="onnxruntime-gpu"):
        open_graph(MNIST_DECODER, spec, options)


def test_a_graph_exported_in_float16_gets_a_float32_face(tmp_path: Path) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(MNIST_DECODER)), keep_io_types=False)
    onnx.save(half, str(tmp_path / "half.onnx"))
    graph = load_bound_graph(tmp_path / "half.onnx", "fp32", "cpu")
    assert graph.precision == "fp16"
    z = np.random.default_rng(4).standard_normal((3, 32), np.float32)
    got = graph.run(z)["x_mean"]
    assert got.dtype == np.float32
    want = reference(MNIST_DECODER, {"z": z})["x_mean"]
    assert psnr(got, want, 1.0) >= 40

"""bench/gpu.py's plan (what a run measures, with and without CUDA), its image comparison and its
results file's shape: no model is run here (`python -m bench.gpu` does that)."""

from __future__ import annotations

import json

import numpy as np

from bench.gpu import GATE_DB, Parity, Plan, Point, as_image, plan, psnr_db, report, speedups


def test_a_gpu_machine_measures_256_and_512_in_3_second_windows() -> None:
    assert plan([], cuda=True) == Plan((256, 512), 3.0, True)
    assert plan(["--quick"], cuda=True) == Plan((256,), 1.0, True)
    assert plan(["--sizes", "512", "--seconds", "2"], cuda=True) == Plan((512,), 2.0, True)


def test_without_cuda_only_the_quick_cpu_half_runs() -> None:
    assert plan([], cuda=False) == Plan((256,), 1.0, False)
    assert plan(["--sizes", "256,512"], cuda=False) == Plan((256, 512), 1.0, False)


def test_images_are_compared_as_the_service_renders_them() -> None:
    decoded = np.array([[-1.5, -1.0, 0.0, 1.0, 2.0]], np.float32)
    assert as_image(decoded).tolist() == [[0, 0, 128, 255, 255]]
    image = np.full((8, 8), 100, np.uint8)
    assert psnr_db(image, image) == float("inf")
    off_by_one = image + np.uint8(1)
    assert psnr_db(off_by_one, image) == round(10 * np.log10(255.0**2), 2)


def test_the_results_file_says_what_ran_and_whether_it_passed() -> None:
    points = [Point("cuda onnxruntime fp16 io-binding", 512, 4, 123.4, 30.1)]
    checked = [Parity("cuda onnxruntime fp16 io-binding", 512, 38.5, False)]
    out = report({"cpu": "x"}, {"cores": 2}, Plan((512,), 3.0, True), points, checked, [], 42.0)
    decoded = json.loads(json.dumps(out))
    assert decoded["cuda"] is True and decoded["gate_db"] == GATE_DB
    assert decoded["plan"] == {"sizes": [512], "seconds": 3.0, "gpu": True}
    assert decoded["points"][0]["images_per_s"] == 123.4
    assert decoded["parity"][0] == {
        "system": "cuda onnxruntime fp16 io-binding",
        "size": 512,
        "psnr_db": 38.5,
        "passed": False,
    }
    assert set(decoded) >= {"machine", "cpu", "model", "problems", "elapsed_s"}


def test_speedups_are_each_systems_best_batch_over_cpu_onnxruntime_fp32() -> None:
    points = [
        Point("cpu onnxruntime fp32", 512, 1, 2.0, 500.0),
        Point("cuda onnxruntime fp16 io-binding", 512, 1, 40.0, 25.0),
        Point("cuda onnxruntime fp16 io-binding", 512, 4, 60.0, 66.0),
        Point("cpu openvino bf16", 512, 1, 9.0, 111.0),
        Point("cuda onnxruntime fp32 io-binding", 256, 1, 10.0, 100.0),
    ]
    assert speedups(points) == {
        "512px cuda onnxruntime fp16 io-binding / cpu onnxruntime fp32": 30.0,
        "512px cpu openvino bf16 / cpu onnxruntime fp32": 4.5,
    }

"""The memory budget and the peak estimates it is compared with: VAE_MEMORY_BUDGET_MB or 3/4 of
the container's limit, an AutoencoderKL's attention growing with the square of its tokens on ONNX
Runtime and with its pixels on OpenVINO (which fuses it), a TAESD-style model's activations with
its pixels."""

from __future__ import annotations

from app.config import Settings
from app.serving.memory import (
    MIB,
    ONNX_RUNTIME,
    Engine,
    budget_bytes,
    decode_peak_bytes,
    footprint,
    memory_limit_bytes,
    release_memory,
)
from tests.unit.test_tiling import KL, TINY, manifest


def test_the_budget_is_the_setting_or_three_quarters_of_the_limit() -> None:
    assert budget_bytes(Settings(models_dir="/x", memory_budget_mb=300)) == 300 * MIB
    assert budget_bytes(Settings(models_dir="/x")) == int(memory_limit_bytes() * 0.75)


def test_an_autoencoder_kl_peak_is_its_attention_past_a_few_hundred_pixels() -> None:
    """Measured (ONNX Runtime fp32, its arena shrunk after each run): a 1024-pixel decode of an
    8x AutoencoderKL holds 2.0-2.1 GiB over its idle RSS, two 16384 x 16384 float32 score
    matrices."""
    kl = manifest("AutoencoderKL", {**KL, "block_out_channels": [8, 8, 16, 16]}, 8)
    at_1024 = decode_peak_bytes(kl, 1, 1024, 1024)
    assert 2 * 1024 * MIB <= at_1024 <= 3 * 1024 * MIB  # the activations counted on top
    assert decode_peak_bytes(kl, 1, 2048, 2048) > 12 * at_1024  # tokens squared
    assert decode_peak_bytes(kl, 3, 1024, 1024) == 3 * at_1024
    no_attention = manifest("AutoencoderKL", {**KL, "mid_block_add_attention": False}, 8)
    assert footprint(no_attention).attention_copies == 0

    assert (
        footprint(kl) == footprint(kl, ONNX_RUNTIME) == footprint(kl, Engine("onnxruntime", "bf16"))
    )


# bench.spatial's AutoencoderKL decoders: SD's layout at 1/4 of its channels, and SD's own.
KL_SMALL = manifest("AutoencoderKL", {**KL, "block_out_channels": [32, 64, 128, 128]}, 8)
KL_SD = manifest("AutoencoderKL", {**KL, "block_out_channels": [128, 256, 512, 512]}, 8)
OV_BF16, OV_FP32 = Engine("openvino", "bf16"), Engine("openvino", "fp32")


def test_on_openvino_an_autoencoder_kl_peak_grows_with_its_pixels_and_covers_the_measured() -> None:
    """Measured (VmHWM over VmRSS of a fresh process's first decode at a size, its compile
    included): the estimate is at least the peak and at most 1.5 times it."""
    measured_mib = [
        (KL_SMALL, OV_BF16, 512, 164),
        (KL_SMALL, OV_FP32, 512, 266),
        (KL_SD, OV_BF16, 512, 551),
        (KL_SD, OV_FP32, 512, 1032),
        (KL_SMALL, OV_BF16, 1024, 479),
        (KL_SMALL, OV_BF16, 2048, 1743),
        (KL_SMALL, OV_FP32, 1024, 875),
        (KL_SD, OV_BF16, 1024, 1749),
        (KL_SD, OV_FP32, 1024, 3406),
    ]
    for model, engine, side, mib in measured_mib:
        estimate = footprint(model, engine).graph_bytes(1, side, side)
        assert mib * MIB <= estimate <= 1.5 * mib * MIB, (engine, side, mib, estimate // MIB)
    bf16 = footprint(KL_SMALL, OV_BF16)
    assert bf16.attention_copies == 0
    linear = [bf16.graph_bytes(1, side, side) - bf16.call_bytes for side in (1024, 2048)]
    assert linear[1] == 4 * linear[0]
    assert footprint(KL_SMALL, OV_FP32).bytes_per_pixel > 1.8 * bf16.bytes_per_pixel


def test_a_2048_decode_on_openvino_is_a_tenth_of_onnx_runtimes_estimate() -> None:
    """ONNX Runtime's two 65,536 x 65,536 score matrices (32 GiB) against OpenVINO's ~2 GB."""
    on_openvino = decode_peak_bytes(KL_SMALL, 1, 2048, 2048, OV_BF16)
    assert on_openvino <= 2.5 * 1024 * MIB
    assert decode_peak_bytes(KL_SMALL, 1, 2048, 2048) > 10 * on_openvino
    assert decode_peak_bytes(KL_SMALL, 2, 2048, 2048, OV_BF16) == 2 * on_openvino


def test_a_tiny_autoencoder_peak_grows_with_its_pixels() -> None:
    """Measured: TAESD's 1024-pixel decode holds about 800 MB (64 channels at full resolution)."""
    taesd = manifest("AutoencoderTiny", {}, 8)
    assert 800 * MIB <= decode_peak_bytes(taesd, 1, 1024, 1024) <= 1200 * MIB
    assert decode_peak_bytes(taesd, 1, 2048, 2048) == 4 * decode_peak_bytes(taesd, 1, 1024, 1024)
    assert footprint(manifest("AutoencoderTiny", TINY, 4)).bytes_per_pixel == 16 * 8


def test_releasing_memory_is_harmless_when_there_is_none_to_give_back() -> None:
    release_memory()
    release_memory()

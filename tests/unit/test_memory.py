"""The memory budget and the peak estimates it is compared with: VAE_MEMORY_BUDGET_MB or 3/4 of
the container's limit, an AutoencoderKL's attention growing with the square of its tokens, a
TAESD-style model's activations with its pixels."""

from __future__ import annotations

from app.config import Settings
from app.serving.memory import (
    MIB,
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


def test_a_tiny_autoencoder_peak_grows_with_its_pixels() -> None:
    """Measured: TAESD's 1024-pixel decode holds about 800 MB (64 channels at full resolution)."""
    taesd = manifest("AutoencoderTiny", {}, 8)
    assert 800 * MIB <= decode_peak_bytes(taesd, 1, 1024, 1024) <= 1200 * MIB
    assert decode_peak_bytes(taesd, 1, 2048, 2048) == 4 * decode_peak_bytes(taesd, 1, 1024, 1024)
    assert footprint(manifest("AutoencoderTiny", TINY, 4)).bytes_per_pixel == 16 * 8


def test_releasing_memory_is_harmless_when_there_is_none_to_give_back() -> None:
    release_memory()
    release_memory()

"""app/runtime/cpu.py: the CPU read from a cpuinfo text and OpenVINO's capabilities."""

from __future__ import annotations

from app.runtime.cpu import parse_cpuinfo, read_cpu, this_cpu

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_fp16
"""
COOPER_LAKE = "model name\t: Intel(R) Xeon(R) Gold 6348H\nflags\t\t: avx2 avx512f avx512_bf16\n"
SKYLAKE = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: sse2 avx2 fma avx512f\n"
GRAVITON = "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd bf16 i8mm sve\n"
WITH_BF16 = frozenset({"FP32", "BF16", "INT8"})
WITHOUT_BF16 = frozenset({"FP32", "INT8"})


def test_the_model_and_flags_come_from_the_first_processor() -> None:
    model, flags = parse_cpuinfo(SAPPHIRE_RAPIDS)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"amx_bf16", "avx512_bf16", "avx512f"} <= flags and "processor" not in flags


def test_bf16_is_native_with_amx_or_avx512_bf16_and_openvino_agreeing() -> None:
    amx = read_cpu(SAPPHIRE_RAPIDS, WITH_BF16)
    assert amx.native_bf16() and amx.bf16_units() == ["AMX", "AVX-512 BF16"]
    avx = read_cpu(COOPER_LAKE, WITH_BF16)
    assert avx.native_bf16() and avx.bf16_units() == ["AVX-512 BF16"]


def test_bf16_is_not_native_without_the_flags_or_without_openvinos_word() -> None:
    assert not read_cpu(SKYLAKE, WITH_BF16).native_bf16()
    assert not read_cpu(SAPPHIRE_RAPIDS, WITHOUT_BF16).native_bf16()
    # An ARM CPU's bf16 is not one OpenVINO's x86 bf16 path runs: no amx/avx512 flag, not native.
    arm = read_cpu(GRAVITON, WITH_BF16)
    assert arm.model == "unknown" and "bf16" in arm.flags and not arm.native_bf16()


GRANITE_RAPIDS = (
    "model name\t: Intel(R) Xeon(R) 6980P\n"
    "flags\t\t: avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_fp16 amx_tile\n"
)


def test_fp16_is_native_only_with_amx_fp16_and_openvinos_word() -> None:
    capabilities = frozenset({"FP32", "BF16", "FP16"})
    assert read_cpu(GRANITE_RAPIDS, capabilities).native_fp16()
    assert not read_cpu(GRANITE_RAPIDS, WITH_BF16).native_fp16()
    # AVX-512 FP16 without AMX-FP16 (Sapphire Rapids): OpenVINO runs fp16 slower than fp32.
    assert not read_cpu(SAPPHIRE_RAPIDS, capabilities).native_fp16()


def test_an_empty_cpuinfo_is_an_unknown_cpu_without_bf16() -> None:
    cpu = read_cpu("", frozenset())
    assert cpu.model == "unknown" and not cpu.flags and not cpu.native_bf16() and cpu.cores >= 1


def test_the_json_names_the_flags_that_matter_and_the_verdict() -> None:
    shown = read_cpu(SAPPHIRE_RAPIDS, WITH_BF16).as_json()
    assert shown["model"] == "Intel(R) Xeon(R) Platinum 8480+" and shown["native_bf16"] is True
    assert "amx_bf16" in shown["flags"] and "fpu" not in shown["flags"]  # type: ignore[operator]
    assert shown["openvino_capabilities"] == ["BF16", "FP32", "INT8"]


def test_this_machine_reads_its_own_cpu_and_openvino() -> None:
    cpu = this_cpu()
    assert cpu.model != "unknown" and "FP32" in cpu.capabilities
    # The flags and OpenVINO agree on this machine, whichever way (AMX here: native).
    assert cpu.native_bf16() == bool(cpu.bf16_units())

"""The parts spatial serving is made of: raw tensors on the wire (dtypes, shapes, Flux packing),
batches of one shape capped by pixels, and when to batch (tiles: test_tiling.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.serving.batcher import BatcherLabels, MicroBatcher, Outputs
from app.serving.spatial_graphs import batch_rows_by_pixels, batches_pay
from app.serving.tensors import TensorError, from_bytes, parse_shape, to_bytes, unpack_latents

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_raw_tensors_round_trip_in_each_dtype_as_torch_writes_them(dtype: str) -> None:
    values = torch.randn(2, 3, 4)
    sent = values.to(getattr(torch, dtype))
    raw = (
        sent.view(torch.uint8).numpy().tobytes() if dtype == "bfloat16" else sent.numpy().tobytes()
    )
    got = from_bytes(raw, (2, 3, 4), dtype)
    assert np.array_equal(got, sent.float().numpy())
    assert to_bytes(got, dtype) == raw


def test_shapes_come_as_repeated_values_a_comma_list_or_json() -> None:
    assert (
        parse_shape(["1", "4", "8", "8"])
        == parse_shape(["1,4,8,8"])
        == parse_shape(["[1, 4, 8, 8]"])
    )
    for bad in (["1,x"], ["0,4"], [""], ["1,1,1,1,1,1,1"]):
        with pytest.raises(TensorError):
            parse_shape(bad)
    with pytest.raises(TensorError, match="bytes"):
        from_bytes(b"\0" * 7, (2,), "float32")
    with pytest.raises(TensorError, match="dtype"):
        from_bytes(b"\0" * 8, (2,), "int32")


def test_packed_latents_unpack_as_the_flux_pipeline_packs_them() -> None:
    z = torch.randn(2, 16, 12, 20)
    packed = z.view(2, 16, 6, 2, 10, 2).permute(0, 2, 4, 1, 3, 5).reshape(2, 60, 64)
    assert np.array_equal(unpack_latents(packed.numpy(), 96, 160, 8), z.numpy())
    with pytest.raises(TensorError, match="do not fit"):
        unpack_latents(packed.numpy(), 96, 200, 8)


def test_a_batch_of_one_shape_is_capped_by_pixels_as_well_as_rows() -> None:
    seen: list[int] = []

    def graph(inputs: np.ndarray) -> Outputs:
        seen.append(len(inputs))
        return {"x": inputs}

    async def main() -> None:
        rows = batch_rows_by_pixels(max_pixels=3 * 64 * 64, pixels_per_cell=4)  # 3 latents of 32x32
        batcher = MicroBatcher(graph, BatcherLabels("m", "decoder"), 16, 0.05, 1024, 1, False, rows)
        big = np.zeros((7, 4, 32, 32), np.float32)
        small = np.zeros((7, 4, 8, 8), np.float32)
        out = await asyncio.gather(batcher.submit(big), batcher.submit(small))
        assert [len(o["x"]) for o in out] == [7, 7]
        await batcher.stop()

    asyncio.run(main())
    assert max(seen) <= 7 and sorted(seen) == [1, 3, 3, 7]


def test_spatial_models_batch_where_batches_pay_or_where_told() -> None:
    cpu, gpu = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert not batches_pay("auto", cpu) and batches_pay("auto", gpu)
    assert batches_pay("on", cpu) and not batches_pay("off", gpu)

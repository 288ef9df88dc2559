"""The parts spatial serving is made of: raw tensors on the wire (dtypes, shapes, Flux packing),
tiles blended as diffusers blends them, batches of one shape capped by pixels, and when to batch."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.serving.batcher import BatcherLabels, MicroBatcher, Outputs
from app.serving.spatial_graphs import batch_rows_by_pixels, batches_pay
from app.serving.tensors import TensorError, from_bytes, parse_shape, to_bytes, unpack_latents
from app.serving.tiling import decode_plan, encode_plan, run_tiled

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


def _diffusers_tiled(
    z: np.ndarray, run: object, tile: int, overlap: float, scale: int
) -> np.ndarray:
    """AutoencoderKL.tiled_decode's loop, with its own blend_v and blend_h, around `run`."""
    from diffusers import AutoencoderKL

    stride, blend = int(tile * (1 - overlap)), int(tile * scale * overlap)
    limit = tile * scale - blend
    t = torch.from_numpy(z)
    rows = [[torch.from_numpy(run(t[:, :, i : i + tile, j : j + tile].numpy()))  # type: ignore[operator]
             for j in range(0, t.shape[3], stride)] for i in range(0, t.shape[2], stride)]  # fmt: skip
    out = []
    for i, row in enumerate(rows):
        kept = []
        for j, piece in enumerate(row):
            if i > 0:
                piece = AutoencoderKL.blend_v(None, rows[i - 1][j], piece, blend)  # type: ignore[arg-type]
            if j > 0:
                piece = AutoencoderKL.blend_h(None, row[j - 1], piece, blend)  # type: ignore[arg-type]
            kept.append(piece[:, :, :limit, :limit])
        out.append(torch.cat(kept, dim=3))
    return torch.cat(out, dim=2).numpy()


def test_tiles_are_cut_and_blended_as_diffusers_tiled_decode_does() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 3, 37, 53)).astype(np.float32)
    weights = rng.standard_normal((3, 3)).astype(np.float32)

    def decoder(x: np.ndarray) -> np.ndarray:  # position-dependent, so tiles differ from the whole
        mixed = np.einsum("oc,nchw->nohw", weights, x) + np.linspace(
            0, 1, x.shape[3], dtype=np.float32
        )
        return mixed.repeat(4, axis=2).repeat(4, axis=3)

    async def run(rows: np.ndarray) -> np.ndarray:
        return decoder(rows)

    plan = decode_plan(64, 0.25, 4)
    ours = asyncio.run(run_tiled(z, plan, run, 4))
    assert ours.shape == (2, 3, 148, 212)
    assert np.allclose(ours, _diffusers_tiled(z, decoder, 16, 0.25, 4), atol=1e-5)


def test_an_encoder_plan_keeps_tile_starts_on_the_latent_grid() -> None:
    plan = encode_plan(100, 0.25, 8)
    assert plan.tile % 8 == 0 and plan.stride % 8 == 0
    assert plan.limit * 8 == plan.stride


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

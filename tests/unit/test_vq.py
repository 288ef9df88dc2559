"""The VQ-VAE's parts: the vector quantizer (nearest code, EMA update, dead-code restart,
straight-through gradient), the PixelCNN prior's causality, and the API's code sampling and
code checks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from app.api.errors import DOMAIN_ERRORS
from app.repository.manifest import ImageSpec, Manifest
from app.serving.adapters.errors import InvalidCodes
from app.serving.adapters.gaussian import GaussianAdapter
from app.serving.adapters.inputs import code_batch
from app.serving.vq import VQParts, codes_to_latents, draw, sample_codes_blocking
from app.training.modules.pixelcnn import PixelCNN
from app.training.modules.vq import VectorQuantizer


def quantizer(
    codebook: list[list[float]], decay: float = 0.5, patience: int = 1
) -> VectorQuantizer:
    vq = VectorQuantizer(len(codebook), len(codebook[0]), decay=decay, patience=patience, eps=0.0)
    vq.codebook.copy_(torch.tensor(codebook))
    vq.embed_sum.copy_(torch.tensor(codebook))
    vq.initialized.fill_(True)
    return vq


def grid(vectors: list[list[float]]) -> torch.Tensor:
    """Vectors [M,D] as z_e [1,D,1,M]."""
    return torch.tensor(vectors).t()[None, :, None, :]


def test_each_vector_takes_its_nearest_code() -> None:
    vq = quantizer([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]).eval()
    codes, q = vq.quantize(grid([[1.0, 1.0], [9.0, -1.0], [-1.0, 8.0], [6.0, 0.0]]))
    assert codes.flatten().tolist() == [0, 1, 2, 1]
    assert q[0, :, 0, 3].tolist() == [10.0, 0.0]
    # a codebook vector quantizes to itself
    codes, _ = vq.quantize(grid([[10.0, 0.0], [0.0, 10.0]]))
    assert codes.flatten().tolist() == [1, 2]


def test_the_ema_update_moves_codes_towards_the_vectors_assigned_to_them() -> None:
    vq = quantizer([[0.0, 0.0], [10.0, 10.0]], decay=0.5, patience=100).train()
    before = vq.codebook.clone()
    vectors = grid([[2.0, 0.0], [2.0, 2.0], [8.0, 8.0]])
    vq(vectors)
    # code 0 got the mean (2, 1) of two vectors, code 1 the vector (8, 8)
    for index, target in [(0, [2.0, 1.0]), (1, [8.0, 8.0])]:
        old = torch.dist(before[index], torch.tensor(target))
        new = torch.dist(vq.codebook[index], torch.tensor(target))
        assert new < old
    # with decay 0.5: usage = 0.5 * 1 + 0.5 * count, sum = 0.5 * old + 0.5 * sum of vectors
    assert vq.cluster_size.tolist() == [1.5, 1.0]
    torch.testing.assert_close(vq.codebook[0], torch.tensor([(0.0 + 4.0) / 3.0, 2.0 / 3.0]))
    for _ in range(30):
        vq(vectors)
    torch.testing.assert_close(vq.codebook[0], torch.tensor([2.0, 1.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(vq.codebook[1], torch.tensor([8.0, 8.0]), atol=1e-3, rtol=0)


def test_a_code_nobody_chooses_is_reseeded_from_the_batch() -> None:
    torch.manual_seed(0)
    vq = quantizer([[0.0, 0.0], [100.0, 100.0], [-100.0, 50.0]], patience=2).train()
    vectors = [[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [-1.0, -1.0]]
    vq(grid(vectors))
    assert vq.codebook[1].tolist() == [100.0, 100.0]  # unused once: not dead yet
    assert vq.idle.tolist() == [0, 1, 1]
    vq(grid(vectors))
    # idle for two batches: both far codes now sit on encoder outputs of the batch
    assert vq.idle.tolist() == [0, 0, 0]
    for index in (1, 2):
        assert vq.codebook[index].tolist() in vectors
    # re-seeded far from its code: (5, 5) is the vector the first code serves worst
    assert [5.0, 5.0] in [vq.codebook[1].tolist(), vq.codebook[2].tolist()]
    codes, _ = vq.quantize(grid(vectors))
    assert len(set(codes.flatten().tolist())) >= 2


def test_the_gradient_passes_straight_through_and_commits_the_encoder() -> None:
    vq = quantizer([[0.0], [4.0]]).eval()
    z_e = grid([[1.0], [3.5]]).requires_grad_()
    quantized, codes, commitment = vq(z_e)
    assert quantized.flatten().tolist() == [0.0, 4.0] and codes.flatten().tolist() == [0, 1]
    assert commitment.tolist() == [pytest.approx(1.0 + 0.25)]
    quantized.sum().backward()
    assert z_e.grad is not None and z_e.grad.flatten().tolist() == [1.0, 1.0]


def test_the_first_training_batch_seeds_the_codebook() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 3).train()
    z_e = torch.randn(2, 3, 2, 2) + 50.0
    vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
    assert bool(vq.initialized)
    assert float(vq.codebook.mean()) > 40.0  # drawn from the data, not from N(0, 1)
    assert all(any(torch.allclose(row, v, atol=2.0) for v in flat) for row in vq.codebook)


def test_the_pixelcnn_never_sees_a_position_or_anything_after_it() -> None:
    torch.manual_seed(0)
    prior = PixelCNN(num_codes=5, channels=8, layers=3).eval()
    codes = torch.randint(0, 5, (1, 5, 6))
    with torch.no_grad():
        base = prior(codes)
        for i, j in [(0, 0), (2, 3), (4, 5), (1, 0)]:
            changed = codes.clone()
            changed[0, i, j] = (changed[0, i, j] + 1) % 5
            moved = (prior(changed) - base).abs().sum(dim=1)[0] > 1e-6
            order = [r * 6 + c for r, c in moved.nonzero().tolist()]
            assert all(index > i * 6 + j for index in order)
            if (i, j) != (4, 5):
                assert order, "the next positions should depend on this one"
        # a grid cropped to its first rows gives the same logits there (dynamic grids)
        torch.testing.assert_close(prior(codes[:, :2]), base[:, :, :2])


def test_draws_follow_the_logits_and_temperature_zero_is_the_argmax() -> None:
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 20000))
    counts = np.bincount(draw(logits, 1.0, rng), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.7, 0.2, 0.1], atol=0.02)
    sharp = np.bincount(draw(logits, 0.25, rng), minlength=3) / 20000
    assert sharp[0] > 0.95
    assert draw(np.array([[0.0, 3.0, 1.0]]), 0.0, rng).tolist() == [1]


def test_sampling_is_ancestral_and_seeded() -> None:
    calls: list[tuple[int, ...]] = []

    def prior(rows: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(rows.shape)
        # the next code copies the previous one in the row: logits favour it strongly
        n, h, w = rows.shape
        logits = np.zeros((n, 3, h, w), np.float32)
        shifted = np.concatenate([np.full((n, h, 1), 2), rows[:, :, :-1]], axis=2).astype(int)
        np.put_along_axis(logits, shifted[:, None], 50.0, axis=1)
        return {"logits": logits}

    first = sample_codes_blocking(prior, 4, (2, 3), 1.0, np.random.default_rng(1))
    assert first.tolist() == [[[2, 2, 2], [2, 2, 2]]] * 4
    assert calls[:4] == [(4, 1, 3), (4, 1, 3), (4, 1, 3), (4, 2, 3)]  # only the rows so far

    class Runner:
        async def submit(self, rows: np.ndarray, deadline: float | None) -> dict[str, np.ndarray]:
            return prior(rows)

    parts = VQParts(np.zeros((3, 1), np.float32), (2, 3), None, Runner())  # type: ignore[arg-type]
    again = asyncio.run(parts.sample(4, 1.0, np.random.default_rng(1), None))
    assert again.tolist() == first.tolist()


def test_codes_become_the_decoder_input_layout() -> None:
    codebook = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], np.float32)  # K=3, D=2
    codes = np.array([[[0, 1], [2, 0]]])  # one 2x2 grid
    z = codes_to_latents(codebook, codes)
    # laid out as z_e [N,D,h,w] flattened: first every position's first number, then the second
    assert z.tolist() == [[0.0, 2.0, 4.0, 0.0, 1.0, 3.0, 5.0, 1.0]]


def vq_manifest() -> Manifest:
    return Manifest(
        name="vq", version=1, kind="vqvae", latent_dim=8, image=ImageSpec(height=4, width=4, channels=1),
        likelihood="bernoulli", grid=[2, 2], codebook_size=3, embedding_dim=2, created_at="now",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("codes", "needle"),
    [
        ([[[0, 3], [1, 1]]], "0..2"),
        ([[[0, -1], [1, 1]]], "0..2"),
        ([[[0, 1, 2], [1, 1, 1]]], "2 x 2"),
        ([[0, 1], [1]], "integer"),
        ([[[0.5, 1], [1, 1]]], "integer"),
        ([0, 1, 2, 1], "2 x 2"),
    ],
)
def test_codes_a_model_cannot_take_are_refused(codes: object, needle: str) -> None:
    with pytest.raises(InvalidCodes) as refused:
        code_batch(codes, vq_manifest())
    assert DOMAIN_ERRORS[InvalidCodes].status == 422 and needle in str(refused.value)


def test_codes_are_accepted_as_one_grid_or_a_batch_and_only_by_a_vqvae() -> None:
    assert code_batch([[0, 1], [2, 0]], vq_manifest()).shape == (1, 2, 2)
    assert code_batch([[[0, 1], [2, 0]]] * 3, vq_manifest()).dtype == np.int64
    gaussian = vq_manifest().model_copy(update={"kind": "vae", "grid": [], "codebook_size": 0})
    parts, service = SimpleNamespace(manifest=gaussian), SimpleNamespace(settings=None)
    adapter = GaussianAdapter(parts, service)  # type: ignore[arg-type]
    with pytest.raises(InvalidCodes, match="no codebook"):
        adapter.codes_to_latents([[0, 1], [2, 0]])

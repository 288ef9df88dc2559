"""The IWAE training objective (`objective: "iwae"`) against the ELBO, for the one- and the
two-layer kinds."""

from __future__ import annotations

import pytest
import torch

from app.datasets.arrays import ImageDataset
from app.training.config import TrainConfig
from app.training.kinds import build_model
from app.training.losses import iwae_bound
from app.training.modules import GaussianVAE
from app.training.objectives import batch_objective, elbo_objective, iwae_objective
from app.training.trainer import train
from tests.support.synthetic import stroke_digits

KINDS = ["vae", "hvae"]


def small(kind: str, **overrides: object) -> TrainConfig:
    return TrainConfig.model_validate(
        {"kind": kind, "hidden": [64], "latent_dim": 4, "bottom_latent_dim": 6, **overrides}
    )


def digits(count: int, seed: int = 0) -> torch.Tensor:
    images, _ = stroke_digits(count, seed=seed)
    return torch.bernoulli(torch.from_numpy(images[:, None].astype("float32") / 255.0))


def model_of(kind: str) -> GaussianVAE:
    torch.manual_seed(0)
    model = build_model(small(kind), (1, 28, 28))
    assert isinstance(model, GaussianVAE)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_with_one_draw_it_is_the_elbo_objective_in_expectation(kind: str) -> None:
    model = model_of(kind)
    x = digits(8).repeat(500, 1, 1, 1)  # every image 500 times: the mean is over many draws
    with torch.no_grad():
        one_draw = model.log_weights(x, 1)[0]  # the one-sample ELBO of every row
        iwae = iwae_objective(model, x, k=1).loss
        elbo = elbo_objective(model, x).loss
    standard_error = one_draw.std() / len(one_draw) ** 0.5
    assert iwae.item() == pytest.approx(elbo.item(), abs=4 * standard_error.item())
    assert standard_error.item() < 0.5  # the comparison is tight enough to mean something


@pytest.mark.parametrize("kind", KINDS)
def test_its_bound_is_at_least_the_elbo_on_a_trained_model(kind: str) -> None:
    images, _ = stroke_digits(256, seed=1)
    config = small(kind, objective="iwae", iwae_k=5, epochs=3, batch_size=64, kl_warmup_epochs=1)
    model = train(config, ImageDataset(images[:, None])).model
    assert isinstance(model, GaussianVAE)
    x = digits(128, seed=2)
    with torch.no_grad():
        torch.manual_seed(3)
        bound = iwae_bound(model.log_weights(x, 50)).mean()
        elbo = -elbo_objective(model, x).loss
    assert bound.item() > elbo.item()


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_both_encoder_and_decoder(kind: str) -> None:
    model = model_of(kind)
    config = small(kind, objective="iwae", iwae_k=5)
    batch_objective(model, digits(16), None, config, kl_weight=1.0).loss.backward()
    for part in ("encoder", "decoder"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads), part
    if kind == "hvae":  # the ladder's top layer and its top-down prior learn too
        for part in ("up", "down"):
            assert all(p.grad is not None and p.grad.abs().sum() > 0
                       for p in getattr(model, part).parameters()), part  # fmt: skip


def test_warm_up_scales_only_the_prior_ratio() -> None:
    model = model_of("vae")
    x = digits(4)
    torch.manual_seed(5)
    at_zero = iwae_objective(model, x, k=3, kl_weight=0.0).loss
    torch.manual_seed(5)
    log_px, _, _ = model.importance_terms(x, 3)
    assert at_zero.item() == pytest.approx(-iwae_bound(log_px).mean().item(), rel=1e-6)


def test_free_bits_add_the_shortfall_under_the_floor() -> None:
    model = model_of("vae")
    x = digits(4)
    torch.manual_seed(6)
    plain = iwae_objective(model, x, k=2).loss
    torch.manual_seed(6)
    floored = iwae_objective(model, x, k=2, free_bits=100.0)  # every dimension under the floor
    torch.manual_seed(6)
    _, _, kl_dims = model.importance_terms(x, 2)
    shortfall = (100.0 - kl_dims.mean(dim=0)).sum()
    assert floored.loss.item() == pytest.approx(plain.item() + shortfall.item(), rel=1e-5)


def test_a_vqvae_refuses_the_iwae_objective() -> None:
    with pytest.raises(ValueError, match="Gaussian posterior"):
        TrainConfig(kind="vqvae", objective="iwae")

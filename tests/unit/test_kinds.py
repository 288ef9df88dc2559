"""The model-kind table: one row per kind, the same kinds everywhere a kind is named, the torch
half (a recipe per trainable kind) covering every row, and a loader for every evaluator a row
names."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from app.evaluation.by_kind import LOADERS, load_graphs
from app.repository.kinds import KINDS, Evaluator, model_kind
from app.repository.manifest import Manifest
from app.training.config import TrainConfig
from app.training.kinds import RECIPES, build_model, recipe_of
from app.training.modules import VQVAE, BaseVAE, GaussianVAE, LadderVAE


def test_every_kind_named_anywhere_has_one_row_in_both_halves() -> None:
    in_config = set(get_args(TrainConfig.model_fields["kind"].annotation))
    in_manifest = set(get_args(Manifest.model_fields["kind"].annotation))
    trainable = {name for name, row in KINDS.items() if row.trainable}
    assert set(KINDS) == in_manifest and trainable == in_config == set(RECIPES)
    assert set(KINDS) - trainable == {"autoencoder", "video_autoencoder"}
    assert all(row.name == name for name, row in KINDS.items())


def test_rows_agree_with_what_the_kinds_do() -> None:
    assert [k for k, row in KINDS.items() if row.has_code_prior] == ["vqvae"]
    assert [k for k, row in KINDS.items() if row.conditional] == ["cvae"]
    assert [k for k, row in KINDS.items() if row.evaluator == "torch"] == ["hvae"]
    assert {k for k, row in KINDS.items() if row.encoding == "codes"} == {"vqvae"}
    assert not KINDS["vqvae"].has_iwae_bound and KINDS["hvae"].has_iwae_bound
    for row in KINDS.values():
        assert {"encoder.onnx", "decoder.onnx"} <= set(row.graphs)
    assert {"prior.onnx", "codebook.npy"} <= set(KINDS["vqvae"].graphs)


def test_a_row_is_described_as_json() -> None:
    described = KINDS["vqvae"].describe()
    assert described["encoding"] == "codes" and described["graphs"][-1] == "codebook.npy"
    assert set(described) >= {"name", "summary", "evaluator", "sampler", "parity", "conditional"}


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="vae, cvae, hvae, vqvae"):
        model_kind("gan")


@pytest.mark.parametrize("kind", sorted(k for k, row in KINDS.items() if row.trainable))
def test_every_trainable_kind_initialises_through_the_family_base(kind: str) -> None:
    config = TrainConfig(kind=kind, hidden=[16], latent_dim=3, conv_channels=[4, 8])  # type: ignore[arg-type]
    model = build_model(config, (1, 28, 28), num_classes=4)
    assert isinstance(model, BaseVAE)
    assert model.config is config and model.image == (1, 28, 28)
    assert model.likelihood == "bernoulli" and model.likelihood_model.kind == "bernoulli"
    assert model.conditional == KINDS[kind].conditional
    assert isinstance(model, GaussianVAE) == KINDS[kind].has_iwae_bound
    assert isinstance(model, VQVAE) == KINDS[kind].has_code_prior
    assert isinstance(model, LadderVAE) == (kind == "hvae")


def test_a_conditional_model_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="at least two labels"):
        build_model(TrainConfig(kind="cvae"), (1, 28, 28), num_classes=1)


@pytest.mark.parametrize("kind", ["vae", "cvae", "hvae"])
def test_the_gaussian_kinds_share_log_weights(kind: str) -> None:
    import torch

    torch.manual_seed(0)
    config = TrainConfig(kind=kind, hidden=[16], latent_dim=3, bottom_latent_dim=2)  # type: ignore[arg-type]
    model = build_model(config, (1, 8, 8), num_classes=3)
    assert isinstance(model, GaussianVAE)
    x = torch.rand(5, 1, 8, 8).round()
    y = torch.tensor([0, 1, 2, 0, 1]) if model.conditional else None
    torch.manual_seed(1)
    log_px, log_ratio, kl_dims = model.importance_terms(x, 4, y)
    torch.manual_seed(1)
    log_w = model.log_weights(x, 4, y)
    assert log_w.shape == (4, 5) and kl_dims.shape[0] == 5
    assert torch.allclose(log_w, log_px + log_ratio)


def test_odd_image_sizes_are_padded_once_for_both_conv_encoders() -> None:
    import torch

    from app.training.modules.networks import conv_grid, pad_to_grid

    x = torch.ones(2, 1, 27, 13)
    padded = pad_to_grid(x, 2)
    assert padded.shape == (2, 1, 28, 16) and float(padded[:, :, 27:].abs().sum()) == 0.0
    assert conv_grid((1, 27, 13), 2) == (7, 4)
    assert pad_to_grid(torch.ones(1, 1, 28, 28), 2).shape == (1, 1, 28, 28)
    for kind in ("vae", "vqvae"):
        config = TrainConfig(kind=kind, arch="conv", conv_channels=[4, 8], latent_dim=3)  # type: ignore[arg-type]
        model = build_model(config, (1, 27, 13))
        z, _ = model.encode(torch.rand(2, 1, 27, 13))
        assert z.shape[0] == 2


def test_every_evaluator_a_row_can_name_has_a_loader() -> None:
    assert set(get_args(Evaluator)) == set(LOADERS)
    assert {row.evaluator for row in KINDS.values()} <= set(LOADERS)


def test_an_imported_kind_is_not_evaluated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="autoencoder is not evaluated"):
        load_graphs(KINDS["autoencoder"], tmp_path, "gaussian")


def test_every_recipe_checks_what_its_row_says() -> None:
    assert {name: recipe.parity for name, recipe in RECIPES.items()} == {
        name: KINDS[name].parity for name in RECIPES
    }


def test_a_kind_without_a_recipe_is_named_with_the_trainable_ones() -> None:
    with pytest.raises(KeyError, match="vae, cvae, hvae, vqvae"):
        recipe_of("autoencoder")

"""The model kinds (vae, cvae, hvae, vqvae; autoencoder and video_autoencoder, imported) in one table: what a version of each kind holds and
how every part of the service treats it.

This half is torch-free, so serving, the API and the CLI read it; the torch half (model class,
exporter, parity check, evaluation, manifest fields: its recipe) is `app/training/kinds`, keyed by
the same names and checked to cover every trainable kind here. The behaviour keyed by a row's
values lives above this package: `evaluator` picks the torch-free loader and scorer of a
version's graphs (app/evaluation/by_kind.py); serving reads the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

KindName = Literal["vae", "cvae", "hvae", "vqvae", "autoencoder", "video_autoencoder"]
Evaluator = Literal["onnx", "torch", "vq", "none"]
Encoding = Literal["posterior", "codes", "spatial"]
Sampler = Literal["prior", "ancestral", "code_prior", "none"]
Parity = Literal["graphs", "graphs_and_prior"]


@dataclass(frozen=True)
class ModelKind:
    """One kind of model and how the service treats its versions."""

    name: KindName
    summary: str
    graphs: tuple[str, ...]
    """The files a version of this kind holds beside manifest.json and weights.safetensors."""
    parity: Parity
    """graphs: encoder and decoder against PyTorch; graphs_and_prior: the code prior and the
    codebook too, and the codes the encoder picks."""
    evaluator: Evaluator
    """What computes the manifest's metrics (and `vae evaluate` the same ones): onnx, the IWAE
    bound from the two graphs; torch, the IWAE bound from the PyTorch model (its log-weights
    need p(z1|z2) and q(z1|z2,x), which the graphs do not give); vq, the ELBO with the learned
    code prior from the graphs."""
    sampler: Sampler
    """prior: z ~ N(0, I); ancestral: the lower layers' noise drawn too; code_prior: code grids
    drawn from the PixelCNN prior."""
    encoding: Encoding
    """What /encode returns per image: posterior (mu, sigma, z draws), codes (codes, z_e), or
    spatial (a latent grid's mean, and sigma when the encoder gives a log-variance)."""
    conditional: bool = False
    """The graphs take a class label `y`."""
    trainable: bool = True
    """Made by `vae train` (a recipe in app/training/kinds); else only imported."""
    spatial: bool = False
    """The latent is a grid [C,h,w] and the image size may be free (manifest `spatial`)."""
    video: bool = False
    """The latent is a clip [C,T,h,w] and the model gives videos (manifest `video`)."""

    @property
    def has_code_prior(self) -> bool:
        """Whether a version holds a code prior and a codebook to load beside the graphs."""
        return self.sampler == "code_prior"

    @property
    def has_iwae_bound(self) -> bool:
        """Whether the metrics include the IWAE bound (not for a point-mass posterior)."""
        return self.evaluator not in {"vq", "none"}

    def describe(self) -> dict[str, Any]:
        """The row as JSON for clients (GET /models/{name}: the explorer page reads it)."""
        return {
            **asdict(self),
            "graphs": list(self.graphs),
            "has_code_prior": self.has_code_prior,
            "has_iwae_bound": self.has_iwae_bound,
        }


_GAUSSIAN_GRAPHS = ("encoder.onnx", "decoder.onnx")

KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            name="vae",
            summary="one Gaussian latent layer",
            graphs=_GAUSSIAN_GRAPHS,
            parity="graphs",
            evaluator="onnx",
            sampler="prior",
            encoding="posterior",
        ),
        ModelKind(
            name="cvae",
            summary="one Gaussian latent layer, encoder and decoder conditioned on a label",
            graphs=_GAUSSIAN_GRAPHS,
            parity="graphs",
            evaluator="onnx",
            sampler="prior",
            encoding="posterior",
            conditional=True,
        ),
        ModelKind(
            name="hvae",
            summary="two Gaussian latent layers (ladder); /encode gives the top one",
            graphs=_GAUSSIAN_GRAPHS,
            parity="graphs",
            evaluator="torch",
            sampler="ancestral",
            encoding="posterior",
        ),
        ModelKind(
            name="vqvae",
            summary="a grid of discrete codes with a learned PixelCNN prior",
            graphs=(*_GAUSSIAN_GRAPHS, "prior.onnx", "codebook.npy"),
            parity="graphs_and_prior",
            evaluator="vq",
            sampler="code_prior",
            encoding="codes",
        ),
        ModelKind(
            name="autoencoder",
            summary="a spatial autoencoder imported from diffusers or ONNX (AutoencoderKL, "
            "TAESD): latents [C,h,w], any image size its manifest allows",
            graphs=_GAUSSIAN_GRAPHS,
            parity="graphs",
            evaluator="none",
            sampler="none",
            encoding="spatial",
            trainable=False,
            spatial=True,
        ),
        ModelKind(
            name="video_autoencoder",
            summary="a video autoencoder imported from diffusers (Wan, HunyuanVideo, LTX-Video, "
            "Qwen-Image): latents [C,T,h,w] with a causal first frame, clips decoded in time "
            "chunks",
            graphs=_GAUSSIAN_GRAPHS,
            parity="graphs",
            evaluator="none",
            sampler="none",
            encoding="spatial",
            trainable=False,
            spatial=True,
            video=True,
        ),
    )
}


def model_kind(name: str) -> ModelKind:
    """The row of a kind; KeyError names the known kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown model kind {name!r}: one of {', '.join(KINDS)}") from None

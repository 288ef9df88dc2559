"""The VAE family. `build_model` turns a TrainConfig, an image shape and the class count into a model."""

from app.training.config import TrainConfig
from app.training.modules.ladder import LadderVAE
from app.training.modules.networks import ImageShape
from app.training.modules.vae import VAE
from app.training.modules.vqvae import VQVAE


def build_model(config: TrainConfig, image: ImageShape, num_classes: int = 0) -> VAE:
    """The model a config describes: vae, cvae (needs num_classes > 0), hvae or vqvae."""
    if config.kind == "vqvae":
        return VQVAE(config, image)
    if config.kind == "hvae":
        return LadderVAE(config, image)
    if config.kind == "cvae":
        if num_classes < 2:
            raise ValueError("a conditional VAE needs a dataset with at least two labels")
        return VAE(config, image, num_classes)
    return VAE(config, image)


__all__ = ["VAE", "VQVAE", "LadderVAE", "build_model"]

"""The VAE family. `build_model` turns a TrainConfig and an image shape into a model."""

from app.training.modules.vae import VAE, build_model

__all__ = ["VAE", "build_model"]

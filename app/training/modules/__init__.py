"""The VAE family: every kind initialises through BaseVAE (app/training/modules/base.py); the
Gaussian kinds share GaussianVAE's importance weights. `app/training/kinds` says which class
each kind builds."""

from app.training.modules.base import BaseVAE, GaussianVAE
from app.training.modules.ladder import LadderVAE
from app.training.modules.vae import VAE
from app.training.modules.vqvae import VQVAE

__all__ = ["VAE", "VQVAE", "BaseVAE", "GaussianVAE", "LadderVAE"]

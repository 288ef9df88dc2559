"""Importing autoencoders made elsewhere as model versions (kind `autoencoder`): the torch-free
checks (a trial run of the graphs, file hashes), the reconstructions report, and publishing.
`vae import onnx` needs nothing more; `vae import diffusers` exports the graphs first
(`app/training/import_diffusers.py`, torch) and then comes here."""

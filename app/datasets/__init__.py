"""Uploaded datasets: the store, the formats told by content, zip safety, IDX and npy readers. Torch-free."""

"""Scoring a version from its ONNX graphs alone (the IWAE bound, the VQ bound) and drawing its report figures. Torch-free."""

#!/usr/bin/env python3
"""Prints the requirements of an image, read from pyproject.toml alone.

The Dockerfile installs these in a layer of their own before it copies the code, so editing the
code never reinstalls the dependencies. torch is left out: the worker stage installs it from
PyTorch's own index (CPU or CUDA). `--accelerator cuda` swaps onnxruntime for onnxruntime-gpu,
with the CUDA and cuDNN libraries as pip packages (no CUDA base image needed).

    python docker/requirements.py [--extra train] [--accelerator cpu|cuda] [--pyproject PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str:
    """The normalized project name a requirement string names."""
    match = NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: Path, extras: list[str], accelerator: str) -> list[str]:
    """The dependencies plus the extras' ones, torch left out, onnxruntime swapped on CUDA."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = list(project["dependencies"])
    if accelerator == "cuda":  # the CUDA provider's fp16 graphs (app/runtime/cuda.py)
        extras = ["gpu", *[extra for extra in extras if extra != "gpu"]]
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    found: list[str] = []
    for requirement in wanted:
        name = requirement_name(requirement)
        if name == "torch":
            continue
        if name == "onnxruntime" and accelerator == "cuda":
            requirement = "onnxruntime-gpu[cuda,cudnn]" + requirement[len("onnxruntime") :]
        found.append(requirement)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="an optional extra")
    parser.add_argument("--accelerator", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    sys.stdout.write(
        "".join(f"{r}\n" for r in requirements(args.pyproject, args.extra, args.accelerator))
    )


if __name__ == "__main__":
    main()

"""Model repositories of a test's own: a copy of the shipped mnist model, and a version published
by copying another the way the repository publishes (a staged directory renamed into place)."""

from __future__ import annotations

import shutil
from pathlib import Path


def mnist_repo(models_dir: Path, tmp_path: Path) -> Path:
    """A model repository of the test's own (`tmp_path`/models) holding a copy of the mnist model
    from `models_dir`: the test may publish, break or delete versions in it."""
    target = tmp_path / "models"
    shutil.copytree(models_dir / "mnist", target / "mnist")
    return target


def copy_version(repo: Path, source: int, target: int, break_it: bool = False) -> None:
    """Publishes a copy of a version under a new number, the way the repository does (rename)."""
    staging = repo / "mnist" / f".staging-test-{target}"
    shutil.copytree(repo / "mnist" / str(source), staging)
    manifest = (staging / "manifest.json").read_text()
    (staging / "manifest.json").write_text(
        manifest.replace(f'"version": {source}', f'"version": {target}')
    )
    if break_it:
        (staging / "decoder.onnx").write_bytes(b"this is not an onnx graph")
    staging.rename(repo / "mnist" / str(target))
    (repo / "mnist" / "DEFAULT").write_text(f"{target}\n")

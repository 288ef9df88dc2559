"""Copying model repositories: between a directory and an object store, either way
(`vae repository copy`), and seeding an empty object store with the shipped models."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from app.repository.object_repository import (
    ModelListing,
    ObjectModelRepository,
    holds_only_seeds,
)
from app.repository.protocol import Repository
from app.repository.store import ModelRepository

logger = logging.getLogger(__name__)


def copy_repository(
    source: Repository,
    target: Repository,
    names: list[str] | None = None,
    import_version: Callable[[str, int, Path], bool] | None = None,
) -> list[str]:
    """Copies every version (or those of `names`) that `target` has not issued, keeping their
    numbers, then each model's DEFAULT. Returns what it copied, as 'name:version' (and
    'name:DEFAULT'); a version whose number `target` issued already is left out. Each version
    goes in through `import_version` (`target.import_version` when None)."""
    import_version = import_version or target.import_version
    copied: list[str] = []
    for name in names or source.names():
        for version in source.versions(name):
            if version in target.versions(name):
                continue
            with tempfile.TemporaryDirectory(prefix="vae-copy-") as scratch:
                directory = Path(scratch) / str(version)
                source.export_version(name, version, directory)
                if import_version(name, version, directory):
                    copied.append(f"{name}:{version}")
                else:
                    logger.warning("%s:%d not copied: the target issued that number", name, version)
        default = source.default_version(name)
        if (
            default is not None
            and default in target.versions(name)
            and target.default_version(name) != default
        ):
            target.set_default(name, default)
            copied.append(f"{name}:DEFAULT")
    return copied


def seed(
    target: ObjectModelRepository,
    shipped: Path,
    listing: dict[str, ModelListing] | None = None,
) -> list[str]:
    """Copies the shipped models into an object-store repository that holds nothing but seeds
    (an empty one, or one a failed seed left half done), as the compose volume is seeded from
    the image; replicas seeding at once commit each version once (object_repository.py says
    how). Returns what it copied; nothing once the store holds anything else. `listing` saves a
    listing the caller has just made."""
    if not shipped.is_dir() or not holds_only_seeds(
        target.listing() if listing is None else listing
    ):
        return []
    copied = copy_repository(
        ModelRepository(shipped), target, import_version=partial(target.import_version, seed=True)
    )
    if copied:
        logger.info("seeded %s with the shipped models: %s", target, ", ".join(copied))
    return copied

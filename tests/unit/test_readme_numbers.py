"""The README's table of the shipped model says what its manifest says."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = json.loads((ROOT / "models" / "mnist" / "1" / "manifest.json").read_text())


def table_row(name: str) -> str:
    """The value column of the README's shipped-model table row `name`."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"^\| {re.escape(name)} \| (.+?) \|$", readme, re.MULTILINE)
    assert found, f"no row {name!r} in the README"
    return found.group(1)


def test_the_training_time_is_the_manifests() -> None:
    row = table_row("training")
    epochs, minutes = re.search(r"(\d+) epochs, (?:about )?([\d.]+) minutes", row).groups()  # type: ignore[union-attr]
    training = MANIFEST["training"]
    assert int(epochs) == training["epochs_run"]
    assert float(minutes) == round(training["seconds"] / 60, 1), row


def test_the_bounds_and_active_units_are_the_manifests() -> None:
    metrics = MANIFEST["metrics"]
    assert table_row("IWAE bound, K = 1000 (test NLL)") == f"**{metrics['iwae_nll']:.2f} nats**"
    assert table_row("ELBO") == f"{metrics['elbo']:.2f} nats"
    units = f"{metrics['active_units']} of {MANIFEST['latent_dim']}"
    assert table_row("active units (Cov > 0.01)") == units

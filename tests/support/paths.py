"""Where the tests find the project: its root, the test fixtures and the shipped models."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# The shipped repository; VAE_TEST_MODELS may point elsewhere while developing.
SHIPPED_MODELS = Path(os.environ.get("VAE_TEST_MODELS", ROOT / "models"))

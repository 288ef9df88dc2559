"""The TypeScript client's generated types (clients/typescript/src/schema.d.ts) come from the
committed openapi.json: whoever changes the API is told to regenerate them. (The client's own
tests, with node's test runner against a real server, run in .ci/run.)"""

from __future__ import annotations

import hashlib
import re

from tests.support.paths import ROOT

SCHEMA = ROOT / "clients" / "typescript" / "src" / "schema.d.ts"
REGENERATE = "cd clients/typescript && npm ci && npm run generate, and commit src/schema.d.ts"


def test_the_generated_types_are_from_the_committed_openapi_json() -> None:
    header = re.search(r"openapi\.json sha256: ([0-9a-f]{64})", SCHEMA.read_text()[:1000])
    assert header, f"{SCHEMA} has no openapi.json sha256 in its header: {REGENERATE}"
    committed = hashlib.sha256((ROOT / "openapi.json").read_bytes()).hexdigest()
    assert header.group(1) == committed, (
        f"clients/typescript/src/schema.d.ts is out of date with openapi.json: {REGENERATE}"
    )

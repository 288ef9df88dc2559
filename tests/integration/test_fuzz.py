"""Property-based fuzzing of every route in the OpenAPI document, over real HTTP.

A `vae serve` process of this module's own (a copy of the shipped models, an admin token) answers
requests that schemathesis generates from the app's OpenAPI document (the first test checks that
the live server's /openapi.json is that same document), for every operation:
its documented examples, the coverage phase (boundary values, every documented status, wrong
types, missing and extra fields, unexpected methods) and random fuzzing, each with valid
(positive) and schema-breaking (negative) data; once with the admin token and once without.
Every answer must be:

- no server error (5xx), and no hang (every request has a timeout);
- a documented status code, with the documented content type, body and headers;
- for a request that breaks the schema, a 4xx (negative_data_rejection);
- for a method the path does not have, a 405 (unsupported_method).

Bounded and reproducible for CI: a fixed number of fuzzed examples per operation, a fixed seed,
derandomized Hypothesis, no example database (about 35 s on the shared 2-core machine). Training cannot start: POST /jobs needs a stored
dataset, and uploads are capped at 64 KiB of fuzzed bytes, which never make a valid dataset (the
last test checks that no job was queued).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.api.responses import NPY_MEDIA_TYPE
from app.config import Settings
from app.main import create_app
from tests.support.processes import ServiceProcess, own_models_service

TOKEN = "fuzz-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REQUEST_TIMEOUT_S = 30.0  # "no hang": far above any honest answer, far below pytest's timeout
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
]
CONFIG = """
seed = 20240909
request-timeout = 30.0

[generation]
mode = "all"
max-examples = 50
deterministic = true
database = "none"

[phases.examples]
enabled = true
[phases.coverage]
enabled = true
[phases.fuzzing]
enabled = true
"""


@pytest.fixture(scope="module")
def fuzzed(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A server of this module's own: fuzzing with the admin token may delete or re-default
    model versions, which no other module should see."""
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {"VAE_MAX_DATASET_BYTES": str(64 * 1024)}
    with own_models_service(models_dir, tmp, TOKEN, env) as service:
        yield service


# .npy bodies of /encode and /decode, and video files to /encode, go out as the fuzzed bytes,
# like any binary body.
schemathesis.serializer.alias(NPY_MEDIA_TYPE, "application/octet-stream")
schemathesis.serializer.alias("video/mp4", "application/octet-stream")

# The document the app serves, read from the app object so pytest can collect one test per
# operation before any server runs; `test_the_served_document_is_the_fuzzed_one` checks that the
# live server's /openapi.json is this same document.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_str(CONFIG))


def test_the_served_document_is_the_fuzzed_one(fuzzed: ServiceProcess) -> None:
    served = httpx.get(f"{fuzzed.url}/openapi.json", timeout=REQUEST_TIMEOUT_S).json()
    assert served == DOCUMENT
    assert sum(len(methods) for methods in served["paths"].values()) >= 20


@schema.parametrize()
def test_fuzz_with_admin_token(case: Any, fuzzed: ServiceProcess) -> None:
    case.call_and_validate(
        base_url=fuzzed.url, headers=AUTH, checks=CHECKS, timeout=REQUEST_TIMEOUT_S
    )


@schema.parametrize()
def test_fuzz_without_a_token(case: Any, fuzzed: ServiceProcess) -> None:
    case.call_and_validate(base_url=fuzzed.url, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)


def test_fuzzing_started_no_training_and_logged_no_unhandled_error(fuzzed: ServiceProcess) -> None:
    jobs = httpx.get(f"{fuzzed.url}/jobs", timeout=REQUEST_TIMEOUT_S)
    assert jobs.status_code == 200 and jobs.json() == []
    log = fuzzed.log.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]

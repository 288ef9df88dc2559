"""GET /metrics after a short, known load: every metric app/metrics.py defines is there, with values
that add up to the traffic that was sent.

The service runs on its own (its own counters start at zero) with the cache in Redis and a small
batch queue, so a request larger than the queue can be refused on purpose.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app.repository.store import ModelRepository
from tests.support.dataset_builders import png_b64
from tests.support.processes import running_service, start_redis

MAX_QUEUE = 16
ENCODE_IMAGES = 8  # unique images, sent twice: 8 misses, then 8 hits
DECODES, DECODE_ROWS = 6, 4
SAMPLES, SAMPLE_ROWS = 4, 3
INTERPOLATIONS, STEPS = 3, 5
MAX_BODY = 65_536  # VAE_MAX_BODY_BYTES here: past it a body is a 413
ID_LIKE = re.compile(r"[0-9a-f-]{8,}|[0-9]{4,}")  # uuids, hashes, long numbers


@dataclass
class Scrape:
    """The parsed /metrics text and what the load sent."""

    families: dict[str, Any]
    text: str
    sent: dict[str, int] = field(default_factory=dict)

    def samples(self, name: str) -> list[Sample]:
        """Every sample whose name is `name` (a family name or a sample name such as *_count)."""
        return [s for f in self.families.values() for s in f.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample `name` with (at least) these labels; fails when absent."""
        found = [
            s for s in self.samples(name) if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples in\n{self.text[:4000]}"
        return float(found[0].value)


def ok(reply: httpx.Response, status: int = 200) -> httpx.Response:
    assert reply.status_code == status, reply.text
    return reply


def run_load(http: httpx.Client, digits: np.ndarray, dim: int) -> dict[str, int]:
    """A short mixed load with counts known in advance; returns them."""
    images = [png_b64(d) for d in digits[:ENCODE_IMAGES]]
    pairs = [images[i : i + 2] for i in range(0, ENCODE_IMAGES, 2)]
    for pair in pairs:  # first sight: misses
        latents = ok(http.post("/encode", json={"images": pair})).json()["latents"]
        assert [entry["cached"] for entry in latents] == [False, False]
    rng = np.random.default_rng(0)

    def post(path: str, body: dict[str, Any]) -> None:
        ok(http.post(path, json=body))

    with ThreadPoolExecutor(4) as pool:  # concurrent: batches may form
        jobs = [pool.submit(post, "/encode", {"images": pair}) for pair in pairs]  # hits
        jobs += [
            pool.submit(
                post, "/decode", {"latents": rng.standard_normal((DECODE_ROWS, dim)).tolist()}
            )
            for _ in range(DECODES)
        ]
        jobs += [
            pool.submit(post, "/sample", {"n": SAMPLE_ROWS, "seed": i}) for i in range(SAMPLES)
        ]
        for job in jobs:
            job.result()
    for i in range(INTERPOLATIONS):  # from two cached images: 2 hits each
        body = {"start": {"image": images[i]}, "end": {"image": images[i + 1]}, "steps": STEPS}
        post("/interpolate", body)
    ok(http.post("/encode", json={"images": []}), 422)
    ok(http.post("/encode", json={"model": "no-such-model", "images": images[:1]}), 404)
    too_many = rng.standard_normal((MAX_QUEUE + 1, dim)).tolist()
    ok(http.post("/decode", json={"latents": too_many}), 413)  # more than the queue holds
    ok(http.get("/models/mnist"))
    too_large = b"{" + b" " * MAX_BODY + b"}"
    json_type = {"content-type": "application/json"}
    ok(http.post("/interpolate", content=too_large, headers=json_type), 413)  # Content-Length
    ok(http.post("/decode", content=iter([too_large]), headers=json_type), 413)  # chunked
    return {
        "encode_200": 2 * len(pairs),
        "encode_all": 2 * len(pairs) + 2,
        "misses": ENCODE_IMAGES,
        "hits": ENCODE_IMAGES + 2 * INTERPOLATIONS,
        "decoded_rows": DECODES * DECODE_ROWS + SAMPLES * SAMPLE_ROWS + INTERPOLATIONS * STEPS,
        "decode_200": DECODES,
    }


@pytest.fixture(scope="module")
def scrape(
    models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    heldout_digits: tuple[np.ndarray, np.ndarray],
) -> Iterator[Scrape]:
    """Runs the load against a fresh service and scrapes /metrics once."""
    redis = start_redis()
    env = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_REDIS_URL": redis.url,
        "VAE_MAX_QUEUE": str(MAX_QUEUE),
        "VAE_MAX_BODY_BYTES": str(MAX_BODY),
    }
    try:
        with running_service(env, tmp_path_factory.mktemp("metrics")) as service:
            with service.client() as http:
                dim = int(
                    ok(http.get("/models/mnist")).json()["versions"][-1]["manifest"]["latent_dim"]
                )
                sent = run_load(http, heldout_digits[0][200:], dim)
                reply = ok(http.get("/metrics"))
            assert reply.headers["content-type"].startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(reply.text)}
            yield Scrape(families, reply.text, sent)
    finally:
        redis.stop()


def check_histogram(scrape: Scrape, name: str, **labels: str) -> tuple[float, float]:
    """Buckets cumulative and ending in +Inf == count; returns (count, sum)."""
    assert scrape.families[name].type == "histogram"
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in scrape.samples(f"{name}_bucket")
        if all(s.labels.get(k) == v for k, v in labels.items())
    )
    assert buckets, f"no buckets for {name}{labels}"
    counts = [count for _, count in buckets]
    assert counts == sorted(counts), f"{name} buckets are not cumulative"
    assert math.isinf(buckets[-1][0])
    count = scrape.value(f"{name}_count", **labels)
    total = scrape.value(f"{name}_sum", **labels)
    assert buckets[-1][1] == count
    assert total >= 0
    return count, total


def test_every_metric_design_names_is_exported(scrape: Scrape) -> None:
    expected = {
        "vae_http_requests": "counter",  # requests by route and status
        "vae_http_request_duration_seconds": "histogram",
        "vae_http_requests_in_progress": "gauge",
        "vae_queue_duration_seconds": "histogram",
        "vae_inference_duration_seconds": "histogram",  # compute
        "vae_batch_size": "histogram",
        "vae_pending_samples": "gauge",  # pending work in the batch queues
        "vae_rejections": "counter",  # by reason
        "vae_cache_hits": "counter",
        "vae_cache_misses": "counter",
        "vae_cache_errors": "counter",
        "vae_cache_up": "gauge",
        "vae_models_loaded": "gauge",
    }
    for name, kind in expected.items():
        assert name in scrape.families, f"{name} missing from /metrics"
        assert scrape.families[name].type == kind, name


def test_names_follow_the_conventions(scrape: Scrape) -> None:
    ours = [f for name, f in scrape.families.items() if name.startswith("vae_")]
    assert len(ours) >= 13
    for family in ours:
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if "duration" in family.name:
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:  # never an id: no label value is a long number or hash
            for value in sample.labels.values():
                assert not ID_LIKE.fullmatch(value), f"{sample.name}: id-like label {value!r}"


def test_no_created_series_are_exported(scrape: Scrape) -> None:
    """prometheus_client's *_created timestamps are off: one series fewer per counter child."""
    created = [s.name for f in scrape.families.values() for s in f.samples if "_created" in s.name]
    assert created == []
    assert "_created" not in scrape.text


def test_a_body_past_the_limit_counts_under_its_route_and_as_a_rejection(scrape: Scrape) -> None:
    """Refused before routing (declared length) or while read (chunked): either way the 413 is
    counted under the route it was sent to, and as a rejection for its size."""
    for route, count in (("/interpolate", 1), ("/decode", 2)):  # /decode: one past the queue
        labels = {"method": "POST", "route": route, "status": "413"}
        assert scrape.value("vae_http_requests_total", **labels) == count, labels
    assert not [
        s
        for s in scrape.samples("vae_http_requests_total")
        if s.labels["status"] == "413" and s.labels["route"] == "unmatched"
    ]
    assert scrape.value("vae_rejections_total", model="", graph="", reason="too_large") == 2


def test_requests_are_counted_by_route_template_and_status(scrape: Scrape) -> None:
    sent = scrape.sent
    counted = {  # (method, route template, status): the requests the load sent
        ("POST", "/encode", "200"): sent["encode_200"],
        ("POST", "/encode", "422"): 1,
        ("POST", "/encode", "404"): 1,
        ("POST", "/decode", "200"): sent["decode_200"],
        ("POST", "/decode", "413"): 2,  # past the queue, and a chunked body past the limit
        ("POST", "/sample", "200"): SAMPLES,
        ("POST", "/interpolate", "200"): INTERPOLATIONS,
    }
    for (method, route, status), count in counted.items():
        labels = {"method": method, "route": route, "status": status}
        assert scrape.value("vae_http_requests_total", **labels) == count, labels
    assert (
        scrape.value("vae_http_requests_total", route="/models/{name}", method="GET", status="200")
        >= 1
    )
    routes = {s.labels["route"] for s in scrape.samples("vae_http_requests_total")}
    assert "/models/mnist" not in routes  # the template, never the raw path
    # the scrape itself is the one request in progress
    assert 0 <= scrape.value("vae_http_requests_in_progress") <= 1


def test_request_durations_cover_every_request(scrape: Scrape) -> None:
    count, total = check_histogram(
        scrape, "vae_http_request_duration_seconds", route="/encode", method="POST"
    )
    assert count == scrape.sent["encode_all"]
    assert 0 < total / count < 5.0
    count, _ = check_histogram(
        scrape, "vae_http_request_duration_seconds", route="/sample", method="POST"
    )
    assert count == SAMPLES


def test_queue_compute_and_batch_size_histograms_add_up(scrape: Scrape) -> None:
    for graph in ("encoder", "decoder"):
        queued, waited = check_histogram(
            scrape, "vae_queue_duration_seconds", model="mnist", graph=graph
        )
        batches, computed = check_histogram(
            scrape, "vae_inference_duration_seconds", model="mnist", graph=graph
        )
        sized, rows = check_histogram(scrape, "vae_batch_size", model="mnist", graph=graph)
        assert batches >= 1 and sized == batches  # one compute time and one size per ONNX call
        assert queued >= batches  # every queued request waited once; a batch holds one or more
        assert 0 < computed / batches < 5.0
        assert waited / queued < 5.0
        assert rows >= batches
    # the decoder has no cache: every decoded row went through a batch exactly once
    _, decoded = check_histogram(scrape, "vae_batch_size", model="mnist", graph="decoder")
    assert decoded == scrape.sent["decoded_rows"]
    # the encoder computed each unique image once (the rest were cache hits)
    _, encoded = check_histogram(scrape, "vae_batch_size", model="mnist", graph="encoder")
    assert encoded == scrape.sent["misses"]


def test_pending_work_is_zero_at_rest_and_rejections_have_a_reason(scrape: Scrape) -> None:
    for graph in ("encoder", "decoder"):
        assert scrape.value("vae_pending_samples", model="mnist", graph=graph) == 0
    assert (
        scrape.value("vae_rejections_total", model="mnist", graph="decoder", reason="too_large")
        == 1
    )
    reasons = {s.labels["reason"] for s in scrape.samples("vae_rejections_total")}
    assert reasons <= {"queue_full", "deadline", "cancelled", "too_large"}


def test_cache_hits_misses_and_health(scrape: Scrape) -> None:
    assert scrape.value("vae_cache_misses_total", backend="redis") == scrape.sent["misses"]
    assert scrape.value("vae_cache_hits_total", backend="redis") == scrape.sent["hits"]
    assert not [s for s in scrape.samples("vae_cache_errors_total") if s.value > 0]
    assert scrape.value("vae_cache_up", backend="redis") == 1


def test_models_loaded(scrape: Scrape, models_dir: Path) -> None:
    shipped = ModelRepository(models_dir)
    assert scrape.value("vae_models_loaded") == len(shipped.names())  # one version each
    assert scrape.value("vae_model_default_version", model="mnist") >= 1


def test_jobs_by_state_and_training_progress(scrape: Scrape) -> None:
    assert scrape.families["vae_jobs"].type == "gauge"
    states = {s.labels["state"]: s.value for s in scrape.samples("vae_jobs")}
    assert set(states) >= {"queued", "running", "succeeded", "failed", "cancelled"}
    assert all(value == 0 for value in states.values())  # this load submitted no job
    assert scrape.families["vae_training_progress_ratio"].type == "gauge"
    assert all(0 <= s.value <= 1 for s in scrape.samples("vae_training_progress_ratio"))

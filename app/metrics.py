"""Every Prometheus metric of the service, in one place. Prefix `vae_`, base units, no ids as labels."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

# No `*_created` series beside every counter and histogram: Prometheus does not use them, and
# they were most of a scrape's series. Process-wide: the worker's registry too.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# HTTP
REQUESTS = Counter(
    "vae_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "vae_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
IN_PROGRESS = Gauge("vae_http_requests_in_progress", "HTTP requests being answered")

# Inference and batching
QUEUE_SECONDS = Histogram(
    "vae_queue_duration_seconds", "Time a request waited for its batch", ["model", "graph"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
COMPUTE_SECONDS = Histogram(
    "vae_inference_duration_seconds", "ONNX Runtime time per batch", ["model", "graph"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
BATCH_SIZE = Histogram(
    "vae_batch_size", "Samples per ONNX Runtime call", ["model", "graph"], buckets=BATCH_BUCKETS
)
PENDING_REQUESTS = Gauge("vae_pending_samples", "Samples queued for a batch", ["model", "graph"])
REJECTIONS = Counter(
    "vae_rejections_total", "Requests dropped before compute", ["model", "graph", "reason"]
)

# Latent cache
CACHE_HITS = Counter("vae_cache_hits_total", "Latent cache hits", ["backend"])
CACHE_MISSES = Counter("vae_cache_misses_total", "Latent cache misses", ["backend"])
CACHE_ERRORS = Counter("vae_cache_errors_total", "Latent cache operations that failed", ["backend"])
CACHE_UP = Gauge(
    "vae_cache_up", "1 when the latent cache backend answers, 0 when degraded", ["backend"]
)

# Models
MODELS_LOADED = Gauge("vae_models_loaded", "Model versions loaded in this process")
MODEL_LOAD_FAILURES = Counter("vae_model_load_failures_total", "Model versions that failed to load")
MODEL_VERIFICATION_FAILURES = Counter(
    "vae_model_verification_failures_total",
    "Model versions refused because a file is not the one their manifest names, by reason: "
    "mismatch (sha256), missing, unreadable, timeout (VAE_FILE_READ_TIMEOUT_S)",
    ["reason"],
)
MODEL_ENGINE = Gauge(
    "vae_model_engine_info",
    "1 for each loaded version's graph (encoder, decoder) with the engine and precision chosen "
    "for it (GET /models/{name} says why)",
    ["model", "version", "graph", "engine", "precision"],
)
MODEL_INFO = Gauge("vae_model_default_version", "The default version of each model", ["model"])

# Datasets
DATASET_BYTES = Gauge("vae_dataset_bytes", "Bytes the stored datasets take on disk")

# Training jobs
JOBS = Gauge("vae_jobs", "Training jobs by state", ["state"])
TRAINING_PROGRESS = Gauge(
    "vae_training_progress_ratio", "Share of training steps done, by model being trained", ["model"]
)

# The training worker (`vae worker --metrics-port`). RQ trains in a forked work-horse that exits
# with its job, so the worker's parent process reports these (app/jobs/worker_metrics.py), from a
# registry of their own: a worker exposes its jobs, never the API's metrics at zero.
WORKER_REGISTRY = CollectorRegistry()
ProcessCollector(registry=WORKER_REGISTRY)
WORKER_BUSY = Gauge(
    "vae_worker_busy", "1 while this worker trains a job, else 0", registry=WORKER_REGISTRY
)
WORKER_JOBS = Counter(
    "vae_worker_jobs_total", "Training jobs this worker finished, by outcome", ["status"],
    registry=WORKER_REGISTRY,
)  # fmt: skip
WORKER_TRAINING_PROGRESS = Gauge(
    "vae_training_progress_ratio", "Share of training steps done, by model being trained", ["model"],
    registry=WORKER_REGISTRY,
)  # fmt: skip
WORKER_TRAINING_THROUGHPUT = Gauge(
    "vae_training_samples_per_second", "Training throughput, by model being trained", ["model"],
    registry=WORKER_REGISTRY,
)  # fmt: skip
WORKER_TRAINING_LOSS = Gauge(
    "vae_training_loss_nats", "Training loss (negative ELBO, KL weighted) per image, by model being trained",
    ["model"], registry=WORKER_REGISTRY,
)  # fmt: skip

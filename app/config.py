"""Settings: one class, read from `VAE_`-prefixed environment variables (and a .env file)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.storage.locations import Location

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SpatialBatching = Literal["auto", "on", "off"]  # VAE_SPATIAL_BATCHING: see Settings
EngineSetting = Literal["auto", "onnxruntime", "openvino"]  # VAE_ENGINE
PrecisionSetting = Literal["auto", "fp32", "bf16", "fp16"]  # VAE_PRECISION
TilingSetting = Literal["auto", "always", "never"]  # VAE_TILING


class Settings(BaseSettings):
    """Everything the service can be told. Defaults give the embedded single-process setup."""

    model_config = SettingsConfigDict(env_prefix="VAE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    models_dir: Location = Field(
        PROJECT_ROOT / "models", description="a directory, or s3://bucket/prefix in an object store"
    )
    data_dir: Location = Field(
        PROJECT_ROOT / "data", description="a directory, or s3://bucket/prefix in an object store"
    )
    s3_endpoint_url: str | None = Field(
        None, description="the S3-compatible endpoint of s3:// locations (AWS when unset)"
    )
    shipped_models: Path = Field(
        PROJECT_ROOT / "models",
        description="the models an empty object-store repository is seeded with (the image's)",
    )
    models_cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "vae-models-cache",
        description="an api replica's local copy of an s3:// model repository",
    )
    default_model: str = "mnist"
    admin_token: str | None = None
    redis_url: str | None = None
    cors_origins: list[str] = Field(default_factory=list)
    access_log: bool = Field(
        False, description="a log line per request (costs ~5% of the event loop under load)"
    )

    # Inference engines (app/runtime)
    engine: EngineSetting = Field(
        "auto",
        description="the engine running a version's graphs: auto picks per version and device "
        "(the faster one at the precision chosen), or onnxruntime, openvino",
    )
    precision: PrecisionSetting = Field(
        "auto",
        description="auto takes bf16 (fp16 on a GPU) only where the device runs it natively and "
        "the version passes its quality gate against fp32; else fp32",
    )
    compiled_shapes: int = Field(
        4, ge=1, le=64, description="input shapes OpenVINO keeps compiled per graph (an LRU)"
    )
    threads: int | None = Field(None, ge=1, description="intra-op threads; all cores when unset")
    ort_spinning: bool = Field(
        True, description="idle intra-op threads busy-wait (faster hand-off, burns CPU)"
    )

    # Micro-batching
    batching: bool = True
    max_batch_size: int = Field(64, ge=1, le=4096)
    max_delay_ms: float = Field(2.0, ge=0.0, le=1000.0)
    max_queue: int = Field(2048, ge=1)
    batches_in_flight: int = Field(1, ge=1, le=64)
    dispatch_when_idle: bool = Field(
        True,
        description="under light load, send a batch at once when none is running, not after "
        "max_delay_ms",
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="a request's deadline, plus timeout_per_megapixel_s for images"
    )
    timeout_per_megapixel_s: float = Field(
        30.0, ge=0, description="a spatial request's deadline grows by this per megapixel"
    )
    max_request_timeout_s: float = Field(
        600.0, gt=0, description="the cap on a request's deadline, however large its images"
    )
    max_loaded_versions: int | None = Field(
        None,
        ge=1,
        description="versions kept loaded at once; past it (or the memory budget) the least "
        "recently used non-default version is unloaded, and loads again on demand",
    )
    memory_budget_mb: int | None = Field(
        None,
        ge=64,
        description="memory the loaded versions and one request's peak may take: a larger "
        "request is tiled or refused (413), versions past it unloaded least recently used; "
        "unset: 3/4 of the container's limit (or of the machine's memory)",
    )

    # Connections and shutdown (app/api/connections.py, app/api/limits.py)
    shutdown_timeout_s: int = Field(
        10, ge=1, description="after SIGTERM, requests still running past this are cut off"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="a request's line and headers must arrive within this"
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="a body must arrive within this, plus a second per body_min_rate"
    )
    body_min_rate: int = Field(
        1024, ge=1, description="bytes a second a slow body must keep up to earn more time"
    )
    keep_alive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after")

    # Spatial models (kind autoencoder: imported diffusion VAEs)
    max_pixels: int = Field(
        4096 * 4096, ge=64, description="the largest image (height x width) a spatial model takes"
    )
    max_request_pixels: int = Field(
        2 * 4096 * 4096,
        ge=64,
        description="image pixels one request to a spatial model may carry in or out, all its "
        "images (or interpolation steps) together",
    )
    max_batch_pixels: int = Field(
        1024 * 1024, ge=64, description="image pixels one batch of a spatial model may hold"
    )
    spatial_batching: SpatialBatching = Field(
        "auto",
        description="batch a spatial model's requests: auto batches on a GPU and not on the "
        "CPU, where these decoders run no faster per image in a batch",
    )
    tiling: TilingSetting = Field(
        "auto",
        description="auto tiles an image only when its decode would not fit the memory budget "
        "(or, for a model with a bounded receptive field, with an overlap that keeps it exact)",
    )
    tile_size: int = Field(
        512, ge=0, description="the tile's side in pixels (diffusers' tile_sample_min_size)"
    )
    tile_overlap: float = Field(
        0.25, ge=0.0, lt=1.0, description="the share of a tile blended with its neighbours"
    )
    remote_token: str | None = Field(
        None, description="bearer token the /remote/{model}/... routes require, when set"
    )

    # Request limits
    max_items: int = Field(256, ge=1, description="images, latents or samples in one request")
    max_steps: int = Field(64, ge=2)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    max_dataset_bytes: int = Field(
        512 * 1024 * 1024, ge=1024, description="a dataset upload's size cap"
    )
    max_dataset_unpacked_bytes: int = Field(
        2 * 1024 * 1024 * 1024, ge=1024, description="what a dataset upload may unpack or decode to"
    )

    # Per-client rate limit of the expensive routes (app/api/ratelimit.py)
    rate_limit_per_s: float = Field(
        0.0, ge=0.0, description="requests a second per client; 0 turns limiting off"
    )
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may make at once")
    rate_limit_trusted_proxies: int = Field(
        0, ge=0, description="proxies in front whose X-Forwarded-For entries name the client"
    )

    # Latent cache
    cache_ttl_s: int = Field(3600, ge=1)
    cache_max_entries: int = Field(65536, ge=0)
    cache_redis_timeout_s: float = Field(0.1, gt=0, le=5.0, description="Redis socket timeout")
    cache_breaker_failures: int = Field(3, ge=1, description="Redis failures in a row to open")
    cache_breaker_reset_s: float = Field(2.0, gt=0, description="open breaker's cool-down")

    # Training jobs
    job_timeout_s: float = Field(6 * 3600, gt=0, description="RQ's limit on one job")
    job_stale_after_s: float = Field(
        60.0, gt=0, description="a running job with no heartbeat for this long has failed"
    )
    local_job_workers: int = Field(1, ge=1, le=16, description="embedded backend: jobs at once")

    # Hot reload of the model repository
    reload_interval_s: float = Field(2.0, ge=0.0, description="0 turns polling off")
    file_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="a model file not read (and checked against its sha256) within this fails "
        "its version: a hung file system never blocks the loading of the others",
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

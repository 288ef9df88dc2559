# syntax=docker/dockerfile:1.7
#
# Two images from one file (docker-compose.yml builds both):
#   docker build --target api -t vae-service-api .        ONNX Runtime, no torch: small, starts fast
#   docker build --target worker -t vae-service-worker .  torch (CPU) for `vae worker`
# On a host with an NVIDIA GPU, --build-arg ACCELERATOR=cuda makes the api run onnxruntime-gpu and
# the worker a CUDA torch (docker-compose.gpu.yml does this and reserves the GPU).
#
# Layers go from what changes least to what changes most: the OS user, the dependencies (read from
# pyproject.toml alone), the scripts, the shipped models, and last the code. Nothing secret is
# baked in: VAE_ADMIN_TOKEN comes from the environment at run time (.dockerignore keeps .env out).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# One uid for both images: they share the /data volume.
RUN groupadd --system --gid 10001 vae \
    && useradd --system --uid 10001 --gid vae --home-dir /app --no-create-home --shell /usr/sbin/nologin vae \
    && python -m venv /opt/venv \
    && mkdir -p /app /data/models \
    && chown -R vae:vae /data
WORKDIR /app

# The project as a wheel, installed with --no-deps into the final images (the only stage that
# sees the code, so a code change rebuilds from here on and nothing before).
FROM base AS wheel
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM base AS api-deps
ARG ACCELERATOR=cpu
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN python /tmp/build/requirements.py --pyproject /tmp/build/pyproject.toml --accelerator "$ACCELERATOR" > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt \
    && rm -rf /tmp/build

FROM base AS worker-deps
ARG ACCELERATOR=cpu
# Keep in step with the `train` extra in pyproject.toml (a test checks).
ARG TORCH_VERSION=2.13.0
# PyTorch's CUDA wheel index for ACCELERATOR=cuda (cu126, cu128, ...: one your driver supports).
ARG TORCH_CUDA=cu128
COPY pyproject.toml docker/requirements.py /tmp/build/
RUN if [ "$ACCELERATOR" = cuda ]; then flavour="$TORCH_CUDA"; else flavour=cpu; fi \
    && pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${flavour}" \
    && python /tmp/build/requirements.py --pyproject /tmp/build/pyproject.toml --extra train > /tmp/build/requirements.txt \
    && pip install -r /tmp/build/requirements.txt \
    && rm -rf /tmp/build

FROM api-deps AS api
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/vae-entrypoint
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/vae-healthcheck
# The shipped models, read-only here; the entrypoint copies them into an empty models volume.
COPY models /app/models-shipped
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
ENV VAE_HOST=0.0.0.0 \
    VAE_PORT=8000 \
    VAE_MODELS_DIR=/data/models \
    VAE_DATA_DIR=/data \
    VAE_SHIPPED_MODELS=/app/models-shipped
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["vae-healthcheck", "api"]
ENTRYPOINT ["vae-entrypoint"]
# One uvicorn process per container: scale with replicas, not workers.
CMD ["vae", "serve"]

FROM worker-deps AS worker
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/vae-entrypoint
COPY --chmod=0755 docker/healthcheck.py /usr/local/bin/vae-healthcheck
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
ENV VAE_MODELS_DIR=/data/models \
    VAE_DATA_DIR=/data \
    VAE_WORKER_METRICS_HOST=0.0.0.0 \
    VAE_WORKER_METRICS_PORT=9100
USER 10001:10001
EXPOSE 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["vae-healthcheck", "worker"]
ENTRYPOINT ["vae-entrypoint"]
CMD ["vae", "worker"]

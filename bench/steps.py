"""CPU cost of each step of one /decode request in the service's own code, in-process, no HTTP:

    .venv/bin/python -m bench.steps

Set against the server CPU a request costs under load (bench.run's server CPU / req/s), what is
left is the HTTP stack (uvicorn, Starlette, FastAPI, middleware, access log) and the batcher's
hand-offs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from app.api.rendering import images_body
from app.api.responses import json_response
from app.api.schemas import DecodeRequest
from app.runtime.sessions import load_graph
from app.serving.adapters.inputs import check_finite_output, latent_batch
from bench import machine
from bench.models import BenchModel, conv_model, shipped_model
from bench.run import WORK
from bench.systems import _latents_body, latent_rows


def per_call_us(step: Callable[[], Any], seconds: float = 0.5) -> float:
    """Mean process CPU microseconds a call, over about `seconds`."""
    step()
    calls = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        step()
        calls += 1
    return (time.process_time() - cpu0) / calls * 1e6


def steps(model: BenchModel) -> dict[str, float]:
    """Microseconds of CPU for each step of a one-latent /decode."""
    body = _latents_body(latent_rows(model, 1)[0]).encode()
    manifest = SimpleNamespace(latent_dim=model.latent_dim)
    payload = DecodeRequest.model_validate_json(body)
    z = latent_batch(payload.latents, manifest)  # type: ignore[arg-type]
    graph = load_graph(model.decoder, machine.cores())
    z64 = np.repeat(z, 64, axis=0)
    image = graph.run(z)["x_mean"]
    rendered = images_body(check_finite_output(image), "png")
    return {
        "parse JSON body (pydantic)": per_call_us(lambda: DecodeRequest.model_validate_json(body)),
        "latents -> array, checks": per_call_us(lambda: latent_batch(payload.latents, manifest)),  # type: ignore[arg-type]
        "ORT decode, batch of 1": per_call_us(lambda: graph.run(z)),
        "ORT decode, batch of 64, per sample": per_call_us(lambda: graph.run(z64)) / 64,
        "PNG + base64, one image": per_call_us(
            lambda: images_body(check_finite_output(image), "png")
        ),
        "JSON response (orjson)": per_call_us(
            lambda: json_response({"model": "m", "version": 1, **rendered})
        ),
    }


def main() -> int:
    """Prints the steps for both models."""
    for model in (shipped_model(WORK), conv_model(WORK)):
        print(f"{model.key}: {model.note}")
        for name, micros in steps(model).items():
            print(f"  {name:40s} {micros:9.1f} us CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

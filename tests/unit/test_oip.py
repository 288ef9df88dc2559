"""The Open Inference Protocol routes' own rules, without a model: OIP model names, errors in the
protocol's form, and hot /infer routes that refuse to skip what a documented route would run."""

from __future__ import annotations

import orjson
import pytest
from fastapi import APIRouter, Depends, FastAPI

from app.api import oip
from app.api.hot_routes import HotRouteMismatch
from app.api.oip_tensors import TensorFormatError
from app.repository.store import ModelNotFound
from app.serving.adapters.errors import InvalidLatent, TooLarge
from app.serving.batcher import QueueFull


@pytest.mark.parametrize(
    ("model", "expected"),
    [("mnist.decoder", ("mnist", "decoder")), ("a-b.encoder", ("a-b", "encoder"))],
)
def test_oip_names_are_a_model_and_a_graph(model: str, expected: tuple[str, str]) -> None:
    assert oip.split_model(model) == expected


@pytest.mark.parametrize("model", ["mnist", "mnist.prior", "mnist.decoder.x"])
def test_other_names_say_what_oip_names_are(model: str) -> None:
    with pytest.raises(ModelNotFound, match=r"'<name>\.encoder' and '<name>\.decoder'"):
        oip.split_model(model)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TensorFormatError("shape"), 400),
        (ModelNotFound("no model"), 404),
        (TooLarge("at most 256"), 413),
        (InvalidLatent("wrong width"), 422),
        (QueueFull(3.0), 429),
    ],
)
def test_request_errors_answer_in_the_protocol_s_form(error: Exception, status: int) -> None:
    answer = oip.oip_error(error)
    assert answer is not None and answer.status_code == status
    assert orjson.loads(bytes(answer.body)) == {"error": str(error)}
    if status == 429:
        assert answer.headers["retry-after"] == "3"


def test_a_fault_is_left_to_the_app_s_handler() -> None:
    assert oip.oip_error(RuntimeError("a bug")) is None


def _extra() -> None:
    """A dependency the hot route knows nothing about."""


def test_the_hot_infer_routes_come_first() -> None:
    app = FastAPI()
    app.include_router(oip.router)
    oip.install_hot_routes(app)
    first = {getattr(route, "path", None) for route in app.router.routes[:2]}
    assert first == {"/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"}


def test_a_dependency_on_the_documented_infer_route_is_refused() -> None:
    router = APIRouter(prefix="/v2")
    router.post("/models/{model}/infer", dependencies=[Depends(_extra)])(oip.infer)
    router.post("/models/{model}/versions/{version}/infer")(oip.version_infer)
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(HotRouteMismatch, match="_extra"):
        oip.install_hot_routes(app)


def test_no_documented_infer_route_is_refused() -> None:
    with pytest.raises(HotRouteMismatch, match="no documented POST"):
        oip.install_hot_routes(FastAPI())

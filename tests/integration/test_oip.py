"""The Open Inference Protocol v2 over real HTTP, driven by Triton's own client
(`tritonclient.http`, unchanged) against `vae serve` with the shipped models."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.support.processes import ServiceProcess, running_service


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Iterator[triton.InferenceServerClient]:
    oip = triton.InferenceServerClient(service.url.removeprefix("http://"))
    yield oip
    oip.close()


@pytest.fixture(scope="module")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as plain:
        yield plain


@pytest.fixture(scope="module")
def latent_dim(http: httpx.Client) -> int:
    return int(http.get("/models/mnist").json()["versions"][-1]["manifest"]["latent_dim"])


def _latents(dim: int, rows: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def _decode_npy(http: httpx.Client, z: np.ndarray, model: str = "mnist") -> np.ndarray:
    """Our own /decode's answer for the same latents, as a float32 array."""
    buffer = io.BytesIO()
    np.save(buffer, z)
    reply = http.post(
        f"/decode?model={model}&format=npy",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy"},
    )
    assert reply.status_code == 200, reply.text
    return np.load(io.BytesIO(reply.content))


def _z_input(z: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("z", list(z.shape), "FP32")
    tensor.set_data_from_numpy(z, binary_data=binary)
    return tensor


def test_server_metadata_names_the_binary_tensor_extension(
    client: triton.InferenceServerClient,
) -> None:
    metadata = client.get_server_metadata()
    assert metadata["name"] == "vae-service"
    assert metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]
    assert client.is_server_live() and client.is_server_ready()


def test_model_metadata_lists_tensors_with_free_batch(
    client: triton.InferenceServerClient, latent_dim: int
) -> None:
    decoder = client.get_model_metadata("mnist.decoder")
    assert decoder["name"] == "mnist.decoder"
    assert "1" in decoder["versions"]
    assert decoder["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, latent_dim]}]
    assert decoder["outputs"] == [
        {"name": "arrays", "datatype": "FP32", "shape": [-1, 1, 28, 28]},
        {"name": "images", "datatype": "BYTES", "shape": [-1]},
    ]
    encoder = client.get_model_metadata("mnist.encoder", model_version="1")
    assert [i["name"] for i in encoder["inputs"]] == ["arrays", "images"]
    assert encoder["outputs"] == [
        {"name": "mu", "datatype": "FP32", "shape": [-1, latent_dim]},
        {"name": "sigma", "datatype": "FP32", "shape": [-1, latent_dim]},
    ]


def test_model_readiness(client: triton.InferenceServerClient) -> None:
    assert client.is_model_ready("mnist.decoder")
    assert client.is_model_ready("mnist.encoder", model_version="1")
    assert not client.is_model_ready("mnist.decoder", model_version="99")
    assert not client.is_model_ready("nothing.decoder")
    assert client.is_model_ready("mnist")  # the health route still answers bare names


def test_binary_tensors_in_and_out_give_decode_s_arrays(
    client: triton.InferenceServerClient, http: httpx.Client, latent_dim: int
) -> None:
    z = _latents(latent_dim)
    outputs = [
        triton.InferRequestedOutput("arrays", binary_data=True),
        triton.InferRequestedOutput("images", binary_data=True),
    ]
    result = client.infer("mnist.decoder", [_z_input(z, True)], outputs=outputs, request_id="r1")
    arrays = result.as_numpy("arrays")
    assert arrays.dtype == np.float32 and arrays.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(arrays, _decode_npy(http, z))
    response = result.get_response()
    assert response["id"] == "r1" and response["model_version"] == "1"
    pngs = result.as_numpy("images")
    assert pngs.shape == (3,)
    with Image.open(io.BytesIO(base64.b64decode(pngs[0]))) as image:
        assert image.format == "PNG" and image.size == (28, 28)
        pixels = np.asarray(image, np.float32) / 255
    assert np.abs(pixels - arrays[0, 0]).max() <= 1 / 255 + 1e-6


def test_json_tensors_in_and_out_give_the_same_arrays(
    client: triton.InferenceServerClient, http: httpx.Client, latent_dim: int
) -> None:
    z = _latents(latent_dim, rows=2, seed=1)
    outputs = [triton.InferRequestedOutput("arrays", binary_data=False)]
    result = client.infer("mnist.decoder", [_z_input(z, False)], outputs=outputs)
    assert result.get_response()["outputs"][0]["data"]  # JSON, not binary
    np.testing.assert_allclose(result.as_numpy("arrays"), _decode_npy(http, z), atol=1e-6)


@pytest.mark.parametrize("packing", ["gzip", "deflate"])
def test_compressed_requests(
    client: triton.InferenceServerClient, http: httpx.Client, latent_dim: int, packing: str
) -> None:
    z = _latents(latent_dim, 2, seed=4)
    result = client.infer(
        "mnist.decoder", [_z_input(z, True)], request_compression_algorithm=packing
    )
    np.testing.assert_array_equal(result.as_numpy("arrays"), _decode_npy(http, z))


def test_version_path_and_all_outputs_by_default(
    client: triton.InferenceServerClient, latent_dim: int
) -> None:
    result = client.infer("mnist.decoder", [_z_input(_latents(latent_dim, 1), True)], "1")
    names = {output["name"] for output in result.get_response()["outputs"]}
    assert names == {"arrays", "images"}
    assert result.as_numpy("arrays").shape == (1, 1, 28, 28)


def test_encoder_matches_encode(
    client: triton.InferenceServerClient, http: httpx.Client, heldout_digits
) -> None:
    images = (heldout_digits[0][:4, None] / 255.0).astype(np.float32)
    tensor = triton.InferInput("arrays", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer("mnist.encoder", [tensor])
    ours = http.post("/encode", json={"arrays": images[:, 0].tolist()}).json()["latents"]
    np.testing.assert_allclose(result.as_numpy("mu"), [e["mu"] for e in ours], atol=1e-5)
    np.testing.assert_allclose(result.as_numpy("sigma"), [e["sigma"] for e in ours], atol=1e-5)


def test_encoder_takes_png_files_as_bytes(
    client: triton.InferenceServerClient, http: httpx.Client, heldout_digits
) -> None:
    buffer = io.BytesIO()
    Image.fromarray(heldout_digits[0][5]).save(buffer, format="PNG")
    files = np.array([buffer.getvalue()], dtype=np.object_)
    tensor = triton.InferInput("images", [1], "BYTES")
    tensor.set_data_from_numpy(files)
    result = client.infer("mnist.encoder", [tensor], outputs=[triton.InferRequestedOutput("mu")])
    text = base64.b64encode(buffer.getvalue()).decode()
    ours = http.post("/encode", json={"images": [text]}).json()["latents"][0]["mu"]
    np.testing.assert_allclose(result.as_numpy("mu")[0], ours, atol=1e-5)


def test_a_ladder_model_serves_its_graphs(
    client: triton.InferenceServerClient, http: httpx.Client
) -> None:
    dim = client.get_model_metadata("mnist-hvae.decoder")["inputs"][0]["shape"][1]
    z = _latents(dim, 2)
    arrays = client.infer("mnist-hvae.decoder", [_z_input(z, True)]).as_numpy("arrays")
    assert arrays.shape == (2, 1, 28, 28) and np.isfinite(arrays).all()
    outputs = client.get_model_metadata("mnist-hvae.encoder")["outputs"]
    assert [o["name"] for o in outputs] == ["mu", "sigma", "mu_bottom", "sigma_bottom"]


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("mnist", "404", "'<name>.decoder'"),
        ("nothing.decoder", "404", "no model named 'nothing'"),
        ("mnist.prior", "404", "'<name>.encoder'"),
    ],
)
def test_unknown_models_are_404_in_the_protocol_s_form(
    client: triton.InferenceServerClient, latent_dim: int, model: str, status: str, words: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(model, [_z_input(_latents(latent_dim, 1), True)])
    assert caught.value.status() == status
    assert words in caught.value.message()


def test_bad_tensors_are_4xx_with_a_message(
    client: triton.InferenceServerClient, latent_dim: int
) -> None:
    wrong_width = _latents(latent_dim + 1, 1)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist.decoder", [_z_input(wrong_width, True)])
    assert caught.value.status() == "422" and str(latent_dim) in caught.value.message()
    named = triton.InferInput("x", [1, latent_dim], "FP32")
    named.set_data_from_numpy(_latents(latent_dim, 1))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist.decoder", [named])
    assert caught.value.status() == "400" and "takes z" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.infer(
            "mnist.decoder",
            [_z_input(_latents(latent_dim, 1), True)],
            outputs=[triton.InferRequestedOutput("logits")],
        )
    assert caught.value.status() == "400" and "no output 'logits'" in caught.value.message()


def test_malformed_bodies_are_400(http: httpx.Client, latent_dim: int) -> None:
    url = "/v2/models/mnist.decoder/infer"
    reply = http.post(url, content=b"{not json")
    assert reply.status_code == 400 and "not valid" in reply.json()["error"]
    header = b'{"inputs":[{"name":"z","shape":[1,%d],"datatype":"FP32",' % latent_dim
    header += b'"parameters":{"binary_data_size":8}}]}'
    reply = http.post(
        url,
        content=header + b"\0" * 8,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert reply.status_code == 400 and "binary_data_size says 8" in reply.json()["error"]
    reply = http.post(url, content=header, headers={"Inference-Header-Content-Length": "x"})
    assert reply.status_code == 400 and "must be a number" in reply.json()["error"]


def _sample_value(metrics: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{") and all(part in line for part in wanted.split(",")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_infer_goes_through_the_batcher_limits_and_metrics(
    client: triton.InferenceServerClient, http: httpx.Client, latent_dim: int
) -> None:
    route = {"route": "/v2/models/{model}/infer", "method": "POST", "status": "200"}
    batch = {"model": "mnist", "graph": "decoder"}
    before = http.get("/metrics").text
    client.infer("mnist.decoder", [_z_input(_latents(latent_dim, 2), True)])
    after = http.get("/metrics").text
    counted = _sample_value(after, "vae_http_requests_total", **route)
    assert counted == _sample_value(before, "vae_http_requests_total", **route) + 1
    rows = _sample_value(after, "vae_batch_size_sum", **batch)
    assert rows >= _sample_value(before, "vae_batch_size_sum", **batch) + 2
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist.decoder", [_z_input(_latents(latent_dim, 257), True)])
    assert caught.value.status() == "413" and "at most 256" in caught.value.message()


@pytest.fixture(scope="module")
def spatial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` over a tiny random AutoencoderTiny (TAESD's architecture), "tiny"."""
    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers
    from tests.support.autoencoders import save

    root = tmp_path_factory.mktemp("oip-spatial")
    save("tiny", root / "tiny")
    import_diffusers(ModelRepository(root / "models"), root / "tiny", "tiny")
    env = {"VAE_MODELS_DIR": str(root / "models"), "VAE_DATA_DIR": str(root / "data"),
           "VAE_DEFAULT_MODEL": "tiny", "VAE_THREADS": "1"}  # fmt: skip
    with running_service(env, root) as service:
        yield service


def test_a_spatial_model_s_free_sides_and_arrays(spatial: ServiceProcess) -> None:
    oip = triton.InferenceServerClient(spatial.url.removeprefix("http://"))
    decoder = oip.get_model_metadata("tiny.decoder")
    assert decoder["inputs"] == [{"name": "z", "datatype": "FP32", "shape": [-1, 4, -1, -1]}]
    assert decoder["outputs"][0] == {"name": "arrays", "datatype": "FP32", "shape": [-1, 3, -1, -1]}
    z = np.random.default_rng(2).standard_normal((1, 4, 8, 12)).astype(np.float32)
    wanted = [triton.InferRequestedOutput("arrays", binary_data=True)]
    arrays = oip.infer("tiny.decoder", [_z_input(z, True)], outputs=wanted).as_numpy("arrays")
    with spatial.client() as http:
        np.testing.assert_array_equal(arrays, _decode_npy(http, z, "tiny"))
    assert arrays.shape == (1, 3, 16, 24)  # this tiny TAESD: 2 pixels a latent cell
    images = triton.InferInput("arrays", list(arrays.shape), "FP32")
    images.set_data_from_numpy(arrays)
    encoded = oip.infer("tiny.encoder", [images])
    names = [output["name"] for output in encoded.get_response()["outputs"]]
    assert names == ["mu"]  # TAESD's encoder is deterministic: no sigma
    assert encoded.as_numpy("mu").shape == (1, 4, 8, 12)
    oip.close()

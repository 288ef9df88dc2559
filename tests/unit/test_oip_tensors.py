"""The Open Inference Protocol's tensor codec: requests as tritonclient builds them parsed, answers
read back by tritonclient's own InferResult, BYTES in the extension's binary form."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import (
    deserialize_bytes_tensor,
    np_to_triton_dtype,
    serialize_byte_tensor,
)

from app.api.oip_tensors import (
    DATATYPES,
    OutputTensor,
    TensorFormatError,
    datatype_of,
    decompressed,
    deserialize_bytes,
    encode_response,
    parse_request,
    serialize_bytes,
)
from app.serving.adapters.errors import TooLarge


def _tritonclient_body(
    inputs: list[triton.InferInput], outputs: list[triton.InferRequestedOutput] | None = None
) -> tuple[bytes, str | None]:
    """The body and Inference-Header-Content-Length tritonclient sends for an infer call."""
    body, size = _get_inference_request(
        inputs=inputs,
        request_id="7",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    return body, None if size is None else str(size)


def _input(name: str, array: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_requests_parse_to_their_arrays(binary: bool) -> None:
    z = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    labels = np.array([2, 2, 2], dtype=np.int64)
    texts = np.array([b"a", b"", "\u00e9".encode()], dtype=np.object_)
    inputs = [_input("z", z, binary), _input("label", labels, binary), _input("t", texts, binary)]
    wanted = [triton.InferRequestedOutput("arrays", binary_data=binary)]
    parsed = parse_request(*_tritonclient_body(inputs, wanted))
    assert [(t.name, t.datatype) for t in parsed.inputs] == [
        ("z", "FP32"), ("label", "INT64"), ("t", "BYTES")
    ]  # fmt: skip
    np.testing.assert_array_equal(parsed.inputs[0].array, z)
    assert parsed.inputs[0].array.dtype == np.float32
    np.testing.assert_array_equal(parsed.inputs[1].array, labels)
    assert list(parsed.inputs[2].array) == list(texts)
    assert parsed.id == "7"
    assert parsed.outputs is not None and parsed.outputs[0].name == "arrays"
    assert parsed.outputs[0].binary is binary


def test_no_requested_outputs_means_all_in_binary_as_tritonclient_asks() -> None:
    parsed = parse_request(*_tritonclient_body([_input("z", np.zeros((1, 2), np.float32), True)]))
    assert parsed.outputs is None and parsed.binary_output


def test_json_data_may_be_nested() -> None:
    body = {
        "inputs": [{"name": "z", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]
    }
    parsed = parse_request(json.dumps(body).encode(), None)
    np.testing.assert_array_equal(parsed.inputs[0].array, [[1, 2], [3, 4]])


@pytest.mark.parametrize("binary", [True, False])
def test_answers_read_back_by_tritonclient(binary: bool) -> None:
    images = np.random.default_rng(0).random((2, 1, 3, 3), dtype=np.float32)
    pngs = np.array([b"iVBOR", b"xyz"], dtype=np.object_)
    codes = np.array([[1, -2]], dtype=np.int64)
    outputs = [
        (OutputTensor("arrays", "FP32", images), binary),
        (OutputTensor("images", "BYTES", pngs), binary),
        (OutputTensor("codes", "INT64", codes), False),
    ]
    body, length = encode_response({"model_name": "m.decoder", "model_version": "1"}, outputs)
    assert (length is not None) is binary
    result = triton.InferResult.from_response_body(body, header_length=length)
    assert result.get_response()["model_name"] == "m.decoder"
    np.testing.assert_array_equal(result.as_numpy("arrays"), images)
    assert [bytes(v) if binary else v.encode() for v in result.as_numpy("images")] == list(pngs)
    np.testing.assert_array_equal(result.as_numpy("codes"), codes)


def test_bytes_serialize_as_tritonclient_does() -> None:
    values = np.array([b"one", b"", b"\x00\xff" * 3], dtype=np.object_)
    assert serialize_bytes(values) == serialize_byte_tensor(values).item()
    np.testing.assert_array_equal(deserialize_bytes(serialize_bytes(values), 3), values)
    np.testing.assert_array_equal(
        deserialize_bytes(serialize_byte_tensor(values).item(), 3),
        deserialize_bytes_tensor(serialize_byte_tensor(values).item()),
    )


@pytest.mark.parametrize(
    "data",
    [b"\x05\x00\x00\x00abc", b"\x01\x00", b"\x01\x00\x00\x00ab"],
    ids=["short element", "short length", "bytes left over"],
)
def test_broken_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(TensorFormatError):
        deserialize_bytes(data, 1)


def test_datatypes_map_both_ways() -> None:
    for name, dtype in DATATYPES.items():
        assert datatype_of(np.zeros(1, dtype=dtype)) == name
    assert datatype_of(np.array(["text"])) == "BYTES"


def _binary_body(header: dict[str, object], data: bytes) -> tuple[bytes, str]:
    text = json.dumps(header).encode()
    return text + data, str(len(text))


@pytest.mark.parametrize(
    ("body", "length", "words"),
    [
        (b"[1, 2]", None, "list of 'inputs'"),
        (b"{oops", None, "not valid"),
        (b'{"inputs": []}', "x", "must be a number"),
        (b'{"inputs": []}', "99", "but the body is 14 bytes"),
        (b'{"inputs": [{"name": "z", "datatype": "FP32", "data": [1]}]}', None, "'shape'"),
        (b'{"inputs": [{"name": "z", "shape": [1], "datatype": "FP8", "data": [1]}]}', None,
         "'datatype'"),
        (b'{"inputs": [{"name": "z", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}', None,
         "holds 3 values, 'data' has 2"),
        (b'{"inputs": [{"name": "z", "shape": [1], "datatype": "INT64", "data": ["a"]}]}', None,
         "not INT64 values"),
        (b'{"inputs": [{"name": "z", "shape": [1], "datatype": "FP32"}]}', None, "needs 'data'"),
        (b'{"inputs": [{"shape": [1]}]}', None, "with a 'name'"),
        (b'{"inputs": [], "outputs": {"name": "a"}}', None, "'outputs' must be a list"),
        (b'{"inputs": [], "outputs": [{"name": "a", "parameters": 1}]}', None, "an object"),
    ],
)  # fmt: skip
def test_malformed_requests_say_what_is_wrong(body: bytes, length: str | None, words: str) -> None:
    with pytest.raises(TensorFormatError, match=words):
        parse_request(body, length)


def test_binary_sizes_must_add_up() -> None:
    tensor = {"name": "z", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}
    parse_request(*_binary_body({"inputs": [tensor]}, b"\0" * 8))
    with pytest.raises(TensorFormatError, match="passes the end"):
        parse_request(*_binary_body({"inputs": [tensor]}, b"\0" * 4))
    with pytest.raises(TensorFormatError, match="4 bytes more"):
        parse_request(*_binary_body({"inputs": [tensor]}, b"\0" * 12))
    wrong = {**tensor, "parameters": {"binary_data_size": 4}}
    with pytest.raises(TensorFormatError, match="is 8 bytes, binary_data_size says 4"):
        parse_request(*_binary_body({"inputs": [wrong]}, b"\0" * 4))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_unpack_within_the_limit(encoding: str) -> None:
    body = b'{"inputs": []}' * 10
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    assert decompressed(packed, encoding, len(body)) == body
    assert decompressed(body, None, 1) == body
    with pytest.raises(TooLarge, match=f"more than {len(body) - 1} bytes"):
        decompressed(packed, encoding, len(body) - 1)
    with pytest.raises(TensorFormatError, match="ends early"):
        decompressed(packed[:-6], encoding, len(body))
    with pytest.raises(TensorFormatError, match="not valid"):
        decompressed(b"plain text", encoding, len(body))
    with pytest.raises(TensorFormatError, match="send gzip, deflate or none"):
        decompressed(packed, "br", len(body))

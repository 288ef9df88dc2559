"""Open Inference Protocol v2 tensors over REST (KServe's and Triton's): an inference request's
JSON header and tensors in, an answer's out, with Triton's binary tensor extension both ways.

A request body is the JSON header, then (when the `Inference-Header-Content-Length` header gives
the JSON's length) each binary input's bytes, in input order, each `parameters.binary_data_size`
long. JSON tensor `data` is flat in row-major order (nested lists are read too); BYTES elements
are strings in JSON and 4-byte little-endian lengths then the bytes in binary. An answer carries
an output as binary when the output asks (`parameters.binary_data`) or, failing that, the request
does (`parameters.binary_data_output`); it is then `application/octet-stream`, the JSON header
first, its length in the answer's `Inference-Header-Content-Length`.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from app.serving.adapters.errors import TooLarge

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_MEDIA_TYPE = "application/octet-stream"
MAX_DIMS = 8

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
"""The protocol's datatypes as numpy's (BYTES: an object array of `bytes`)."""
_TEXT_TYPES = (np.object_, np.bytes_, np.str_)


class TensorFormatError(ValueError):
    """An inference request that is not the protocol's: a header that is not JSON, a tensor
    whose shape, datatype and data disagree, binary sizes that do not add up (400)."""


@dataclass(frozen=True)
class InputTensor:
    """One input of a request: its name, the protocol's datatype and the array."""

    name: str
    datatype: str
    array: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    """An output the request asks for; `binary` None when it leaves that to the request."""

    name: str
    binary: bool | None = None


@dataclass(frozen=True)
class InferRequest:
    """A parsed inference request."""

    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None
    """None: every output the model gives."""
    id: str | None = None
    binary_output: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> InputTensor | None:
        """The input named `name`, if the request has it."""
        return next((tensor for tensor in self.inputs if tensor.name == name), None)


@dataclass(frozen=True)
class OutputTensor:
    """One output of an answer."""

    name: str
    datatype: str
    array: np.ndarray


def datatype_of(array: np.ndarray) -> str:
    """The protocol's datatype of a numpy array."""
    if array.dtype.type in _TEXT_TYPES:
        return "BYTES"
    for name, dtype in DATATYPES.items():
        if dtype == array.dtype:
            return name
    raise TypeError(f"no Open Inference Protocol datatype for {array.dtype}")


def serialize_bytes(array: np.ndarray) -> bytes:
    """A BYTES tensor in binary: per element (row-major) its length as 4 bytes little-endian,
    then its bytes."""
    parts = []
    for item in array.reshape(-1):
        data = item if isinstance(item, bytes) else str(item).encode()
        parts += [struct.pack("<I", len(data)), data]
    return b"".join(parts)


def deserialize_bytes(data: bytes, count: int) -> np.ndarray:
    """`count` BYTES elements from their binary form; TensorFormatError when they do not fit."""
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(data):
            raise TensorFormatError("a BYTES tensor's binary data ends inside an element's length")
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise TensorFormatError("a BYTES tensor's binary data ends inside an element")
        items.append(data[offset : offset + size])
        offset += size
    if offset != len(data):
        raise TensorFormatError(f"a BYTES tensor's binary data has {len(data) - offset} bytes more")
    array = np.empty(count, dtype=np.object_)
    array[:] = items
    return array


def _shape(tensor: dict[str, Any], name: str) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(type(size) is int and size >= 0 for size in shape)
    ):
        raise TensorFormatError(
            f"input {name!r} needs a 'shape': a list of at most {MAX_DIMS} sizes >= 0"
        )
    return tuple(shape)


def _datatype(tensor: dict[str, Any], name: str) -> str:
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise TensorFormatError(
            f"input {name!r} needs a 'datatype', one of {', '.join(DATATYPES)}; got {datatype!r}"
        )
    return str(datatype)


def _from_binary(data: bytes, shape: tuple[int, ...], datatype: str, name: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        return deserialize_bytes(data, count).reshape(shape)
    dtype = DATATYPES[datatype]
    if len(data) != count * dtype.itemsize:
        raise TensorFormatError(
            f"input {name!r}: {datatype} {list(shape)} is {count * dtype.itemsize} bytes, "
            f"binary_data_size says {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _from_json(data: Any, shape: tuple[int, ...], datatype: str, name: str) -> np.ndarray:
    if not isinstance(data, list):
        raise TensorFormatError(f"input {name!r} needs 'data' (a list) or binary data")
    try:
        if datatype == "BYTES":
            values = np.asarray(data, dtype=np.object_).reshape(-1)
            array = np.empty(values.size, dtype=np.object_)
            array[:] = [v.encode() if isinstance(v, str) else v for v in values]
        else:
            array = np.asarray(data, dtype=DATATYPES[datatype]).reshape(-1)
    except (ValueError, TypeError, OverflowError) as error:
        raise TensorFormatError(
            f"input {name!r}: 'data' are not {datatype} values: {error}"
        ) from None
    if array.size != math.prod(shape):
        raise TensorFormatError(
            f"input {name!r}: shape {list(shape)} holds {math.prod(shape)} values, "
            f"'data' has {array.size}"
        )
    return array.reshape(shape)


def _header(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview]:
    """The JSON header and the binary part after it."""
    length = len(body) if header_length is None else header_length
    if not 0 < length <= len(body):
        raise TensorFormatError(
            f"{HEADER_LENGTH} is {header_length}, but the body is {len(body)} bytes"
        )
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as error:
        raise TensorFormatError(
            f"the inference request's JSON header is not valid: {error}"
        ) from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise TensorFormatError("an inference request is a JSON object with a list of 'inputs'")
    return header, memoryview(body)[length:]


def _parameters(item: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise TensorFormatError(f"{what}'s 'parameters' must be an object")
    return parameters


def _inputs(header: dict[str, Any], binary: memoryview) -> list[InputTensor]:
    inputs, offset = [], 0
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise TensorFormatError("each input is an object with a 'name'")
        name = tensor["name"]
        shape, datatype = _shape(tensor, name), _datatype(tensor, name)
        size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
        if size is None:
            array = _from_json(tensor.get("data"), shape, datatype, name)
        elif type(size) is not int or size < 0 or offset + size > len(binary):
            raise TensorFormatError(
                f"input {name!r}: binary_data_size {size!r} passes the end of the body "
                f"({len(binary) - offset} bytes left)"
            )
        else:
            array = _from_binary(bytes(binary[offset : offset + size]), shape, datatype, name)
            offset += size
        inputs.append(InputTensor(name, datatype, array))
    if offset != len(binary):
        raise TensorFormatError(
            f"the body has {len(binary) - offset} bytes more than the inputs' binary_data_size"
        )
    return inputs


def _outputs(header: dict[str, Any]) -> list[RequestedOutput] | None:
    outputs = header.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, list):
        raise TensorFormatError("'outputs' must be a list of objects with a 'name'")
    requested = []
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise TensorFormatError("each requested output is an object with a 'name'")
        binary = _parameters(output, f"output {output['name']!r}").get("binary_data")
        requested.append(RequestedOutput(output["name"], None if binary is None else bool(binary)))
    return requested


def decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A request body as sent with `Content-Encoding` gzip or deflate (tritonclient's
    `request_compression_algorithm`), unpacked to at most `limit` bytes (TooLarge past it)."""
    if encoding is None or encoding.strip().lower() in {"", "identity"}:
        return body
    windows = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
    window = windows.get(encoding.strip().lower())
    if window is None:
        raise TensorFormatError(f"Content-Encoding {encoding!r}: send gzip, deflate or none")
    unpacker = zlib.decompressobj(window)
    try:
        data = unpacker.decompress(body, limit + 1)
    except zlib.error as error:
        raise TensorFormatError(f"the body is not valid {encoding}: {error}") from None
    if len(data) > limit:
        raise TooLarge(f"the body unpacks to more than {limit} bytes")
    if not unpacker.eof:
        raise TensorFormatError(f"the {encoding} body ends early")
    return data


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An inference request from its body and its `Inference-Header-Content-Length` header (None
    for a JSON-only body); TensorFormatError for anything the protocol does not allow."""
    length = None
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise TensorFormatError(
                f"{HEADER_LENGTH} must be a number, got {header_length!r}"
            ) from None
    header, binary = _header(body, length)
    request_id = header.get("id")
    parameters = _parameters(header, "the request")
    return InferRequest(
        _inputs(header, binary),
        _outputs(header),
        None if request_id is None else str(request_id),
        bool(parameters.get("binary_data_output", False)),
        parameters,
    )


def _json_data(array: np.ndarray) -> Any:
    if array.dtype.type in _TEXT_TYPES:
        return [item.decode() if isinstance(item, bytes) else str(item) for item in array.flat]
    return np.ascontiguousarray(array).reshape(-1)


def encode_response(
    header: dict[str, Any], outputs: list[tuple[OutputTensor, bool]]
) -> tuple[bytes, int | None]:
    """An answer's body: `header` (model_name, model_version, id) with each output, binary or in
    JSON as its flag says; and the JSON header's length when any output is binary (None: the
    body is all JSON)."""
    entries, blobs = [], []
    for tensor, binary in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.array.shape),
        }
        if binary:
            blob = (
                serialize_bytes(tensor.array)
                if tensor.datatype == "BYTES"
                else np.ascontiguousarray(tensor.array).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(tensor.array)
        entries.append(entry)
    text = orjson.dumps({**header, "outputs": entries}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)

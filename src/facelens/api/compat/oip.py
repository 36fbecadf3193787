"""The Open Inference Protocol's wire format (KServe v2, Triton): JSON and binary tensors.

A request is JSON, or — the binary-tensor extension, tritonclient's default — a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensors of the inputs whose
``parameters.binary_data_size`` says how many bytes they take, in order. A ``BYTES`` element is
a 4-byte little-endian length and the bytes; numbers are little-endian, row-major. Clients send
no Content-Type in either form, so the body is read whatever it says. Answers use the same
forms: an output asked with ``binary_data: true`` (or every output, with the request parameter
``binary_data_output``) is sent binary, the others as JSON data.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from facelens.errors import InvalidValue

HEADER_LENGTH = "inference-header-content-length"
_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
DATATYPES = frozenset({*_NUMPY, "BYTES"})
MAX_ELEMENTS = 10_000_000
MAX_DIMS = 32  # numpy 1's limit (numpy 2's is 64); a face model takes 1 or 2


@dataclass(frozen=True, slots=True)
class Tensor:
    """A named tensor: ``BYTES`` data as a list of bytes, numbers as a numpy array."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[bytes] | np.ndarray[Any, Any]
    binary: bool = False  # came as binary data (JSON BYTES are text: images are base64)


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: dict[str, Tensor]
    binary_outputs: frozenset[str]  # outputs to send as binary
    requested: tuple[str, ...]  # the outputs asked for; empty: every output
    all_binary: bool = False  # binary_data_output, with no output named

    def input(self, name: str) -> Tensor:
        if name not in self.inputs:
            raise InvalidValue(
                f"The request has no input {name!r} (it has: {', '.join(self.inputs) or 'none'})."
            )
        return self.inputs[name]


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _split_bytes(raw: bytes, name: str) -> list[bytes]:
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidValue(f"Input {name!r}: a BYTES element's length is cut short.")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidValue(f"Input {name!r}: a BYTES element is longer than its data.")
        items.append(raw[offset : offset + size])
        offset += size
    return items


def _flat(data: Any, rank: int, name: str) -> list[Any]:
    """Flat or nested data, nested no deeper than the shape's ``rank``, as one list."""
    if not isinstance(data, list):
        return [data]
    if rank == 0:
        raise InvalidValue(f"Input {name!r}: its data is nested deeper than its shape.")
    return [item for part in data for item in _flat(part, rank - 1, name)]


def _tensor(spec: Any, binary: bytes | None) -> Tensor:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidValue('Each input must be an object with a "name".')
    name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise InvalidValue(f"Input {name!r}: datatype {datatype!r} is not a v2 datatype.")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidValue(f"Input {name!r}: shape must be a list of non-negative integers.")
    if len(shape) > MAX_DIMS:
        raise InvalidValue(
            f"Input {name!r}: {len(shape)} dimensions; this server reads at most {MAX_DIMS}."
        )
    dims = tuple(shape)
    count = _count(dims)
    if count > MAX_ELEMENTS or max(dims, default=0) > MAX_ELEMENTS:  # [0, 10**30] counts 0
        raise InvalidValue(
            f"Input {name!r}: shape {shape} is larger than this server reads "
            f"(at most {MAX_ELEMENTS:,} elements)."
        )
    data: list[bytes] | np.ndarray[Any, Any]
    if binary is not None:
        if datatype == "BYTES":
            data = _split_bytes(binary, name)
        else:
            dtype = np.dtype(_NUMPY[datatype]).newbyteorder("<")
            if len(binary) != count * dtype.itemsize:
                raise InvalidValue(f"Input {name!r}: {len(binary)} bytes do not fit shape {shape}.")
            data = np.frombuffer(binary, dtype=dtype).reshape(dims)
    else:
        if "data" not in spec:
            raise InvalidValue(f"Input {name!r} has neither data nor binary_data_size.")
        flat = _flat(spec["data"], len(dims), name)
        if datatype == "BYTES":
            if not all(isinstance(item, str) for item in flat):
                raise InvalidValue(f"Input {name!r}: BYTES data in JSON must be strings.")
            data = [item.encode("utf-8") for item in flat]
        else:
            try:
                data = np.asarray(flat, dtype=_NUMPY[datatype]).reshape(dims)
            except (TypeError, ValueError, OverflowError):  # 300 for INT8 overflows
                raise InvalidValue(
                    f"Input {name!r}: its data does not fit {datatype} {shape}."
                ) from None
    if isinstance(data, list) and len(data) != count:
        raise InvalidValue(f"Input {name!r}: {len(data)} elements for shape {shape}.")
    return Tensor(name, datatype, dims, data, binary is not None)


def _parameters(value: Any) -> dict[str, Any]:
    """A ``parameters`` object (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue('"parameters" must be an object.')
    return value


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An inference request from a body in either form (``header_length``: the header's)."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise InvalidValue("Inference-Header-Content-Length must be a number.") from None
        if not 0 < length <= len(body):
            raise InvalidValue("Inference-Header-Content-Length is larger than the body.")
        head, tail = body[:length], body[length:]
    else:
        head, tail = body, b""
    try:
        spec = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidValue("The inference request is not JSON (nor a JSON header).") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("inputs"), list):
        raise InvalidValue('The inference request needs "inputs", a list of tensors.')
    inputs: dict[str, Tensor] = {}
    offset = 0
    for item in spec["inputs"]:
        params = _parameters(item.get("parameters") if isinstance(item, dict) else None)
        size = params.get("binary_data_size")
        binary = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise InvalidValue("An input's binary_data_size runs past the end of the body.")
            binary, offset = tail[offset : offset + size], offset + size
        tensor = _tensor(item, binary)
        if tensor.name in inputs:
            raise InvalidValue(
                f"The request has input {tensor.name!r} twice; send each input once."
            )
        inputs[tensor.name] = tensor
    parameters = _parameters(spec.get("parameters"))
    all_binary = bool(parameters.get("binary_data_output"))
    outputs = spec.get("outputs") or []
    if not isinstance(outputs, list):
        raise InvalidValue('"outputs" must be a list of {"name": ...} objects.')
    requested: list[str] = []
    binary_outputs = set()
    for out in outputs:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise InvalidValue('Each requested output must be an object with a "name".')
        if out["name"] in requested:
            raise InvalidValue(
                f"The request asks for output {out['name']!r} twice; ask for each once."
            )
        requested.append(out["name"])
        flag = _parameters(out.get("parameters")).get("binary_data")
        if flag or (flag is None and all_binary):
            binary_outputs.add(out["name"])
    request_id = spec.get("id")
    return InferRequest(
        request_id if isinstance(request_id, str) else None,
        parameters,
        inputs,
        frozenset(binary_outputs),
        tuple(requested),
        all_binary and not requested,
    )


def _raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        assert isinstance(tensor.data, list)
        return b"".join(struct.pack("<I", len(item)) + item for item in tensor.data)
    assert isinstance(tensor.data, np.ndarray)
    dtype = np.dtype(_NUMPY[tensor.datatype]).newbyteorder("<")
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def _json_data(tensor: Tensor) -> list[Any]:
    if tensor.datatype == "BYTES":
        assert isinstance(tensor.data, list)
        return [item.decode("utf-8", "replace") for item in tensor.data]
    assert isinstance(tensor.data, np.ndarray)
    flat: list[Any] = tensor.data.reshape(-1).tolist()
    return flat


def encode_response(
    model: str, version: str, request: InferRequest, outputs: list[Tensor]
) -> tuple[bytes, dict[str, str]]:
    """The answer's body and headers: JSON, or a JSON header and binary tensors."""
    if request.requested:
        known = {t.name for t in outputs}
        unknown = [name for name in request.requested if name not in known]
        if unknown:
            raise InvalidValue(
                f"Model {model!r} has no output {', '.join(map(repr, unknown))} "
                f"(it has: {', '.join(sorted(known))})."
            )
        outputs = [t for t in outputs if t.name in request.requested]
    described, tails = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if tensor.name in request.binary_outputs or request.all_binary:
            raw = _raw(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            tails.append(raw)
        else:
            entry["data"] = _json_data(tensor)
        described.append(entry)
    answer: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request.id is not None:
        answer["id"] = request.id
    head = json.dumps(answer, separators=(",", ":")).encode()
    if not tails:
        return head, {"content-type": "application/json"}
    return head + b"".join(tails), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }

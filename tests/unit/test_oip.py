"""The Open Inference Protocol wire format (api/compat/oip.py): both encodings, and refusals."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from facelens.api.compat.oip import Tensor, encode_response, parse_request
from facelens.errors import InvalidValue


def binary_body(header: dict[str, object], tail: bytes) -> tuple[bytes, str]:
    head = json.dumps(header).encode()
    return head + tail, str(len(head))


def packed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(i)) + i for i in items)


def test_binary_inputs_are_cut_by_their_sizes_in_order() -> None:
    images = packed(b"\xff\xd8one", b"\xff\xd8two!")
    numbers = np.array([1.5, -2.0], dtype="<f4").tobytes()
    body, length = binary_body(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(images)},
                },
                {
                    "name": "x",
                    "shape": [2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(numbers)},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        },
        images + numbers,
    )
    request = parse_request(body, length)
    image = request.input("image")
    assert image.data == [b"\xff\xd8one", b"\xff\xd8two!"] and image.binary
    assert request.input("x").data.tolist() == [1.5, -2.0]  # type: ignore[union-attr]
    assert request.binary_outputs == {"y"} and request.requested == ("y",)


def test_json_inputs_flat_or_nested() -> None:
    request = parse_request(
        json.dumps(
            {
                "inputs": [
                    {"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], [3, 4]]},
                    {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["aGk="]},
                ]
            }
        ).encode(),
        None,
    )
    assert request.input("x").data.tolist() == [[1, 2], [3, 4]]  # type: ignore[union-attr]
    assert request.input("s").data == [b"aGk="] and not request.input("s").binary


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (b"{", None, "not JSON"),
        (b'{"inputs": 3}', None, '"inputs"'),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP8", "data": [1]}]}',
            None,
            "datatype",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}]}',
            None,
            "does not fit",
        ),
        (
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": [1]}]}',
            None,
            "strings",
        ),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES"}]}', None, "neither data"),
        (b"{}", "99", "larger than the body"),
        (b"{}", "x", "must be a number"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(
    body: bytes, length: str | None, message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_request(body, length)


def _input(**fields: object) -> dict[str, object]:
    return {"name": "x", "datatype": "FP32", **fields}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # Client mistakes that raised past the checks (a 500 with a traceback in the log).
        ({"inputs": [_input(shape=[1] * 100, data=[1.0])]}, "100 dimensions"),
        ({"inputs": [_input(shape=[0, 10**30], data=[])]}, "larger than this server reads"),
        (
            {"inputs": [_input(shape=[1], data=json.loads("[" * 900 + "1" + "]" * 900))]},
            "nested deeper than its shape",
        ),
        ({"inputs": [_input(datatype="INT8", shape=[1], data=[300])]}, "does not fit INT8"),
        (
            {"inputs": [], "outputs": [{"name": "y", "parameters": [1]}]},
            '"parameters" must be an object',
        ),
        ({"inputs": [], "outputs": 3}, '"outputs" must be a list'),
        # Two inputs (or outputs) of one name: refused, not one of them silently kept.
        (
            {"inputs": [_input(shape=[1], data=[1.0]), _input(shape=[1], data=[2.0])]},
            "input 'x' twice",
        ),
        ({"inputs": [], "outputs": [{"name": "y"}, {"name": "y"}]}, "output 'y' twice"),
    ],
)
def test_client_mistakes_are_refused_with_the_reason(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_request(json.dumps(spec).encode(), None)


@pytest.mark.parametrize(
    ("shape", "message"),
    [([1] * 100, "100 dimensions"), ([0, 10**30], "larger than this server reads")],
)
def test_binary_inputs_of_impossible_shapes_are_refused(shape: list[int], message: str) -> None:
    data = b"\0\0\0\0" if 0 not in shape else b""
    body, length = binary_body(
        {"inputs": [_input(shape=shape, parameters={"binary_data_size": len(data)})]}, data
    )
    with pytest.raises(InvalidValue, match=message):
        parse_request(body, length)


def test_binary_data_cannot_run_past_the_body_or_cut_an_element() -> None:
    spec = {
        "inputs": [
            {
                "name": "i",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 100},
            }
        ]
    }
    body, length = binary_body(spec, packed(b"abc"))
    with pytest.raises(InvalidValue, match="past the end"):
        parse_request(body, length)
    spec["inputs"][0]["parameters"] = {"binary_data_size": 9}  # type: ignore[index]
    body, length = binary_body(spec, struct.pack("<I", 50) + b"abcde")
    with pytest.raises(InvalidValue, match="longer than its data"):
        parse_request(body, length)


def test_answers_in_json_or_binary_as_asked() -> None:
    outputs = [
        Tensor("names", "BYTES", (1, 2), [b"ada", b""]),
        Tensor("scores", "FP32", (1, 2), np.array([[0.5, 0.25]], dtype=np.float32)),
    ]
    as_json = parse_request(b'{"id": "r1", "inputs": []}', None)
    body, headers = encode_response("m", "1", as_json, outputs)
    answer = json.loads(body)
    assert answer["id"] == "r1" and headers["content-type"] == "application/json"
    assert answer["outputs"][1]["data"] == [0.5, 0.25] and answer["outputs"][0]["data"] == [
        "ada",
        "",
    ]
    mixed = parse_request(
        b'{"inputs": [], "outputs": [{"name": "scores", "parameters": {"binary_data": true}}]}',
        None,
    )
    body, headers = encode_response("m", "1", mixed, outputs)
    length = int(headers["inference-header-content-length"])
    head = json.loads(body[:length])
    assert [o["name"] for o in head["outputs"]] == ["scores"]  # only what was asked
    assert np.frombuffer(body[length:], dtype="<f4").tolist() == [0.5, 0.25]
    unknown = parse_request(b'{"inputs": [], "outputs": [{"name": "nope"}]}', None)
    with pytest.raises(InvalidValue, match="no output 'nope'"):
        encode_response("m", "1", unknown, outputs)

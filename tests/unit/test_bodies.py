"""Reading images out of request bodies: every base64 dialect, multipart, JSON, raw."""

from __future__ import annotations

import base64
import json

import pytest

from facelens.api.bodies import (
    MAX_IMAGES_PER_REQUEST,
    MAX_PARTS,
    MultipartReader,
    decode_base64,
    read_form,
    read_image_list,
    read_images,
)
from facelens.errors import BadBase64, EmptyBody, InvalidValue, UnsupportedMediaType

DATA = bytes(range(256)) * 3 + b"\xff\xfe"  # needs padding and has + and / in standard base64


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(DATA),
        base64.b64encode(DATA).rstrip(b"="),
        base64.urlsafe_b64encode(DATA),
        base64.encodebytes(DATA),
        base64.encodebytes(DATA).replace(b"\n", b"\r\n"),
        b"data:image/png;base64," + base64.b64encode(DATA),
        b"DATA:image/png;BASE64," + base64.urlsafe_b64encode(DATA).rstrip(b"="),
        b"  " + base64.b64encode(DATA) + b"\n\n",
    ],
)
def test_every_base64_dialect_decodes_to_the_same_bytes(text: bytes) -> None:
    assert decode_base64(text) == DATA


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        (b"", EmptyBody, "is empty"),
        (b" \r\n", EmptyBody, "is empty"),
        (b"====", EmptyBody, "decodes to nothing"),
        (b"abc$def", BadBase64, "unexpected '$' at position 3"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", BadBase64, "raw image bytes"),
        (b"\x89PNG\r\n", BadBase64, "raw image bytes"),
        (b"QUJDR", BadBase64, "length is wrong"),
        (b"data:image/png,QUJD", BadBase64, "without ';base64,'"),
    ],
)
def test_bad_base64_says_what_is_wrong(text: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words.replace("$", r"\$").replace("(", r"\(")):
        decode_base64(text)


def _multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, str]:
    boundary = "----facelens-test-boundary"
    chunks = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_multipart_binary_parts_come_back_byte_for_byte() -> None:
    body, kind = _multipart(("first", "a.jpg", DATA), ("second", "b.jpg", DATA[::-1]))
    images = read_images(body, kind, ("first", "second"))
    assert images["first"].data == DATA and images["first"].label == "a.jpg"
    assert images["second"].data == DATA[::-1]


def test_a_single_file_under_another_field_name_is_taken() -> None:
    body, kind = _multipart(("file", "x.png", DATA))
    assert read_images(body, kind, ("image",))["image"].data == DATA


def test_a_missing_multipart_field_is_named() -> None:
    body, kind = _multipart(("first", "a.jpg", DATA))
    with pytest.raises(InvalidValue, match="'second'"):
        read_images(body, kind, ("first", "second"))


def test_multipart_without_boundary_is_refused() -> None:
    with pytest.raises(InvalidValue, match="boundary"):
        read_images(b"x", "multipart/form-data", ("image",))


def test_json_images_are_base64_fields() -> None:
    body = json.dumps({"image": base64.b64encode(DATA).decode()}).encode()
    assert read_images(body, "application/json; charset=utf-8", ("image",))["image"].data == DATA
    with pytest.raises(InvalidValue, match="'image'"):
        read_images(b'{"img": "x"}', "application/json", ("image",))
    with pytest.raises(InvalidValue, match="must be an object"):
        read_images(b"[1]", "application/json", ("image",))
    with pytest.raises(BadBase64, match="Field 'image'"):
        read_images(b'{"image": "%%"}', "application/json", ("image",))


def test_raw_bodies_are_one_image_and_other_types_are_415() -> None:
    for kind in (None, "image/jpeg", "image/webp", "application/octet-stream"):
        assert read_images(DATA, kind, ("image",))["image"].data == DATA
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        read_images(DATA, "text/plain", ("image",))
    with pytest.raises(UnsupportedMediaType, match="2 images"):
        read_images(DATA, "image/jpeg", ("first", "second"))
    with pytest.raises(EmptyBody):
        read_images(b"", "image/jpeg", ("image",))


def test_image_lists_from_every_form() -> None:
    body, kind = _multipart(
        ("images", "a.jpg", DATA), ("images", "b.jpg", DATA), ("note", None, b"hi")
    )
    assert [u.label for u in read_image_list(body, kind)] == ["a.jpg", "b.jpg"]
    encoded = base64.b64encode(DATA).decode()
    listed = read_image_list(
        json.dumps({"images": [encoded, encoded]}).encode(), "application/json"
    )
    assert [u.label for u in listed] == ["images[0]", "images[1]"]
    assert read_image_list(DATA, "image/png")[0].data == DATA
    with pytest.raises(InvalidValue, match="list of base64"):
        read_image_list(b'{"images": "x"}', "application/json")
    too_many = json.dumps({"images": [encoded] * (MAX_IMAGES_PER_REQUEST + 1)}).encode()
    with pytest.raises(InvalidValue, match=f"at most {MAX_IMAGES_PER_REQUEST}"):
        read_image_list(too_many, "application/json")


def multipart(boundary: str, *parts: tuple[str, bytes]) -> bytes:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in parts
    )
    return body + f"--{boundary}--\r\n".encode()


def test_two_parts_for_one_image_are_refused_not_one_silently_dropped() -> None:
    body = multipart("b0undary", ("image", b"first"), ("image", b"second"))
    with pytest.raises(InvalidValue, match="two parts named 'image'"):
        read_images(body, "multipart/form-data; boundary=b0undary", ("image",))


def test_hostile_bodies_are_clear_errors_not_server_errors() -> None:
    long_boundary = "x" * 300
    body = multipart(long_boundary, ("image", b"data"))
    with pytest.raises(InvalidValue, match="boundary is 300 characters"):
        read_images(body, f"multipart/form-data; boundary={long_boundary}", ("image",))
    nested = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidValue, match="nested too deeply"):
        read_images(nested, "application/json", ("image",))


def test_a_form_of_thousands_of_parts_is_refused_as_they_begin() -> None:
    # 20 MB of one-byte fields took seconds to parse; no client sends more than a few fields.
    fields = [(f"f{n}", None, b"x") for n in range(MAX_PARTS + 1)]
    body, kind = _multipart(*fields)
    with pytest.raises(InvalidValue, match=f"more than {MAX_PARTS} parts"):
        read_form(body, kind)
    reader = MultipartReader(kind)
    reader.feed(body[: body.index(b'name="f1"')])
    assert [name for name, _, _ in reader.parts] == ["f0"]  # parts come out as they end
    assert read_form(*_multipart(*fields[:MAX_PARTS])).fields["f0"] == "x"

"""Reading images out of request bodies: raw bytes, base64 (JSON or /predictor), multipart.

Everything is parsed in memory (the body size is capped before it is read): uploaded images are
never written to disk, unlike a default multipart parser that spools large files to /tmp.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header

from facelens.core.imaging import looks_like_image
from facelens.errors import BadBase64, EmptyBody, InvalidValue, UnsupportedMediaType

MAX_IMAGES_PER_REQUEST = 50
MAX_PARTS = MAX_IMAGES_PER_REQUEST + 50  # images and text fields of one multipart body
MAX_BOUNDARY = 200
RAW_TYPES = ("application/octet-stream",)  # and every image/* type
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True, slots=True)
class Upload:
    """One image from a request: what to call it in answers and logs, and its bytes."""

    label: str
    data: bytes


def decode_base64(body: bytes, *, what: str = "The body") -> bytes:
    """Lenient base64: a ``data:`` URL prefix, URL-safe letters, line breaks, missing padding."""
    text = body.strip()
    if not text:
        raise EmptyBody(f"{what} is empty: send the base64 of a JPEG, PNG or WebP image.")
    if text[:5].lower() == b"data:":
        header, comma, text = text.partition(b",")
        if not comma or not header.lower().endswith(b";base64"):
            raise BadBase64(f"{what} is a data: URL without ';base64,': send base64 data.")
    text = _WHITESPACE.sub(b"", text).translate(_URLSAFE).rstrip(b"=")
    bad = _NOT_BASE64.search(text)
    if bad is not None:
        char = bad.group()
        shown = repr(char.decode()) if char.isascii() else f"byte 0x{char[0]:02x}"
        hint = (
            " It looks like raw image bytes: base64-encode them first."
            if text[:2] in (b"\xff\xd8", b"\x89P")
            else ""
        )
        raise BadBase64(
            f"{what} is not base64: unexpected {shown} at position {bad.start()}.{hint}"
        )
    if len(text) % 4 == 1:
        raise BadBase64(f"{what} is not valid base64: its length is wrong (was it cut short?).")
    try:
        decoded = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above leave nothing for this
        raise BadBase64(f"{what} is not valid base64 ({exc}).") from None
    if not decoded:
        raise EmptyBody(f"{what} decodes to nothing: send the base64 of an image.")
    return decoded


def media_type(content_type: str | None) -> str:
    """``image/jpeg`` out of ``image/jpeg; charset=x``, lower-case; empty when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


Part = tuple[str, str | None, bytes]  # field name, file name (None for a text field), bytes


class MultipartReader:
    """The parts of a multipart/form-data body, parsed chunk by chunk as they arrive
    (python-multipart's streaming parser), so a caller can act on a field before the rest
    of the body is read. More than :data:`MAX_PARTS` parts are refused as soon as they begin:
    a form of thousands of tiny parts costs seconds of parsing, and no client sends one."""

    def __init__(self, content_type: str) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise InvalidValue("The multipart body has no boundary in its Content-Type header.")
        if len(boundary) > MAX_BOUNDARY:  # RFC 2046 allows 70; the parser fails beyond 256
            raise InvalidValue(
                f"The multipart boundary is {len(boundary)} characters long; at most "
                f"{MAX_BOUNDARY}."
            )
        self.parts: list[Part] = []
        self._begun = 0
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value, self._data = bytearray(), bytearray(), bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    def _on_part_begin(self) -> None:
        self._begun += 1
        if self._begun > MAX_PARTS:
            raise InvalidValue(
                f"The multipart body has more than {MAX_PARTS} parts; send at most "
                f"{MAX_IMAGES_PER_REQUEST} images and a few fields."
            )

    def _on_header_field(self, buf: bytes, start: int, end: int) -> None:
        self._field.extend(buf[start:end])

    def _on_header_value(self, buf: bytes, start: int, end: int) -> None:
        self._value.extend(buf[start:end])

    def _on_header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _on_part_data(self, buf: bytes, start: int, end: int) -> None:
        self._data.extend(buf[start:end])

    def _on_part_end(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = _label(disposition.get(b"name", b""))
        filename = disposition.get(b"filename")
        self.parts.append((name, None if filename is None else _label(filename), bytes(self._data)))
        self._headers.clear()
        self._data.clear()

    def feed(self, chunk: bytes) -> None:
        """Parse the next bytes of the body; finished parts are added to :attr:`parts`."""
        try:
            self._parser.write(chunk)
        except ValueError as exc:  # python-multipart's MultipartParseError is a ValueError
            raise InvalidValue(f"The multipart body cannot be parsed: {exc}.") from None

    def close(self) -> list[Part]:
        """Every part, once the whole body was fed."""
        try:
            self._parser.finalize()
        except ValueError as exc:
            raise InvalidValue(f"The multipart body cannot be parsed: {exc}.") from None
        return self.parts


def _label(raw: bytes) -> str:
    """A part's name or file name as text: bytes that are no UTF-8, and NUL (which
    PostgreSQL's text cannot hold: a shared gallery answered 503), as U+FFFD."""
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _multipart(body: bytes, content_type: str) -> list[Part]:
    """(field name, filename or None, bytes) of every part of a multipart/form-data body."""
    reader = MultipartReader(content_type)
    reader.feed(body)
    return reader.close()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"The JSON body cannot be parsed: {exc}.") from None
    except RecursionError:  # thousands of nested brackets
        raise InvalidValue("The JSON body is nested too deeply to be a request.") from None
    if not isinstance(value, dict):
        raise InvalidValue('The JSON body must be an object, e.g. {"image": "<base64>"}.')
    return value


def _json_image(obj: dict[str, Any], name: str) -> Upload:
    value = obj.get(name)
    if not isinstance(value, str):
        raise InvalidValue(f"The JSON body needs a field {name!r} holding an image as base64.")
    return Upload(name, decode_base64(value.encode("ascii", "replace"), what=f"Field {name!r}"))


def read_images(body: bytes, content_type: str | None, names: tuple[str, ...]) -> dict[str, Upload]:
    """One image per name in ``names``, from a multipart, JSON or raw body.

    Raw bytes (``image/*``, ``application/octet-stream`` or no type) count as the only name.
    """
    kind = media_type(content_type)
    if kind == "multipart/form-data":
        parts = _multipart(body, content_type or "")
        found: dict[str, Upload] = {}
        for name, filename, data in parts:
            if name in found and name in names:
                raise InvalidValue(
                    f"The multipart body has two parts named {name!r}; send one image each."
                )
            found[name] = Upload(filename or name, data)
        if len(names) == 1 and names[0] not in found and len(parts) == 1:
            found = {names[0]: found.popitem()[1]}  # one file under another field name
        missing = [n for n in names if n not in found or not found[n].data]
        if missing:
            raise InvalidValue(
                f"The multipart body needs file field{'s' if len(missing) > 1 else ''} "
                + ", ".join(repr(n) for n in missing)
                + "."
            )
        return {n: found[n] for n in names}
    if kind == "application/json":
        obj = _json_object(body)
        return {n: _json_image(obj, n) for n in names}
    if kind in ("", *RAW_TYPES) or kind.startswith("image/"):
        if len(names) > 1:
            raise UnsupportedMediaType(
                f"This call takes {len(names)} images ({', '.join(names)}): send them as "
                "multipart/form-data file fields or as a JSON object of base64 strings."
            )
        if not body:
            raise EmptyBody("The body is empty: send an image (JPEG, PNG or WebP).")
        return {names[0]: Upload(names[0], body)}
    raise UnsupportedMediaType(_unsupported(kind))


def _image_parts(parts: list[Part]) -> list[Upload]:
    """The images of a multipart body: file parts, and parts named ``image`` or ``images``."""
    return [
        Upload(filename or name or f"part {i}", data)
        for i, (name, filename, data) in enumerate(parts, 1)
        if filename is not None or name in ("image", "images")
    ]


def _json_images(values: object) -> list[Upload]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidValue("The JSON field 'images' must be a list of base64 strings.")
    return [
        Upload(f"images[{i}]", decode_base64(v.encode("ascii", "replace"), what=f"images[{i}]"))
        for i, v in enumerate(values)
    ]


def _counted(uploads: list[Upload]) -> list[Upload]:
    if not uploads:
        raise InvalidValue("The request holds no image: send at least one.")
    if len(uploads) > MAX_IMAGES_PER_REQUEST:
        raise InvalidValue(
            f"{len(uploads)} images in one request; send at most {MAX_IMAGES_PER_REQUEST}."
        )
    return uploads


def read_image_list(body: bytes, content_type: str | None) -> list[Upload]:
    """Any number of images: multipart file parts, JSON ``images`` list (or ``image``), raw."""
    kind = media_type(content_type)
    uploads: list[Upload]
    if kind == "multipart/form-data":
        uploads = _image_parts(_multipart(body, content_type or ""))
    elif kind == "application/json":
        obj = _json_object(body)
        uploads = _json_images(obj["images"]) if "images" in obj else [_json_image(obj, "image")]
    elif kind in ("", *RAW_TYPES) or kind.startswith("image/"):
        if not body:
            raise EmptyBody("The body is empty: send an image (JPEG, PNG or WebP).")
        uploads = [Upload("image", body)]
    else:
        raise UnsupportedMediaType(_unsupported(kind))
    return _counted(uploads)


@dataclass(frozen=True, slots=True)
class NewPerson:
    """``POST /v1/people``'s body: a name, and the photos to enrol them from (None: JSON
    without ``images``, a person with no faces yet)."""

    fields: dict[str, Any]
    images: list[Upload] | None


NO_PHOTO = (
    "The form holds no photo: add at least one image file to enrol the person from (or send "
    'JSON {"name": ...} to create a person with no faces).'
)


def read_new_person(body: bytes, content_type: str | None) -> NewPerson:
    """A JSON object (``name``, and optionally ``images`` as base64) or a multipart form (a
    text field ``name`` and image files); the fields are checked by the caller."""
    kind = media_type(content_type)
    if kind == "multipart/form-data":
        parts = _multipart(body, content_type or "")
        names = [data for name, filename, data in parts if filename is None and name == "name"]
        if len(names) != 1:
            raise InvalidValue(
                "The multipart body needs one text field 'name' (the person's name) beside the "
                "image files."
            )
        images = _image_parts(parts)
        if not images:
            raise InvalidValue(NO_PHOTO)
        return NewPerson({"name": names[0].decode("utf-8", "replace")}, _counted(images))
    if kind == "application/json":
        obj = _json_object(body)
        listed = _counted(_json_images(obj.pop("images"))) if "images" in obj else None
        return NewPerson(obj, listed)
    raise UnsupportedMediaType(
        f"Content-Type {kind or 'none'!r} is not read here: send JSON "
        '{"name": "Ada"} (with "images": [<base64>, ...] to enrol photos at once) or a '
        "multipart/form-data form with a text field 'name' and image files."
    )


@dataclass(frozen=True, slots=True)
class Form:
    """A form as the compatibility APIs send it: text fields, and every image part."""

    fields: dict[str, str] = field(default_factory=dict)
    images: list[Upload] = field(default_factory=list)


def read_form(body: bytes, content_type: str | None) -> Form:
    """Text fields and images of a multipart, urlencoded or empty body (or raw image bytes).

    A multipart part is an image when it has a file name or starts like an image, whatever
    its field name or part type (clients send ``image``, ``image1``, ``image<uuid>``, as
    ``text/plain``); other parts are text fields.
    """
    kind = media_type(content_type)
    if kind == "multipart/form-data":
        return form_of(_multipart(body, content_type or ""))
    form = Form()
    if kind == "application/x-www-form-urlencoded":
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        form.fields.update(pairs)
    elif body.strip() and (kind in RAW_TYPES or kind.startswith("image/") or not kind):
        form.images.append(Upload("image", body))
    elif body.strip():
        raise UnsupportedMediaType(
            f"Content-Type {kind!r} is not read here: send a multipart/form-data form."
        )
    return form


def form_of(parts: list[Part]) -> Form:
    """The form of a multipart body's parts (:func:`read_form`'s rules)."""
    form = Form()
    for name, filename, data in parts:
        if filename is not None or looks_like_image(data):
            form.images.append(Upload(filename or name, data))
        else:
            form.fields[name] = data.decode("utf-8", "replace")
    if len(form.images) > MAX_IMAGES_PER_REQUEST:
        raise InvalidValue(
            f"{len(form.images)} images in one request; send at most {MAX_IMAGES_PER_REQUEST}."
        )
    return form


def _unsupported(kind: str) -> str:
    return (
        f"Content-Type {kind!r} is not read here: send the image as multipart/form-data, "
        'as JSON {"image": "<base64>"}, or as raw bytes (image/jpeg, image/png, '
        "application/octet-stream)."
    )

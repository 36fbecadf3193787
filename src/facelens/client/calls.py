"""The calls of the facelens API, each once: its method, path, body and how its answer is
read (shared by :class:`~facelens.client.Client` and :class:`~facelens.client.AsyncClient`),
and how an image is sent."""

from __future__ import annotations

import base64
import io
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from facelens.api import schemas
from facelens.errors import APIError, InputPathError, InvalidValue

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

    ImageInput = str | os.PathLike[str] | bytes | PILImage.Image | np.ndarray[Any, Any]


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
API_KEY_HEADER = "X-API-Key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PAGE_SIZE = 500
HOLDERS_PER_CALL = 1000  # the most SHA-256s POST /v1/gallery/photos takes at once


def image_bytes(image: ImageInput) -> tuple[str, bytes]:
    """(a name for the upload, its bytes) of any image input."""
    if isinstance(image, bytes | bytearray | memoryview):
        return "image", bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise InputPathError(f"{path}: cannot read it ({exc.strerror or exc}).") from None
    from PIL import Image

    if not isinstance(image, Image.Image):
        import numpy as np

        if not isinstance(image, np.ndarray):
            raise InvalidValue(
                f"An image must be a path, bytes, a PIL image or a numpy array, not "
                f"{type(image).__name__}."
            )
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise InvalidValue(
                "A numpy image must be uint8, height x width (x 3 RGB or 4 RGBA) channels."
            )
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return "image.jpg", buffer.getvalue()


def _error(response: httpx.Response) -> APIError:
    """The server's error answer as an exception (its JSON shape, or the status alone)."""
    code, message = f"http_{response.status_code}", response.reason_phrase
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        pass
    retry_after = response.headers.get("retry-after", "")
    return APIError(
        f"{message} (HTTP {response.status_code} from {response.request.url.path})",
        status=response.status_code,
        code=code,
        retry_after=float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None,
    )


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call: the request to send (the same on every try) and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    files: list[tuple[str, tuple[str | None, bytes]]] | None = None  # None: a text part
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    answers: tuple[int, ...] = ()  # error statuses that are answers, not failures

    def checked(self, response: httpx.Response) -> T:
        if response.is_error and response.status_code not in self.answers:
            raise _error(response)
        return self.parse(response)


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: cls.model_validate(response.json())


def _json(response: httpx.Response) -> Any:
    return response.json()


def _changes(call: Call[T]) -> Call[T]:
    """The call with an Idempotency-Key, the same on each of its tries."""
    return replace(call, headers={**call.headers, IDEMPOTENCY_HEADER: str(uuid.uuid4())})


def _image_files(
    field_name: str, images: Iterable[ImageInput]
) -> list[tuple[str, tuple[str | None, bytes]]]:
    return [(field_name, image_bytes(image)) for image in images]


# -- the calls, one builder per API operation (shared by both clients) ----------------------


def recognize_call(image: ImageInput) -> Call[schemas.RecognizeOut]:
    return Call(
        "POST", "/v1/recognize", _model(schemas.RecognizeOut), files=_image_files("image", [image])
    )


def annotate_call(image: ImageInput) -> Call[bytes]:
    return Call(
        "POST",
        "/v1/recognize",
        lambda r: r.content,
        params={"annotate": "true"},
        files=_image_files("image", [image]),
    )


def detect_call(image: ImageInput) -> Call[schemas.DetectOut]:
    return Call(
        "POST", "/v1/detect", _model(schemas.DetectOut), files=_image_files("image", [image])
    )


def embed_call(image: ImageInput) -> Call[schemas.EmbedOut]:
    return Call("POST", "/v1/embed", _model(schemas.EmbedOut), files=_image_files("image", [image]))


def verify_call(
    first: ImageInput,
    second: ImageInput,
    *,
    first_face: int | None = None,
    second_face: int | None = None,
) -> Call[schemas.VerifyOut]:
    files = _image_files("first", [first]) + _image_files("second", [second])
    chosen = {"first_face": first_face, "second_face": second_face}
    params = {k: v for k, v in chosen.items() if v is not None}
    return Call("POST", "/v1/verify", _model(schemas.VerifyOut), params=params or None, files=files)


def predictor_call(image: ImageInput) -> Call[bytes]:
    """The original demo's protocol: base64 in the body, the annotated JPEG as base64 back."""
    return Call(
        "POST",
        "/predictor",
        lambda r: base64.b64decode(r.content),
        content=base64.b64encode(image_bytes(image)[1]),
        headers={"Content-Type": "text/plain"},
    )


def _person_path(name: str) -> str:
    from urllib.parse import quote

    return f"/v1/people/{quote(name, safe='')}"


def people_page_call(offset: int, limit: int = PAGE_SIZE) -> Call[schemas.PeoplePage]:
    return Call(
        "GET", "/v1/people", _model(schemas.PeoplePage), params={"offset": offset, "limit": limit}
    )


def person_call(name: str) -> Call[schemas.PersonDetail]:
    return Call("GET", _person_path(name), _model(schemas.PersonDetail))


def create_person_call(name: str) -> Call[schemas.PersonOut]:
    return _changes(Call("POST", "/v1/people", _model(schemas.PersonOut), json={"name": name}))


def create_person_with_photos_call(
    name: str, images: Iterable[ImageInput], *, largest: bool = False
) -> Call[schemas.EnrolOut]:
    return _changes(
        Call(
            "POST",
            "/v1/people",
            _model(schemas.EnrolOut),
            params={"largest": "true"} if largest else None,
            # A text part (no file name) for the name, beside the image files.
            files=[("name", (None, name.encode())), *_image_files("images", images)],
        )
    )


def merge_person_call(source: str, target: str) -> Call[schemas.PersonMerged]:
    return _changes(
        Call(
            "POST",
            f"{_person_path(target)}/merge",
            _model(schemas.PersonMerged),
            json={"from": source},
        )
    )


def photo_holders_call(sha256s: list[str]) -> Call[schemas.PhotosOut]:
    return Call("POST", "/v1/gallery/photos", _model(schemas.PhotosOut), json={"sha256": sha256s})


def rename_person_call(name: str, new_name: str) -> Call[schemas.PersonOut]:
    return _changes(
        Call("PATCH", _person_path(name), _model(schemas.PersonOut), json={"name": new_name})
    )


def delete_person_call(name: str) -> Call[schemas.PersonDeleted]:
    return _changes(Call("DELETE", _person_path(name), _model(schemas.PersonDeleted)))


def add_faces_call(
    name: str, images: Iterable[ImageInput], *, largest: bool = False, create: bool = False
) -> Call[schemas.EnrolOut]:
    params = {"largest": "true"} if largest else {}
    if create:
        params["create"] = "true"
    return _changes(
        Call(
            "POST",
            f"{_person_path(name)}/faces",
            _model(schemas.EnrolOut),
            params=params or None,
            files=_image_files("images", images),
        )
    )


def delete_face_call(name: str, face_id: int) -> Call[schemas.FaceDeleted]:
    return _changes(
        Call("DELETE", f"{_person_path(name)}/faces/{face_id}", _model(schemas.FaceDeleted))
    )


def health_call() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", _json)


def ready_call() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _json, answers=(503,))


# -- retries ----------------------------------------------------------------------------------

"""Python client for a facelens server: :class:`Client` (blocking) and :class:`AsyncClient`.

    from facelens.client import Client

    with Client("http://127.0.0.1:5000", api_key="...") as server:
        for face in server.recognize("door.jpg").faces:
            print(face.name, face.confidence)

Images may be paths, bytes, PIL images or numpy arrays (RGB, ``uint8``; PIL and arrays are sent
as JPEG, quality 95). Results are the server's own response models (``facelens.api.schemas``).

Retries (tenacity): connection failures, timeouts, 429 and 5xx are tried again with exponential
back-off and full jitter, never sooner than the server's ``Retry-After``, until ``attempts``
tries or the ``deadline`` (seconds per call, every try and wait included) is spent. Other 4xx
answers are final at once: sending the same bad request again cannot help. Calls that change
the gallery carry one ``Idempotency-Key`` across all their tries, so an upload whose answer was
lost is not enrolled twice. After the last try, :class:`~facelens.errors.APIError` carries the
server's error code and message; :class:`~facelens.errors.ServerUnreachable` says why no answer
came. (The original demo's client retried ten times without waiting and then used an answer it
never got.)
"""

from __future__ import annotations

import base64
import io
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from facelens.api import schemas
from facelens.errors import APIError, InputPathError, InvalidValue, ServerUnreachable

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


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        return exc.retryable
    return isinstance(exc, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a call tries: ``attempts`` tries at most, all within ``deadline`` seconds,
    waiting a random 0..``backoff``·2ⁿ seconds (at most ``max_wait``) between them, or the
    server's ``Retry-After`` if longer."""

    attempts: int = 5
    deadline: float = 60.0
    backoff: float = 0.5
    max_wait: float = 10.0

    def wait(self, state: RetryCallState) -> float:
        jitter = wait_random_exponential(multiplier=self.backoff, max=self.max_wait)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            return max(jitter, exc.retry_after)
        return jitter

    def arguments(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts) | stop_before_delay(self.deadline),
            "wait": self.wait,
            "retry": retry_if_exception(_retryable),
            "reraise": True,
        }

    def timeout(self, started: float, per_try: float) -> float:
        """This try's timeout: ``per_try``, or what is left of the deadline if less."""
        return max(0.001, min(per_try, self.deadline - (time.monotonic() - started)))


def _unreachable(url: str, exc: httpx.TransportError, policy: RetryPolicy) -> ServerUnreachable:
    kind = (
        "timed out" if isinstance(exc, httpx.TimeoutException) else str(exc) or type(exc).__name__
    )
    return ServerUnreachable(
        f"No answer from the facelens server at {url} ({kind}) after up to {policy.attempts} "
        f"tries in {policy.deadline:g} s; is it running and reachable?"
    )


class _Base:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        timeout: float,
        retry: RetryPolicy | None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.headers = {API_KEY_HEADER: api_key} if api_key else {}

    def _request(self, call: Call[Any], started: float) -> dict[str, Any]:
        return {
            "method": call.method,
            "url": call.path,
            "params": call.params,
            "json": call.json,
            "files": call.files,
            "content": call.content,
            "headers": call.headers,
            "timeout": self.retry.timeout(started, self.timeout),
        }


class Client(_Base):
    """A blocking client; safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout, retry=retry)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, call: Call[T]) -> T:
        """Send ``call``, retrying as the policy says; its parsed answer."""
        started = time.monotonic()
        try:
            for attempt in Retrying(**self.retry.arguments()):
                with attempt:
                    response = self._http.request(**self._request(call, started))
                    return call.checked(response)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc, self.retry) from exc
        raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises

    def recognize(self, image: ImageInput) -> schemas.RecognizeOut:
        return self.run(recognize_call(image))

    def annotate(self, image: ImageInput) -> bytes:
        """The photo as a JPEG with boxes and names drawn."""
        return self.run(annotate_call(image))

    def detect(self, image: ImageInput) -> schemas.DetectOut:
        return self.run(detect_call(image))

    def embed(self, image: ImageInput) -> schemas.EmbedOut:
        return self.run(embed_call(image))

    def verify(
        self,
        first: ImageInput,
        second: ImageInput,
        *,
        first_face: int | None = None,
        second_face: int | None = None,
    ) -> schemas.VerifyOut:
        """Whether the two photos show one person: the largest face of each, or the faces
        ``first_face`` and ``second_face`` (indexes into the answer's ``images[i].faces``)."""
        return self.run(verify_call(first, second, first_face=first_face, second_face=second_face))

    def predictor(self, image: ImageInput) -> bytes:
        return self.run(predictor_call(image))

    def people(self) -> list[schemas.PersonListed]:
        """Everyone, in name order (every page)."""
        found: list[schemas.PersonListed] = []
        offset: int | None = 0
        while offset is not None:
            page = self.run(people_page_call(offset))
            found += page.people
            offset = page.next_offset
        return found

    def person(self, name: str) -> schemas.PersonDetail:
        return self.run(person_call(name))

    def create_person(self, name: str) -> schemas.PersonOut:
        """A person with no faces yet (see :meth:`create_person_with_photos`)."""
        return self.run(create_person_call(name))

    def create_person_with_photos(
        self, name: str, images: Iterable[ImageInput], *, largest: bool = False
    ) -> schemas.EnrolOut:
        """A new person, created only if a face of ``images`` is enrolled: per photo, what
        was enrolled or why not. If none is, nobody is created: :class:`APIError`
        ``nothing_enrolled`` (422) saying why for each photo."""
        return self.run(create_person_with_photos_call(name, images, largest=largest))

    def merge_person(self, source: str, target: str) -> schemas.PersonMerged:
        """Every face of ``source`` moves to ``target``; ``source`` is deleted."""
        return self.run(merge_person_call(source, target))

    def photo_holders(self, sha256s: Iterable[str]) -> list[schemas.PhotoHolder]:
        """Who holds faces of the photos whose files have these SHA-256s (hex)."""
        wanted = list(dict.fromkeys(sha256s))
        found: list[schemas.PhotoHolder] = []
        for start in range(0, len(wanted), HOLDERS_PER_CALL):
            found += self.run(photo_holders_call(wanted[start : start + HOLDERS_PER_CALL])).photos
        return found

    def rename_person(self, name: str, new_name: str) -> schemas.PersonOut:
        return self.run(rename_person_call(name, new_name))

    def delete_person(self, name: str) -> schemas.PersonDeleted:
        return self.run(delete_person_call(name))

    def add_faces(
        self,
        name: str,
        images: Iterable[ImageInput],
        *,
        largest: bool = False,
        create: bool = False,
    ) -> schemas.EnrolOut:
        """Enrol photos of ``name``; with ``create``, a person who does not exist is created
        with the first face stored (never empty)."""
        return self.run(add_faces_call(name, images, largest=largest, create=create))

    def delete_face(self, name: str, face_id: int) -> schemas.FaceDeleted:
        return self.run(delete_face_call(name, face_id))

    def health(self) -> dict[str, Any]:
        return self.run(health_call())

    def ready(self) -> dict[str, Any]:
        """``/readyz``: its ``status`` is ``ready`` or ``not ready`` (with ``problems``)."""
        return self.run(ready_call())


class AsyncClient(_Base):
    """The same calls as :class:`Client`, awaited."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, api_key=api_key, timeout=timeout, retry=retry)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, call: Call[T]) -> T:
        started = time.monotonic()
        try:
            async for attempt in AsyncRetrying(**self.retry.arguments()):
                with attempt:
                    response = await self._http.request(**self._request(call, started))
                    return call.checked(response)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc, self.retry) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def recognize(self, image: ImageInput) -> schemas.RecognizeOut:
        return await self.run(recognize_call(image))

    async def annotate(self, image: ImageInput) -> bytes:
        return await self.run(annotate_call(image))

    async def detect(self, image: ImageInput) -> schemas.DetectOut:
        return await self.run(detect_call(image))

    async def embed(self, image: ImageInput) -> schemas.EmbedOut:
        return await self.run(embed_call(image))

    async def verify(
        self,
        first: ImageInput,
        second: ImageInput,
        *,
        first_face: int | None = None,
        second_face: int | None = None,
    ) -> schemas.VerifyOut:
        return await self.run(
            verify_call(first, second, first_face=first_face, second_face=second_face)
        )

    async def predictor(self, image: ImageInput) -> bytes:
        return await self.run(predictor_call(image))

    async def people(self) -> list[schemas.PersonListed]:
        found: list[schemas.PersonListed] = []
        offset: int | None = 0
        while offset is not None:
            page = await self.run(people_page_call(offset))
            found += page.people
            offset = page.next_offset
        return found

    async def person(self, name: str) -> schemas.PersonDetail:
        return await self.run(person_call(name))

    async def create_person(self, name: str) -> schemas.PersonOut:
        return await self.run(create_person_call(name))

    async def create_person_with_photos(
        self, name: str, images: Iterable[ImageInput], *, largest: bool = False
    ) -> schemas.EnrolOut:
        return await self.run(create_person_with_photos_call(name, images, largest=largest))

    async def merge_person(self, source: str, target: str) -> schemas.PersonMerged:
        return await self.run(merge_person_call(source, target))

    async def photo_holders(self, sha256s: Iterable[str]) -> list[schemas.PhotoHolder]:
        wanted = list(dict.fromkeys(sha256s))
        found: list[schemas.PhotoHolder] = []
        for start in range(0, len(wanted), HOLDERS_PER_CALL):
            call = photo_holders_call(wanted[start : start + HOLDERS_PER_CALL])
            found += (await self.run(call)).photos
        return found

    async def rename_person(self, name: str, new_name: str) -> schemas.PersonOut:
        return await self.run(rename_person_call(name, new_name))

    async def delete_person(self, name: str) -> schemas.PersonDeleted:
        return await self.run(delete_person_call(name))

    async def add_faces(
        self,
        name: str,
        images: Iterable[ImageInput],
        *,
        largest: bool = False,
        create: bool = False,
    ) -> schemas.EnrolOut:
        return await self.run(add_faces_call(name, images, largest=largest, create=create))

    async def delete_face(self, name: str, face_id: int) -> schemas.FaceDeleted:
        return await self.run(delete_face_call(name, face_id))

    async def health(self) -> dict[str, Any]:
        return await self.run(health_call())

    async def ready(self) -> dict[str, Any]:
        return await self.run(ready_call())

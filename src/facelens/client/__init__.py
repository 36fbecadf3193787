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

import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx
from tenacity import AsyncRetrying, Retrying

from facelens.api import schemas
from facelens.client.calls import (
    API_KEY_HEADER,
    HOLDERS_PER_CALL,
    Call,
    T,
    add_faces_call,
    annotate_call,
    create_person_call,
    create_person_with_photos_call,
    delete_face_call,
    delete_person_call,
    detect_call,
    embed_call,
    health_call,
    merge_person_call,
    people_page_call,
    person_call,
    photo_holders_call,
    predictor_call,
    ready_call,
    recognize_call,
    rename_person_call,
    verify_call,
)
from facelens.client.calls import image_bytes as image_bytes
from facelens.client.retry import RetryPolicy, unreachable

if TYPE_CHECKING:
    from facelens.client.calls import ImageInput

__all__ = ["AsyncClient", "Client", "RetryPolicy", "image_bytes"]


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
            raise unreachable(self.url, exc, self.retry) from exc
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
            raise unreachable(self.url, exc, self.retry) from exc
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

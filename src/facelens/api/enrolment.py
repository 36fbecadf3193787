"""Enrolling uploaded photos: the one path behind ``/v1/people/{name}/faces``, DeepStack's
``register`` and CompreFace's ``faces``.

Photos are analysed in the workers at once; the gallery is changed one photo at a time under
one lock, so two retries of one photo cannot both store it, and a person deleted or renamed
while their photos are analysed is not re-created (unless the caller asked for creation). A
person is only ever created together with their first face: never empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.bodies import Upload
from facelens.api.errors import status_for
from facelens.api.services import Services
from facelens.errors import ImageError, NotFound, NothingEnrolled, Unavailable, WorkTimeout
from facelens.jobs.enrol import Create, PhotoOutcome, enrol_photo, enrolled_before


class LoopLock:
    """An asyncio lock per event loop: a server runs one loop, so this is one lock; an
    ``asyncio.Lock`` made at import binds to the first loop it is waited on in, and then fails
    ("bound to a different event loop", a 500) in any other, such as the next in-process app
    of the tests."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _lock(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def __aenter__(self) -> None:
        await self._lock().acquire()

    async def __aexit__(self, *_: object) -> None:
        self._lock().release()


# Changes to people are made one at a time by this server (its own requests queue here, not
# in the database's lock, so none holds a connection while it waits).
write_lock = LoopLock()


async def enrol_uploads(
    request: Request,
    svc: Services,
    name: str,
    uploads: list[Upload],
    *,
    largest: bool,
    largest_hint: str,
    create: Create = "never",
    raise_errors: bool = False,
) -> list[schemas.EnrolItem]:
    """Enrol each upload's face for ``name``; per photo, what was stored or why not.

    ``create``: with ``never`` the person must exist; else they are created with the first
    face stored (a request whose photos all fail leaves no empty person behind), and with
    ``new`` only if nobody of that name exists (:class:`Conflict` otherwise, nothing stored).
    A photo that cannot be analysed (unreadable, the workers busy or too slow) is a skipped
    item, or with ``raise_errors`` (one photo per call) the error itself, answered as such.
    """
    gallery = svc.gallery
    created = False  # by this request (``new``): its later photos go to the person it made

    def mode() -> Create:
        return "never" if create == "new" and created else create

    def previous(sha256: str) -> PhotoOutcome | None:
        if mode() == "new":
            return None  # nobody to have enrolled it yet
        try:
            return enrolled_before(gallery, name, sha256)
        except NotFound:
            if mode() != "never":
                return None
            raise

    async def enrol_one(upload: Upload) -> schemas.EnrolItem:
        nonlocal created
        sha256 = hashlib.sha256(upload.data).hexdigest()
        outcome = await run_in_threadpool(previous, sha256)
        if outcome is None:
            try:
                # The request took its place in the queue once (check_capacity): its photos
                # wait for a worker instead of being refused half-way with "retry".
                analysis = await svc.pool.analyze(
                    upload.data, upload.label, request.is_disconnected, queued=False, enrolment=True
                )
            except (ImageError, WorkTimeout, Unavailable) as exc:
                if raise_errors:
                    raise
                # This photo could not be used; the others still count.
                return schemas.EnrolItem(
                    image=upload.label, status="skipped", face_ids=[], box=None, reason=exc.message
                )

            async with write_lock:
                # Decided under the lock: the photos of one request are stored one at a time.
                how = mode()
                outcome = await run_in_threadpool(
                    lambda: enrol_photo(
                        gallery,
                        name,
                        upload.label,
                        sha256,
                        analysis,
                        take_largest=largest,
                        largest_hint=largest_hint,
                        create=how,
                    )
                )
                created = created or (how == "new" and outcome.status == "enrolled")
        return schemas.EnrolItem(
            image=upload.label,
            status=outcome.status,
            face_ids=outcome.face_ids,
            box=None if outcome.box is None else schemas.BoxOut(**outcome.box.as_dict()),
            reason=outcome.reason,
        )

    svc.pool.check_capacity()  # busy: 503 before anything is stored
    items = await asyncio.gather(*(enrol_one(u) for u in uploads))
    request.state.faces = sum(len(i.face_ids) for i in items)
    return list(items)


def nothing_enrolled(request: Request, name: str, items: list[schemas.EnrolItem]) -> Response:
    """422 when no photo gave a face: nobody was created. Our error shape, and the per-photo
    ``results`` (as a successful enrolment has them) beside it."""
    reasons = "; ".join(
        str(i.reason) if str(i.reason).startswith(f"{i.image}:") else f"{i.image}: {i.reason}"
        for i in items
    )
    error = NothingEnrolled(
        f"{name!r} was not created: no face was enrolled from "
        f"{'the photo' if len(items) == 1 else f'the {len(items)} photos'} ({reasons}). "
        "Nothing was kept."
    )
    request.state.error_code = error.code
    return JSONResponse(
        {
            "error": {"code": error.code, "message": error.api_message},
            "results": [i.model_dump(mode="json") for i in items],
        },
        status_code=status_for(error),
    )

"""Enrolling uploaded photos: the one path behind ``/v1/people/{name}/faces``, DeepStack's
``register`` and CompreFace's ``faces``.

Photos are analysed in the workers at once; the gallery is changed one photo at a time under
one lock, so two retries of one photo cannot both store it, and a person deleted or renamed
while their photos are analysed is not re-created (unless the caller asked for creation).
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.bodies import Upload
from facelens.api.deps import Services
from facelens.enroll import NO_FACE, PhotoOutcome, enroll_photo, enrolled_before
from facelens.errors import ImageError, NotFound, Unavailable, WorkTimeout

write_lock = asyncio.Lock()


async def enrol_uploads(
    request: Request,
    svc: Services,
    name: str,
    uploads: list[Upload],
    *,
    largest: bool,
    largest_hint: str,
    create: bool = False,
    raise_errors: bool = False,
) -> list[schemas.EnrolItem]:
    """Enrol each upload's face for ``name``; per photo, what was stored or why not.

    With ``create``, the person is created when the first face is stored (a request whose
    photos all fail leaves no empty person behind); otherwise they must exist. A photo that
    cannot be analysed (unreadable, the workers busy or too slow) is a skipped item, or with
    ``raise_errors`` (one photo per call) the error itself, answered as such.
    """
    gallery = svc.gallery

    def previous(sha256: str) -> PhotoOutcome | None:
        try:
            return enrolled_before(gallery, name, sha256)
        except NotFound:
            if create:
                return None
            raise

    async def enrol_one(upload: Upload) -> schemas.EnrolItem:
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

            def store() -> PhotoOutcome:
                if create and not analysis.faces:
                    return PhotoOutcome("skipped", [], None, NO_FACE)
                if create:
                    gallery.ensure_person(name)
                return enroll_photo(
                    gallery,
                    name,
                    upload.label,
                    sha256,
                    analysis,
                    take_largest=largest,
                    largest_hint=largest_hint,
                )

            async with write_lock:
                outcome = await run_in_threadpool(store)
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

"""``POST /v1/gallery/photos``: who holds the faces of photos, by the SHA-256 of their files.

A photo keeps its hash through renames, moves and merges, so a client enrolling a folder again
(``facelens remote enroll``) finds which person each folder became.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.deps import require_enrol_key, services

router = APIRouter(
    prefix="/v1/gallery",
    tags=["people"],
    dependencies=[Depends(require_enrol_key)],
    responses=schemas.error_responses(400, 401, 403, 413, 415, 422, 503),
)


@router.post(
    "/photos",
    summary="Who holds the faces of these photos (by the SHA-256 of their files)",
    description="A photo keeps its hash through renames, moves and merges: a client enrolling "
    "a folder again (`facelens remote enroll`) finds which person each folder became.",
    response_model=schemas.PhotosOut,
)
async def photo_holders(
    request: Request, photos: Annotated[schemas.PhotosIn, Body()]
) -> schemas.PhotosOut:
    found = await run_in_threadpool(services(request).gallery.holders, photos.sha256)
    return schemas.PhotosOut(
        photos=[
            schemas.PhotoHolder(sha256=h.sha256, person=h.person, face_ids=list(h.face_ids))
            for h in found
        ]
    )

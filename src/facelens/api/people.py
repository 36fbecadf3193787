"""People routes: create (with their photos), list, read, rename, merge, delete, and add,
move or remove their faces.

Every change is committed before the answer, and workers re-read the gallery index when its
revision changes, so the next recognition sees it.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.bodies import MAX_IMAGES_PER_REQUEST, read_image_list, read_new_person
from facelens.api.deps import require_enrol_key, services
from facelens.api.enrolment import enrol_uploads, nothing_enrolled, write_lock
from facelens.errors import NotFound
from facelens.gallery.base import FaceRecord
from facelens.jobs.enrol import UPLOAD_PREFIX

ERRORS = schemas.error_responses(400, 401, 404, 409, 413, 415, 422, 503)
router = APIRouter(
    prefix="/v1/people",
    tags=["people"],
    dependencies=[Depends(require_enrol_key)],
    responses=ERRORS,
)
Name = Annotated[str, Path(description="The person's name (URL-encoded).", min_length=1)]
FaceId = Annotated[int, Path(ge=1, le=2**62)]
IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Retries with the same key get the first answer; nothing is done twice.",
        }
    ]
}


def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def _shown_source(source: str | None) -> str | None:
    """What the owner needs to find the photo, not the server's file layout: an upload's
    label, or a folder-enrolled file as ``<person folder>/<file>``."""
    if source is None or source.startswith(UPLOAD_PREFIX):
        return source
    return "/".join(PurePath(source).parts[-2:])


def _face_out(face: FaceRecord) -> schemas.FaceRecordOut:
    return schemas.FaceRecordOut(
        id=face.id,
        source=_shown_source(face.source),
        box=schemas.BoxOut(**face.box.as_dict()),
        created_at=face.created_at,
        sharpness=face.sharpness,
        thumbnail=face.has_thumbnail,
    )


@router.post(
    "",
    status_code=201,
    summary="Create a person; with photos, only if a face of one is enrolled",
    description='JSON `{"name": ...}` creates a person with no faces (`PersonOut`). With '
    "photos (a multipart form: a text field `name` and image files; or JSON with `images`, "
    "base64), each photo is enrolled as by `POST /v1/people/{name}/faces` and the person is "
    "created with the first face stored: `201` with per-photo `results` (`EnrolOut`). If no "
    "photo gives a face, nobody is created and nothing is kept: `422` `nothing_enrolled`, "
    "with the per-photo `results` beside the error. A name that exists or looks like one "
    "that does is `409` before any photo is analysed.",
    response_model=schemas.EnrolOut | schemas.PersonOut,
    responses={422: {"model": schemas.NothingEnrolledOut}},
    openapi_extra={**schemas.new_person_body(MAX_IMAGES_PER_REQUEST), **IDEMPOTENCY_DOC},
)
async def create_person(
    request: Request,
    largest: Annotated[
        bool, Query(description="In a photo with several faces, enrol the largest.")
    ] = False,
) -> Response:
    svc = services(request)
    body = read_new_person(await request.body(), request.headers.get("content-type"))
    try:
        person = schemas.PersonIn.model_validate(body.fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    uploads = body.images

    if uploads is None:

        async def create() -> Response:
            created = await run_in_threadpool(svc.gallery.add_person, person.name)
            return _json(schemas.PersonOut(name=created.name, face_count=created.faces), 201)

        return await svc.idempotency.run(request, request.state.api_key_id, create)

    # Taken (or a look-alike of someone): 409 before any photo is analysed.
    name = await run_in_threadpool(svc.gallery.check_new_person, person.name)

    async def create_with_faces() -> Response:
        items = await enrol_uploads(
            request,
            svc,
            name,
            uploads,
            largest=largest,
            largest_hint="add ?largest=true",
            create="new",
        )
        enrolled = sum(1 for i in items if i.status == "enrolled")
        if not enrolled:
            return nothing_enrolled(request, name, items)
        created = await run_in_threadpool(svc.gallery.person, name)
        return _json(
            schemas.EnrolOut(
                name=created.name, results=items, enrolled=enrolled, face_count=created.faces
            ),
            201,
        )

    hashes = "\n".join(hashlib.sha256(u.data).hexdigest() for u in uploads)
    return await svc.idempotency.run(
        request, request.state.api_key_id, create_with_faces, f"{name}\n{hashes}".encode()
    )


@router.get(
    "", summary="List people, a page at a time, in name order", response_model=schemas.PeoplePage
)
async def list_people(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.PeoplePage:
    gallery = services(request).gallery
    total = await run_in_threadpool(gallery.count_people)
    people = await run_in_threadpool(gallery.list_people, offset, limit)
    end = offset + len(people)
    return schemas.PeoplePage(
        people=[
            schemas.PersonListed(
                name=p.name, face_count=p.faces, thumbnail_face_id=p.thumbnail_face_id
            )
            for p in people
        ],
        total=total,
        offset=offset,
        limit=limit,
        next_offset=end if end < total else None,
    )


@router.get(
    "/{name}", summary="One person and their stored faces", response_model=schemas.PersonDetail
)
async def get_person(request: Request, name: Name) -> schemas.PersonDetail:
    gallery = services(request).gallery
    faces = await run_in_threadpool(gallery.faces, name)
    person = await run_in_threadpool(gallery.person, name)
    return schemas.PersonDetail(
        name=person.name, face_count=len(faces), faces=[_face_out(f) for f in faces]
    )


@router.patch(
    "/{name}",
    summary="Rename a person; their faces stay",
    response_model=schemas.PersonOut,
    openapi_extra=IDEMPOTENCY_DOC,
)
async def rename_person(
    request: Request, name: Name, new: Annotated[schemas.PersonIn, Body()]
) -> Response:
    svc = services(request)

    async def rename() -> Response:
        async with write_lock:
            person = await run_in_threadpool(svc.gallery.rename_person, name, new.name)
        return _json(schemas.PersonOut(name=person.name, face_count=person.faces))

    return await svc.idempotency.run(request, request.state.api_key_id, rename)


@router.delete(
    "/{name}",
    summary="Delete a person and every stored embedding of them (biometric data)",
    response_model=schemas.PersonDeleted,
    openapi_extra=IDEMPOTENCY_DOC,
)
async def delete_person(request: Request, name: Name) -> Response:
    svc = services(request)

    async def delete() -> Response:
        async with write_lock:
            removed = await run_in_threadpool(svc.gallery.remove_person, name)
        return _json(schemas.PersonDeleted(name=name, faces_removed=removed))

    return await svc.idempotency.run(request, request.state.api_key_id, delete)


@router.post(
    "/{name}/faces",
    summary="Enrol photos of a person; reports per photo what was enrolled or why not",
    description="With `?create=true` a person who does not exist is created with the first "
    "face stored (never empty): if no photo gives a face, nobody is created (`422` "
    "`nothing_enrolled`, with the per-photo `results` beside the error).",
    response_model=schemas.EnrolOut,
    responses={422: {"model": schemas.NothingEnrolledOut}},
    openapi_extra={**schemas.image_body("images", many=True), **IDEMPOTENCY_DOC},
)
async def add_faces(
    request: Request,
    name: Name,
    largest: Annotated[
        bool, Query(description="In a photo with several faces, enrol the largest.")
    ] = False,
    create: Annotated[
        bool, Query(description="Create the person if missing, with the first face enrolled.")
    ] = False,
) -> Response:
    svc = services(request)
    gallery = svc.gallery

    def check() -> bool:
        """Whether the person exists; 404 (or, creating, 409 for a look-alike) before work."""
        try:
            gallery.person(name)
            return True
        except NotFound:
            if not create:
                raise
        gallery.check_new_person(name)
        return False

    existed = await run_in_threadpool(check)
    uploads = read_image_list(await request.body(), request.headers.get("content-type"))

    async def enrol() -> Response:
        items = await enrol_uploads(
            request,
            svc,
            name,
            uploads,
            largest=largest,
            largest_hint="add ?largest=true",
            create="if_missing" if create else "never",
        )
        enrolled = sum(1 for i in items if i.status == "enrolled")
        if not existed and not enrolled:
            try:
                await run_in_threadpool(gallery.person, name)
            except NotFound:  # (nor made by someone else meanwhile)
                return nothing_enrolled(request, name, items)
        person = await run_in_threadpool(gallery.person, name)
        return _json(
            schemas.EnrolOut(
                name=person.name, results=items, enrolled=enrolled, face_count=person.faces
            )
        )

    hashes = "\n".join(hashlib.sha256(u.data).hexdigest() for u in uploads)
    return await svc.idempotency.run(request, request.state.api_key_id, enrol, hashes.encode())


@router.delete(
    "/{name}/faces/{face_id}",
    summary="Delete one stored face of a person",
    response_model=schemas.FaceDeleted,
    openapi_extra=IDEMPOTENCY_DOC,
)
async def delete_face(request: Request, name: Name, face_id: FaceId) -> Response:
    svc = services(request)

    async def delete() -> Response:
        async with write_lock:
            await run_in_threadpool(svc.gallery.remove_face, name, face_id)
        return _json(schemas.FaceDeleted(name=name, face_id=face_id))

    return await svc.idempotency.run(request, request.state.api_key_id, delete)


JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG of at most 160 px."}
}


def face_jpeg(data: bytes) -> Response:
    # Biometric data: never kept by shared caches; the person's own caches may (it changes only
    # when the face is deleted, and then its URL answers 404).
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})


@router.get(
    "/{name}/faces/{face_id}/thumbnail",
    summary="The small JPEG kept of one stored face (404 if none is kept)",
    response_class=Response,
    responses=JPEG,
)
async def face_thumbnail(request: Request, name: Name, face_id: FaceId) -> Response:
    return face_jpeg(await run_in_threadpool(services(request).gallery.thumbnail, face_id, name))


@router.patch(
    "/{name}/faces/{face_id}",
    summary="Give one stored face to another (existing) person: the fix for a face enrolled "
    "under the wrong name. If they hold the same photo already, the face is dropped.",
    response_model=schemas.FaceMoved,
    openapi_extra=IDEMPOTENCY_DOC,
)
async def move_face(
    request: Request, name: Name, face_id: FaceId, move: Annotated[schemas.FaceMoveIn, Body()]
) -> Response:
    svc = services(request)

    async def moved() -> Response:
        async with write_lock:
            person = await run_in_threadpool(svc.gallery.move_face, name, face_id, move.to)
        return _json(schemas.FaceMoved(face_id=face_id, to=person.name, face_count=person.faces))

    return await svc.idempotency.run(request, request.state.api_key_id, moved)


@router.post(
    "/{name}/merge",
    summary="Merge another person into this one: every face of theirs moves here (with its "
    "thumbnail and the record of its photo), then they are deleted",
    description='Body `{"from": "<source person>"}`. The fix for one person enrolled '
    "under two names. A photo both held (the same file twice) is kept once "
    "(`duplicates_dropped`).",
    response_model=schemas.PersonMerged,
    openapi_extra=IDEMPOTENCY_DOC,
)
async def merge_person(
    request: Request, name: Name, merge: Annotated[schemas.MergeIn, Body()]
) -> Response:
    svc = services(request)

    async def merged() -> Response:
        async with write_lock:
            done = await run_in_threadpool(svc.gallery.merge_person, merge.source, name)
        return _json(
            schemas.PersonMerged(
                name=done.name,
                face_count=done.faces,
                merged=done.source,
                faces_moved=done.moved,
                duplicates_dropped=done.dropped,
            )
        )

    return await svc.idempotency.run(request, request.state.api_key_id, merged)

"""CompreFace's recognition API: ``/api/v1/recognition/{recognize,faces,subjects}``.

Double Take (``compreface`` detector), double-take-go-reborn, Viseron and the CompreFace SDKs
call these routes with an ``x-api-key`` header (facelens's API key, when keys are on). Subjects
are facelens's people and faces its stored faces: one gallery, whichever API changes it, and a
face's ``image_id`` is its facelens id. Answers and errors (``{"message", "code"}``, code 28
for "no face") are CompreFace's, registered here with ``api/errors.py``.

Where facelens differs on purpose: ``similarity`` is facelens's calibrated score
(``core/matching.py``; a stranger's nearest subject scores at most 0.35, so Double Take's 0.40
says "unknown"); photos are never stored, so ``/faces/{id}/img`` answers the face's small
thumbnail (at most 160 px) where one is kept, 404 otherwise; a photo with several
faces enrols its largest; the age, gender, mask and pose plugins do not exist and are ignored
(``landmarks`` and ``calculator`` are served).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens import __version__, errors
from facelens.api.bodies import Upload, media_type, read_form, read_images
from facelens.api.deps import require, services
from facelens.api.enrolment import enrol_uploads, write_lock
from facelens.api.errors import register_dialect
from facelens.api.people import face_jpeg
from facelens.api.recognize import recognize_photo
from facelens.api.services import Services
from facelens.core.pipeline import Face, detection_probability
from facelens.core.recognition import Naming
from facelens.errors import InvalidValue, NoFaceFound, NotFound
from facelens.gallery.base import PersonSummary
from facelens.jobs.enrol import NO_FACE as NO_FACE_REASON

PREFIX = "/api/v1/recognition"
NO_FACE = "No face is found in the given image"
MAX_PAGE_SIZE = 1000
# Ids per POST /faces/delete: each holds the gallery's write lock (300,000 held it 45 s); one
# page of GET /faces at its largest. CompreFace documents no limit.
MAX_DELETE_IDS = MAX_PAGE_SIZE
_FACE_ID = re.compile(r"[0-9]{1,18}")  # facelens's face ids, as CompreFace's image_id strings

# CompreFace's codes (ExceptionResponseDto): 10 unknown key, 20 missing key, 26 validation,
# 28 no face, 42 subject not found, 43 subject exists; 24 for a missing face id (facelens's
# choice: the spec names none) and 0 for a failure of the server. An image that cannot be read
# is 28 on every route, as in CompreFace, whose API answers every image its face service
# refuses with 28 (FacesRestApiClient: any 400 of the core is NoFacesFoundException); too many
# pixels, bad base64 and an empty body stay validation errors (26).
_CODES: dict[type[errors.FaceLensError], tuple[int, int]] = {
    errors.KeyMissing: (400, 20),
    errors.Unauthorized: (404, 10),
    errors.NoFaceFound: (400, 28),
    errors.ImageError: (400, 28),
    errors.ImageTooLarge: (400, 26),
    errors.BadBase64: (400, 26),
    errors.EmptyBody: (400, 26),
    errors.PersonNotFound: (404, 42),
    errors.NotFound: (404, 24),
    errors.Conflict: (400, 43),
}


def _error(
    status: int, message: str, exc: errors.FaceLensError | None, headers: dict[str, str] | None
) -> JSONResponse:
    """CompreFace's error body, ``{"message", "code"}``, and its statuses."""
    code = 26 if status < 500 else 0
    if 400 <= status < 500 and status not in (401, 403, 404, 405):
        status = 400  # CompreFace answers every invalid request with 400
    for cls in type(exc).__mro__ if exc is not None else ():
        if cls in _CODES:
            status, code = _CODES[cls]
            break
    return JSONResponse({"message": message, "code": code}, status_code=status, headers=headers)


register_dialect(lambda path: path.startswith(PREFIX), _error)

router = APIRouter(
    prefix=PREFIX,
    tags=["CompreFace"],
    # Reading (GET, and recognition's POST) needs a key's recognize scope, changing subjects
    # and faces its enrol scope.
    dependencies=[
        Depends(require("enrol", compat=True, reading_posts=frozenset({f"{PREFIX}/recognize"})))
    ],
    responses={
        status: {"description": 'CompreFace\'s error: {"message": "...", "code": N}'}
        for status in (400, 404, 500)
    },
)
FILE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "contentEncoding": "base64"}},
                }
            },
        }
    }
}
SUBJECT_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"subject": {"type": "string"}}}
            }
        }
    }
}


async def read_image(request: Request) -> Upload:
    """The one image of a request: a multipart part (found by its bytes or file name) or
    JSON ``{"file": "<base64>"}``."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    if media_type(content_type) == "application/json":
        return read_images(body, content_type, ("file",))["file"]
    form = await run_in_threadpool(read_form, body, content_type)
    if not form.images:
        raise InvalidValue("The request has no image: send it as the multipart file part 'file'.")
    named = [u for u in form.images if u.label == "file"]
    return (named or form.images)[0]


async def json_body(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise InvalidValue("The body is not JSON.") from None


async def subject_field(request: Request) -> str:
    body = await json_body(request)
    subject = body.get("subject") if isinstance(body, dict) else None
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidValue('The JSON body needs "subject": the subject\'s name.')
    return subject


async def find_subject(svc: Services, subject: str) -> PersonSummary:
    person = await run_in_threadpool(svc.gallery.find_person, subject)
    if person is None:
        await run_in_threadpool(svc.gallery.person, subject)  # its NotFound, with the hint
        raise AssertionError("unreachable")  # pragma: no cover
    return person


def plugins_of(text: str | None) -> set[str]:
    """Requested face plugins; unknown names (``undefined`` from Double Take) are ignored."""
    return {p.strip().lower() for p in (text or "").split(",") if p.strip()}


def face_item(
    face: Face, plugins: set[str], status: bool, elapsed: int, **fields: Any
) -> dict[str, Any]:
    """One found face as CompreFace answers it: its box, ``fields`` (subjects, similarity),
    and what the plugins and ``status`` add."""
    item: dict[str, Any] = {
        "box": {
            "probability": round(detection_probability(face.score), 5),
            "x_min": max(0, face.box.left),
            "y_min": max(0, face.box.top),
            "x_max": max(0, face.box.right),
            "y_max": max(0, face.box.bottom),
        },
        **fields,
    }
    if "landmarks" in plugins:
        item["landmarks"] = [[round(float(x)), round(float(y))] for x, y in face.landmarks]
    if "calculator" in plugins:
        item["embedding"] = [float(v) for v in face.embedding]
    if status:
        item["execution_time"] = {"detector": elapsed}
    return item


def answer(svc: Services, result: list[dict[str, Any]], status: bool) -> dict[str, Any]:
    """``{"result": ...}``, with ``plugins_versions`` when ``status`` asks for it."""
    body: dict[str, Any] = {"result": result}
    if status:
        body["plugins_versions"] = {
            "detector": f"facelens {__version__}",
            "calculator": svc.gallery.profile.id,
        }
    return body


@router.post(
    "/recognize",
    summary="Recognise faces: each face's nearest subjects (CompreFace)",
    openapi_extra=FILE_BODY,
)
async def recognize(
    request: Request,
    limit: Annotated[int, Query(ge=0, description="Largest faces first; 0 for all.")] = 0,
    prediction_count: Annotated[int, Query(ge=1, le=100)] = 1,
    det_prob_threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
    face_plugins: Annotated[str | None, Query()] = None,
    status: Annotated[bool, Query()] = False,
    detect_faces: Annotated[bool, Query(description="Ignored: faces are always found.")] = True,
) -> JSONResponse:
    svc = services(request)
    start = time.perf_counter()
    image = await read_image(request)
    naming = Naming(candidates=prediction_count, min_detection=det_prob_threshold, largest=limit)
    route = f"{PREFIX}/recognize"
    recognition = await recognize_photo(
        request, svc, image.data, image.label, route=route, naming=naming
    )
    if not recognition.faces:
        raise NoFaceFound(NO_FACE)
    plugins = plugins_of(face_plugins)
    elapsed = round((time.perf_counter() - start) * 1000)
    result = []
    for face in recognition.faces:
        subjects = [
            {"subject": c.name, "similarity": round(c.similarity, 5)} for c in face.candidates
        ]
        result.append(face_item(face.face, plugins, status, elapsed, subjects=subjects))
    return JSONResponse(answer(svc, result, status))


@router.post(
    "/faces",
    status_code=201,
    summary="Add a photo's face to a subject, created if new (CompreFace)",
    openapi_extra=FILE_BODY,
)
async def add_face(
    request: Request,
    subject: Annotated[str, Query(min_length=1)],
    det_prob_threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> Response:
    """The largest face of the photo; the same photo again answers the face it already gave.
    ``subject`` is answered as stored (``alice`` adds to an existing ``Alice``; a new name
    trimmed and in its Unicode form). A photo without a face, or that cannot be read, is code
    28, as on recognize."""
    svc = services(request)
    image = await read_image(request)
    existing = await run_in_threadpool(svc.gallery.find_person, subject)
    name = existing.name if existing is not None else subject

    async def add() -> Response:
        (item,) = await enrol_uploads(
            request,
            svc,
            name,
            [image],
            largest=True,
            largest_hint="",
            create="if_missing",
            raise_errors=True,
        )
        if not item.face_ids:
            raise NoFaceFound(NO_FACE if item.reason == NO_FACE_REASON else str(item.reason))
        face = await run_in_threadpool(svc.gallery.face, item.face_ids[0])
        return JSONResponse({"image_id": str(face.id), "subject": face.person}, status_code=201)

    digest = hashlib.sha256(image.data).hexdigest()
    return await svc.idempotency.run(
        request, request.state.api_key_id, add, f"{name}\n{digest}".encode()
    )


@router.get("/faces", summary="Stored faces, a page at a time (CompreFace)")
async def list_faces(
    request: Request,
    page: Annotated[int, Query(ge=0, le=2**31)] = 0,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    subject: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    svc = services(request)
    name = (await find_subject(svc, subject)).name if subject else None
    faces = await run_in_threadpool(svc.gallery.faces, name)
    chunk = faces[page * size : (page + 1) * size]
    return JSONResponse(
        {
            "faces": [{"image_id": str(f.id), "subject": f.person} for f in chunk],
            "page_number": page,
            "page_size": size,
            "total_pages": math.ceil(len(faces) / size),
            "total_elements": len(faces),
        }
    )


@router.delete("/faces", summary="Delete a subject's faces, or every face (CompreFace)")
async def delete_faces(
    request: Request, subject: Annotated[str | None, Query()] = None
) -> JSONResponse:
    """With ``subject``, its faces (the subject stays; none for an unknown subject);
    without ``subject`` at all, every stored face. A blank ``subject=`` is refused (400, code
    26, as CompreFace 1.2 does), never read as "all"."""
    if subject is not None and not subject.strip():
        raise InvalidValue(
            "Subject name is empty: name the subject whose faces to delete, or leave out "
            "the subject parameter to delete every face."
        )
    svc = services(request)
    async with write_lock:
        if subject is not None:
            person = await run_in_threadpool(svc.gallery.find_person, subject)
            removed = 0
            if person is not None:
                removed = await run_in_threadpool(svc.gallery.remove_faces, person.name)
        else:
            removed = await run_in_threadpool(svc.gallery.remove_faces, None)
    return JSONResponse({"deleted": removed})


def face_id_of(image_id: str) -> int:
    if not _FACE_ID.fullmatch(image_id):
        raise NotFound(f"No stored face has id {image_id!r}.")
    return int(image_id)


async def _delete_face(svc: Services, image_id: str) -> dict[str, str] | None:
    """Delete one face by id; what it was, or None if there is no such face."""
    try:
        face = await run_in_threadpool(svc.gallery.face, face_id_of(image_id))
        await run_in_threadpool(svc.gallery.remove_face, face.person, face.id)
    except NotFound:
        return None
    return {"image_id": str(face.id), "subject": face.person}


@router.delete("/faces/{image_id}", summary="Delete one face by id (CompreFace)")
async def delete_face(request: Request, image_id: str) -> JSONResponse:
    async with write_lock:
        deleted = await _delete_face(services(request), image_id)
    if deleted is None:
        raise NotFound(f"No stored face has id {image_id!r}.")
    return JSONResponse(deleted)


@router.post(
    "/faces/delete",
    summary=f"Delete faces by id, at most {MAX_DELETE_IDS} a call; unknown ids are ignored "
    "(CompreFace)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "string"}}}
            }
        }
    },
)
async def delete_faces_by_id(request: Request) -> JSONResponse:
    ids = await json_body(request)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidValue('The JSON body must be a list of image ids, e.g. ["12", "15"].')
    if len(ids) > MAX_DELETE_IDS:
        raise InvalidValue(
            f"{len(ids)} image ids in one call; send at most {MAX_DELETE_IDS} per call "
            "(nothing was deleted)."
        )
    svc = services(request)
    deleted = []
    async with write_lock:
        for image_id in ids:
            found = await _delete_face(svc, str(image_id))
            if found is not None:
                deleted.append(found)
    return JSONResponse(deleted)


@router.get(
    "/faces/{image_id}/img",
    summary="The face's thumbnail (at most 160 px): facelens never stores photos",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def face_image(request: Request, image_id: str) -> Response:
    gallery = services(request).gallery
    face = await run_in_threadpool(gallery.face, face_id_of(image_id))
    if not face.has_thumbnail:
        raise NotFound(
            f"Face {image_id} exists, but facelens keeps no photos, and no thumbnail of this "
            "face (FACELENS_FACE_THUMBNAILS is off, or it was enrolled before they were kept)."
        )
    jpeg = await run_in_threadpool(gallery.thumbnail, face.id)
    return face_jpeg(jpeg)

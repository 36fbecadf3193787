"""DeepStack's face API, as CodeProject.AI serves it too: ``/v1/vision/face[/...]``.

Double Take (``deepstack`` and ``aiserver`` detectors), the Home Assistant DeepStack face
component, Viseron, Blue Iris and node-red flows call these routes; pointing them at facelens is
a change of URL. Requests are forms: multipart (any number of image parts, found by their
bytes), urlencoded, or empty. Answers and error bodies are DeepStack's
(``{"success": false, "error": ...}``, registered here with ``api/errors.py``). The key is
checked before the form is read: a keyless 20 MB form is refused without being parsed
(:func:`_form`).

Where facelens differs on purpose: ``register`` adds photos to the person instead of replacing
them (Double Take trains one photo per call, so DeepStack kept only the last), a photo with
several faces enrols its largest, and ``confidence`` is facelens's calibrated similarity
(``core/matching.py``): a stranger is ``unknown`` at the clients' usual thresholds.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens.api.bodies import Form, MultipartReader, Upload, form_of, media_type, read_form
from facelens.api.deps import API_KEY_HEADER, authorize, services
from facelens.api.enrolment import enrol_uploads, write_lock
from facelens.api.errors import register_dialect
from facelens.api.keys import Scope
from facelens.api.recognize import count_faces, recognize_photo
from facelens.api.services import Services
from facelens.core.matching import UNKNOWN, pair_distance, similarity
from facelens.core.pipeline import Analysis, detection_probability
from facelens.core.recognition import Naming
from facelens.errors import FaceLensError, InvalidValue, KeyMissing, NoFaceFound
from facelens.models.base import Box

PREFIX = "/v1/vision/face"
DETECT_MIN_CONFIDENCE = 0.55  # DeepStack's defaults
RECOGNIZE_MIN_CONFIDENCE = 0.67
NO_IMAGE = "No valid image file found: send the image as a file part of a multipart form."


def _error(
    status: int, message: str, exc: FaceLensError | None, headers: dict[str, str] | None
) -> JSONResponse:
    """DeepStack's error body and statuses: 400 for the client's mistakes, 401 for keys, 500
    for the server's (CodeProject.AI adds the status as ``code``)."""
    ds_status = status if status in (400, 401, 403, 404, 405) else 500 if status >= 500 else 400
    return JSONResponse(
        {"success": False, "error": message, "duration": 0, "code": ds_status},
        status_code=ds_status,
        headers=headers,
    )


register_dialect(lambda path: path.startswith("/v1/vision/"), _error)


def _scope(request: Request) -> Scope:
    """What the call's key must allow: changing people for register and delete."""
    changes = request.url.path.rstrip("/").endswith(("/register", "/delete"))
    return "enrol" if changes else "recognize"


async def _form(request: Request) -> Form:
    """The request's form, after the key check: ``api_key`` (form field, empty means none)
    or the ``X-API-Key`` header.

    The body is read no further than the check needs: a header key is checked before it,
    and when a key is required and none is in the header, only the first
    ``FACELENS_COMPAT_KEY_SCAN_BYTES`` are read looking for the field (:func:`_form_after_key`).
    """
    header = request.headers.get(API_KEY_HEADER)
    if header:
        await authorize(request, header, compat=True, scope=_scope(request))
    else:
        try:
            await authorize(request, None, compat=True, scope=_scope(request))
        except KeyMissing:  # keys are on and this client needs one: it must be in the form
            return await _form_after_key(request)
    form = await run_in_threadpool(
        read_form, await request.body(), request.headers.get("content-type")
    )
    field = form.fields.get("api_key")
    if field and field != header:  # a wrong key is refused wherever it is
        await authorize(request, field, compat=True, scope=_scope(request))
    return form


def _no_key(cap: int, why: str) -> KeyMissing:
    return KeyMissing(
        f"This server requires an API key: send it in the {API_KEY_HEADER} header, or as the "
        f"form field api_key before the images, within the first {cap:,} bytes of the body "
        f"(FACELENS_COMPAT_KEY_SCAN_BYTES). {why}"
    )


async def _form_after_key(request: Request) -> Form:
    """The form of a client that must send its key in the form: the body is parsed as it
    arrives and refused with 401 unless a valid ``api_key`` field comes within the first
    ``FACELENS_COMPAT_KEY_SCAN_BYTES``; only then is the rest read."""
    cap = services(request).settings.compat_key_scan_bytes
    content_type = request.headers.get("content-type") or ""
    kind = media_type(content_type)
    chunks = request.stream()
    if kind == "multipart/form-data":
        reader = MultipartReader(content_type)
        key, unparsed = await _key_field(reader, chunks, cap)
        await _check_key(request, key, cap)
        rest = b"".join([unparsed] + [chunk async for chunk in chunks])
        await run_in_threadpool(reader.feed, rest)
        return form_of(await run_in_threadpool(reader.close))
    if kind == "application/x-www-form-urlencoded":
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > cap:
                raise _no_key(cap, "This form has no api_key field in them.")
        form = await run_in_threadpool(read_form, bytes(body), content_type)
        await _check_key(request, form.fields.get("api_key"), cap)
        return form
    raise _no_key(cap, "A body that is not a form has no api_key field.")


async def _key_field(
    reader: MultipartReader, chunks: AsyncIterator[bytes], cap: int
) -> tuple[str | None, bytes]:
    """The ``api_key`` field's value, if it ends within the first ``cap`` bytes of the body,
    and the bytes received but not yet parsed (the rest is left in ``chunks``). Nothing past
    ``cap`` is parsed before the key, nor more than one chunk past it read."""
    parsed = 0
    async for chunk in chunks:
        head, tail = chunk[: cap - parsed], chunk[cap - parsed :]
        parsed += len(head)
        before = len(reader.parts)
        try:
            reader.feed(head)
        except InvalidValue as exc:  # e.g. too many parts: still, what is missing is the key
            raise _no_key(
                cap, f"No api_key field came before this problem of the form: {exc}"
            ) from None
        for name, filename, data in reader.parts[before:]:
            if name == "api_key" and filename is None:
                return data.decode("utf-8", "replace"), tail
        if tail:
            raise _no_key(cap, "This form has no api_key field in them.")
    return None, b""


async def _check_key(request: Request, key: str | None, cap: int) -> None:
    if not key:
        raise _no_key(cap, "This form has no api_key field, or an empty one.")
    await authorize(request, key, compat=True, scope=_scope(request))


DeepStackForm = Annotated[Form, Depends(_form)]

router = APIRouter(
    prefix=PREFIX,
    tags=["DeepStack / CodeProject.AI"],
    responses={
        status: {"description": 'DeepStack\'s error: {"success": false, "error": "..."}'}
        for status in (400, 401, 500)
    },
)
FORM_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "min_confidence": {"type": "number"},
                        "userid": {"type": "string"},
                        "api_key": {"type": "string"},
                    },
                }
            }
        }
    }
}


def _ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"success": True, **fields, "duration": 0})


def _min_confidence(form: Form, default: float) -> float:
    text = form.fields.get("min_confidence", "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidValue("Invalid value for min_confidence") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidValue("Invalid value for min_confidence")
    if value > 1:
        raise InvalidValue("min_confidence cannot be greater than 1")
    return value


def _one_image(form: Form) -> Upload:
    """The form's image, for the calls that take one (never a silent choice between two)."""
    if not form.images:
        raise InvalidValue(NO_IMAGE)
    if len(form.images) > 1:
        labels = ", ".join(repr(image.label) for image in form.images)
        raise InvalidValue(
            f"only one image allowed: the form has {len(form.images)} image parts ({labels}); "
            "send one image part"
        )
    return form.images[0]


def _userid(form: Form) -> str:
    userid = form.fields.get("userid", "").strip()
    if not userid:
        raise InvalidValue("userid not specified")
    return userid


def _box(box: Box) -> dict[str, int]:
    return {
        "x_min": max(0, box.left),
        "y_min": max(0, box.top),
        "x_max": max(0, box.right),
        "y_max": max(0, box.bottom),
    }


async def _analyze(request: Request, svc: Services, image: Upload, route: str) -> Analysis:
    analysis = await svc.pool.analyze(image.data, image.label, request.is_disconnected)
    count_faces(request, svc, route, len(analysis.faces))
    return analysis


@router.post("", summary="Detect faces (DeepStack)", openapi_extra=FORM_BODY)
@router.post("/", include_in_schema=False)
async def detect(request: Request, form: DeepStackForm) -> JSONResponse:
    svc = services(request)
    min_confidence = _min_confidence(form, DETECT_MIN_CONFIDENCE)
    analysis = await _analyze(request, svc, _one_image(form), PREFIX)
    predictions = [
        {"confidence": round(p, 4), **_box(face.box)}
        for face in analysis.faces
        if (p := detection_probability(face.score)) >= min_confidence
    ]
    return _ok(predictions=predictions)


@router.post("/recognize", summary="Recognise faces (DeepStack)", openapi_extra=FORM_BODY)
async def recognize(request: Request, form: DeepStackForm) -> JSONResponse:
    """``userid`` is the person, or ``unknown`` with ``confidence`` 0 for a face facelens
    does not name or whose similarity is below ``min_confidence``."""
    svc = services(request)
    min_confidence = _min_confidence(form, RECOGNIZE_MIN_CONFIDENCE)
    image = _one_image(form)
    route = f"{PREFIX}/recognize"
    recognition = await recognize_photo(
        request, svc, image.data, image.label, route=route, naming=Naming(candidates=1)
    )
    predictions = []
    for face in recognition.faces:
        best = face.candidates[0] if face.candidates else None
        named = best is not None and face.match.name != UNKNOWN
        if best is not None and named and best.similarity >= min_confidence:
            userid, confidence = best.name, round(best.similarity, 4)
        else:
            userid, confidence = UNKNOWN, 0.0
        predictions.append({"userid": userid, "confidence": confidence, **_box(face.box)})
    return _ok(predictions=predictions)


@router.post(
    "/register",
    summary="Add photos to a person, created if new (DeepStack)",
    openapi_extra=FORM_BODY,
)
async def register(request: Request, form: DeepStackForm) -> Response:
    """Every image part of the form is a photo of ``userid``; each adds its (largest) face.
    Answers ``face added`` for a new person, ``face updated`` for one who existed, and lists
    photos that were not used under ``skipped``; 400 when no photo had a face."""
    svc = services(request)
    userid = _userid(form)
    if not form.images:
        raise InvalidValue(NO_IMAGE)
    existing = await run_in_threadpool(svc.gallery.find_person, userid)
    name = existing.name if existing is not None else userid

    async def enrol() -> Response:
        items = await enrol_uploads(
            request,
            svc,
            name,
            form.images,
            largest=True,
            largest_hint="",
            create="if_missing",
        )
        used = [i for i in items if i.status != "skipped"]
        if not used:
            reasons = "; ".join(f"{i.image}: {i.reason}" for i in items)
            raise NoFaceFound(f"no face detected ({reasons})")
        body: dict[str, Any] = {"message": "face updated" if existing else "face added"}
        skipped = [{"image": i.image, "reason": i.reason} for i in items if i not in used]
        if skipped:
            body["skipped"] = skipped
        return _ok(**body)

    hashes = "\n".join(hashlib.sha256(u.data).hexdigest() for u in form.images)
    return await svc.idempotency.run(
        request, request.state.api_key_id, enrol, f"{name}\n{hashes}".encode()
    )


@router.post("/list", summary="The registered people (DeepStack)")
async def list_faces(request: Request, form: DeepStackForm) -> JSONResponse:
    people = await run_in_threadpool(services(request).gallery.list_people)
    return _ok(faces=[p.name for p in people if p.faces])


@router.post("/delete", summary="Delete a person and their faces (DeepStack)")
async def delete(request: Request, form: DeepStackForm) -> JSONResponse:
    """Succeeds for a person who does not exist, as DeepStack does: so does a ``userid`` no
    person can have (over 200 characters, a '/', control characters), deleting nothing.
    Double Take's ``aiserver`` detector throws on a refused untrain."""
    svc = services(request)
    userid = _userid(form)
    async with write_lock:
        try:
            person = await run_in_threadpool(svc.gallery.find_person, userid)
        except InvalidValue:  # not a name anyone can have: nobody to delete
            person = None
        if person is not None:
            await run_in_threadpool(svc.gallery.remove_person, person.name)
    return _ok()


@router.post("/match", summary="Similarity of the faces of two images (DeepStack)")
async def match(request: Request, form: DeepStackForm) -> JSONResponse:
    """``similarity`` is at least 0.70 when facelens holds the two largest faces for one
    person, at most 0.35 when not (``core/matching.py``)."""
    svc = services(request)
    if len(form.images) < 2:
        raise InvalidValue(f"expected two image files, only {len(form.images)} found")
    if len(form.images) > 2:
        raise InvalidValue("only two images allowed")
    first, second = await asyncio.gather(
        *(_analyze(request, svc, image, f"{PREFIX}/match") for image in form.images)
    )
    for label, analysis in ((form.images[0].label, first), (form.images[1].label, second)):
        if not analysis.faces:
            raise NoFaceFound(f"no face detected in {label}")
    scoring = svc.gallery.profile.scoring(svc.settings)
    distance = pair_distance(first.largest().embedding, second.largest().embedding, scoring.metric)
    score = similarity(distance, scoring.threshold, named=distance <= scoring.threshold)
    return _ok(similarity=round(score, 4))

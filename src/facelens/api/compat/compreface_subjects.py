"""CompreFace's subjects (``/api/v1/recognition/subjects``): list, add, rename (onto an
existing subject: merged), delete one or all. Its faces, recognition and error body are in
``compreface.py``; verification in ``compreface_verify.py``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from facelens.api.compat.compreface import PREFIX, SUBJECT_BODY, find_subject, subject_field
from facelens.api.deps import require, services
from facelens.api.enrolment import write_lock
from facelens.errors import Conflict

router = APIRouter(
    prefix=PREFIX,
    tags=["CompreFace"],
    # Listing needs a key's recognize scope, changing subjects its enrol scope.
    dependencies=[Depends(require("enrol", compat=True))],
    responses={
        status: {"description": 'CompreFace\'s error: {"message": "...", "code": N}'}
        for status in (400, 404, 500)
    },
)


@router.get("/subjects", summary="Every subject (CompreFace)")
@router.get("/subjects/", include_in_schema=False)
async def list_subjects(request: Request) -> JSONResponse:
    people = await run_in_threadpool(services(request).gallery.list_people)
    return JSONResponse({"subjects": [p.name for p in people]})


@router.post(
    "/subjects", status_code=201, summary="Add a subject (CompreFace)", openapi_extra=SUBJECT_BODY
)
@router.post("/subjects/", status_code=201, include_in_schema=False)
async def add_subject(request: Request) -> JSONResponse:
    subject = await subject_field(request)
    svc = services(request)
    async with write_lock:
        if await run_in_threadpool(svc.gallery.find_person, subject) is not None:
            raise Conflict(f"Subject {subject!r} already exists.")
        person = await run_in_threadpool(svc.gallery.add_person, subject)
    return JSONResponse({"subject": person.name}, status_code=201)


@router.put(
    "/subjects/{subject}",
    summary="Rename a subject; onto an existing one, merge them (CompreFace)",
    openapi_extra=SUBJECT_BODY,
)
async def rename_subject(request: Request, subject: str) -> JSONResponse:
    new = await subject_field(request)
    svc = services(request)
    async with write_lock:
        old = await find_subject(svc, subject)
        target = await run_in_threadpool(svc.gallery.find_person, new)
        if target is not None and target.name != old.name:
            await run_in_threadpool(svc.gallery.merge_person, old.name, target.name)
        else:
            await run_in_threadpool(svc.gallery.rename_person, old.name, new)
    return JSONResponse({"updated": True})


@router.delete("/subjects/{subject}", summary="Delete a subject and its faces (CompreFace)")
async def delete_subject(request: Request, subject: str) -> JSONResponse:
    svc = services(request)
    async with write_lock:
        person = await find_subject(svc, subject)
        await run_in_threadpool(svc.gallery.remove_person, person.name)
    return JSONResponse({"subject": person.name})


@router.delete("/subjects", summary="Delete every subject and face (CompreFace)")
@router.delete("/subjects/", include_in_schema=False)
async def delete_subjects(request: Request) -> JSONResponse:
    async with write_lock:
        removed = await run_in_threadpool(services(request).gallery.remove_everyone)
    return JSONResponse({"deleted": removed})

"""``GET /v1/gallery/review``: stored faces that make recognition worse, with their fixes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.deps import require_api_key, services
from facelens.jobs import review

router = APIRouter(
    prefix="/v1/gallery",
    tags=["people"],
    dependencies=[Depends(require_api_key)],
    responses=schemas.error_responses(401, 503),
)


@router.get(
    "/review",
    summary="Faces that disagree with their person, one person under two names, near-duplicate "
    "photos, faces too small or blurry to trust, and people with no face; each with the fix "
    "to offer",
    response_model=schemas.ReviewOut,
)
async def review_gallery(request: Request) -> schemas.ReviewOut:
    svc = services(request)
    scoring = svc.gallery.profile.scoring(svc.settings)

    def run() -> tuple[int, list[review.Finding]]:
        stored = svc.gallery.face_vectors()
        faces = svc.gallery.faces()
        people = svc.gallery.list_people()
        return len(faces), review.review(stored, faces, scoring, people)

    count, findings = await run_in_threadpool(run)
    return schemas.ReviewOut(
        faces_reviewed=count,
        findings=[
            schemas.FindingOut(
                kind=f.kind,
                person=f.person,
                face_id=f.face_id,
                message=f.message,
                fix=f.fix,
                other_person=f.other_person,
                other_face_id=f.other_face_id,
                distance=f.distance,
            )
            for f in findings
        ],
        threshold=scoring.threshold,
        min_face_side=review.MIN_FACE_SIDE,
        min_sharpness=review.MIN_SHARPNESS,
        duplicate_below=round(review.DUPLICATE_SHARE * scoring.threshold, 4),
    )

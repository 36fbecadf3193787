"""Recognition routes: the original ``/predictor`` contract and ``/v1`` detect/recognize/…"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens.api import schemas
from facelens.api.bodies import decode_base64, read_images
from facelens.api.deps import require_api_key, services
from facelens.api.services import Services
from facelens.core.matching import UNKNOWN
from facelens.core.pipeline import Analysis, Face, Verification
from facelens.core.recognition import DEFAULT_NAMING, Naming, Recognition

ERRORS = schemas.error_responses(400, 401, 413, 415, 422, 503)

router = APIRouter(dependencies=[Depends(require_api_key)], responses=ERRORS)


def count_faces(request: Request, svc: Services, route: str, faces: int) -> None:
    """Count the faces a request found (each image's, for a request with several)."""
    request.state.faces = getattr(request.state, "faces", 0) + faces
    svc.metrics.faces.labels(route).inc(faces)


def _total(timings: dict[str, float], start: float) -> dict[str, float]:
    return {**timings, "total": round((time.perf_counter() - start) * 1000, 2)}


async def recognize_photo(
    request: Request,
    svc: Services,
    data: bytes,
    label: str,
    *,
    route: str,
    annotate: bool = False,
    naming: Naming = DEFAULT_NAMING,
    queued: bool = True,
) -> Recognition:
    """The faces of one photo, named by a worker against its gallery: the one way every API
    (``/v1``, ``/predictor``, DeepStack, CompreFace, KServe) names faces; counted once here."""
    result = await svc.pool.recognize(
        data, label, annotate=annotate, naming=naming, gone=request.is_disconnected, queued=queued
    )
    count_faces(request, svc, route, len(result.faces))
    unknown = sum(1 for f in result.faces if f.match.name == UNKNOWN)
    svc.metrics.recognized.labels("unknown").inc(unknown)
    svc.metrics.recognized.labels("known").inc(len(result.faces) - unknown)
    return result


@router.post(
    "/predictor",
    tags=["compatibility"],
    summary="The original demo's contract: base64 image in, annotated base64 JPEG out",
    response_class=Response,  # text/plain on success; errors keep their JSON type in the docs
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "base64 of the annotated JPEG, same size as the input",
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": {"type": "string", "contentEncoding": "base64"}}},
        }
    },
)
async def predictor(request: Request) -> PlainTextResponse:
    """The raw body is base64 (data: URL, URL-safe, line breaks and no padding are fine)."""
    svc = services(request)
    body = await request.body()
    data = await run_in_threadpool(decode_base64, body)
    result = await recognize_photo(
        request, svc, data, "the uploaded image", annotate=True, route="/predictor"
    )
    assert result.annotated is not None
    return PlainTextResponse(base64.b64encode(result.annotated).decode("ascii"))


@router.post(
    "/v1/recognize",
    tags=["recognition"],
    summary="Find every face and name it from the gallery",
    response_model=schemas.RecognizeOut,
    responses={
        200: {
            "content": {"image/jpeg": {}},
            "description": "JSON, or the annotated JPEG with ?annotate=true or Accept: image/jpeg",
        }
    },
    openapi_extra=schemas.image_body("image"),
)
async def recognize(
    request: Request,
    annotate: Annotated[
        bool, Query(description="Answer the annotated JPEG instead of JSON.")
    ] = False,
) -> schemas.RecognizeOut | Response:
    svc = services(request)
    start = time.perf_counter()
    image = read_images(await request.body(), request.headers.get("content-type"), ("image",))
    accept = request.headers.get("accept", "")
    as_image = annotate or ("image/jpeg" in accept and "application/json" not in accept)
    result = await recognize_photo(
        request,
        svc,
        image["image"].data,
        image["image"].label,
        annotate=as_image,
        route="/v1/recognize",
    )
    if as_image:
        assert result.annotated is not None
        return Response(
            result.annotated,
            media_type="image/jpeg",
            headers={"X-Faces-Found": str(len(result.faces))},
        )
    return schemas.RecognizeOut(
        faces=[schemas.RecognizedFaceOut.model_validate(f.as_dict()) for f in result.faces],
        width=result.analysis.width,
        height=result.analysis.height,
        model=svc.pool.model_id,
        timings_ms=_total(result.timings_ms, start),
    )


def _detected(face: Face) -> dict[str, Any]:
    """The detection fields of a face, as /v1/detect and /v1/embed answer them."""
    return {
        "box": schemas.BoxOut(**face.box.as_dict()),
        "score": round(face.score, 4),
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
    }


async def _analyze_one(request: Request, svc: Services, route: str) -> tuple[Analysis, float]:
    start = time.perf_counter()
    image = read_images(await request.body(), request.headers.get("content-type"), ("image",))
    analysis = await svc.pool.analyze(
        image["image"].data, image["image"].label, gone=request.is_disconnected
    )
    count_faces(request, svc, route, len(analysis.faces))
    return analysis, start


@router.post(
    "/v1/detect",
    tags=["recognition"],
    summary="Find faces: boxes, landmarks and scores only",
    response_model=schemas.DetectOut,
    openapi_extra=schemas.image_body("image"),
)
async def detect(request: Request) -> schemas.DetectOut:
    analysis, start = await _analyze_one(request, services(request), "/v1/detect")
    return schemas.DetectOut(
        faces=[schemas.DetectedFaceOut(**_detected(f)) for f in analysis.faces],
        width=analysis.width,
        height=analysis.height,
        timings_ms=_total(analysis.timings_ms, start),
    )


@router.post(
    "/v1/embed",
    tags=["recognition"],
    summary="Find faces and return their descriptors",
    response_model=schemas.EmbedOut,
    openapi_extra=schemas.image_body("image"),
)
async def embed(request: Request) -> schemas.EmbedOut:
    svc = services(request)
    analysis, start = await _analyze_one(request, svc, "/v1/embed")
    return schemas.EmbedOut(
        faces=[
            schemas.EmbeddedFaceOut(**_detected(f), embedding=[float(v) for v in f.embedding])
            for f in analysis.faces
        ],
        width=analysis.width,
        height=analysis.height,
        model=svc.pool.model_id,
        timings_ms=_total(analysis.timings_ms, start),
    )


FaceIndex = Annotated[
    int | None,
    Query(
        ge=0,
        le=10_000,
        description="Compare this face of the image (its index in the answer's "
        "images[i].faces) instead of the largest.",
    ),
]


def _verified_image(analysis: Analysis, compared: int) -> schemas.VerifiedImageOut:
    return schemas.VerifiedImageOut(
        width=analysis.width,
        height=analysis.height,
        faces=[schemas.BoxOut(**f.box.as_dict()) for f in analysis.faces],
        compared=compared,
    )


@router.post(
    "/v1/verify",
    tags=["recognition"],
    summary="1:1 — do two images show the same person? (the largest face of each, or the "
    "faces chosen)",
    response_model=schemas.VerifyOut,
    openapi_extra=schemas.image_body("first", "second"),
)
async def verify(
    request: Request, first_face: FaceIndex = None, second_face: FaceIndex = None
) -> schemas.VerifyOut:
    svc = services(request)
    start = time.perf_counter()
    images = read_images(
        await request.body(), request.headers.get("content-type"), ("first", "second")
    )
    first, second = await asyncio.gather(
        svc.pool.analyze(images["first"].data, images["first"].label, request.is_disconnected),
        svc.pool.analyze(images["second"].data, images["second"].label, request.is_disconnected),
    )
    count_faces(request, svc, "/v1/verify", len(first.faces) + len(second.faces))
    result = Verification.compare(
        first, second, svc.gallery.profile.scoring(svc.settings), (first_face, second_face)
    )
    timings = {f"first_{k}": v for k, v in first.timings_ms.items()}
    timings |= {f"second_{k}": v for k, v in second.timings_ms.items()}
    return schemas.VerifyOut(
        **result.as_dict(),
        images=[
            _verified_image(first, result.compared[0]),
            _verified_image(second, result.compared[1]),
        ],
        timings_ms=_total(timings, start),
    )

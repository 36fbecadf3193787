"""CompreFace's verification by stored face, and its recognition by embedding:
``POST /api/v1/recognition/faces/{image_id}/verify`` (compreface-sdk's ``faces.verify``),
``/embeddings/recognize`` and ``/embeddings/faces/{image_id}/verify`` (CompreFace 1.2).

The shapes are CompreFace's (``docs/Rest-API-description.md``; its ``EmbeddingController``
and ``RecognizeController``). ``similarity`` is facelens's calibrated score
(``core/matching.py``): at least 0.70 when facelens holds the two faces for one person,
at most 0.35 when not. Embeddings are the ones the ``calculator`` plugin answers: the
gallery's model's, of its length; each one sent to ``/embeddings/recognize`` is named on its
own (they may come from different photos), not jointly as the faces of one photo are.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from facelens.api.compat.compreface import (
    FILE_BODY,
    NO_FACE,
    PREFIX,
    answer,
    face_id_of,
    face_item,
    json_body,
    plugins_of,
    read_image,
)
from facelens.api.deps import require, services
from facelens.api.recognize import count_faces
from facelens.api.services import Services
from facelens.core.matching import pair_distance, similarity
from facelens.core.pipeline import choose_faces
from facelens.errors import InvalidValue, NoFaceFound
from facelens.models.base import Embeddings
from facelens.models.scoring import Scoring

# Embeddings per call: each is matched against the whole gallery on its own. CompreFace
# documents no limit; a thousand is far more than one photo's faces.
MAX_EMBEDDINGS = 1000

router = APIRouter(
    prefix=PREFIX,
    tags=["CompreFace"],
    # Every route here only reads: a key's recognize scope is enough.
    dependencies=[Depends(require("recognize", compat=True))],
    responses={
        status: {"description": 'CompreFace\'s error: {"message": "...", "code": N}'}
        for status in (400, 404, 500)
    },
)
EMBEDDINGS_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "embeddings": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number"}},
                        }
                    },
                }
            }
        }
    }
}


def _verified(distance: float, scoring: Scoring) -> float:
    return round(similarity(distance, scoring.threshold, named=distance <= scoring.threshold), 5)


async def _stored(svc: Services, image_id: str) -> tuple[str, Embeddings]:
    """The stored face ``image_id``: its person and embedding (404, code 24, if none)."""
    face_id = face_id_of(image_id)
    face = await run_in_threadpool(svc.gallery.face, face_id)
    return face.person, await run_in_threadpool(svc.gallery.face_vector, face_id)


def _embeddings(body: Any, svc: Services) -> tuple[list[list[float]], Embeddings]:
    """``{"embeddings": [[...], ...]}``: the rows as sent, and as the gallery matches them
    (unit length for a cosine model, as CompreFace normalises what it is sent)."""
    rows = body.get("embeddings") if isinstance(body, dict) else None
    profile = svc.gallery.profile
    shape = f'{{"embeddings": [[{profile.dim} numbers], ...]}}'
    if not isinstance(rows, list) or not rows:
        raise InvalidValue(f"The JSON body needs embeddings: {shape}.")
    if len(rows) > MAX_EMBEDDINGS:
        raise InvalidValue(f"{len(rows)} embeddings in one call; send at most {MAX_EMBEDDINGS}.")
    sent = []
    for n, row in enumerate(rows):
        if (
            not isinstance(row, list)
            or len(row) != profile.dim
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in row
            )
        ):
            raise InvalidValue(
                f"Embedding {n} is not {profile.dim} finite numbers ({profile.name}'s "
                f"embeddings, as the calculator plugin answers them): {shape}."
            )
        sent.append([float(v) for v in row])
    vectors = np.asarray(sent, dtype=np.float64)
    with np.errstate(over="ignore"):  # an overflow is an infinite length, refused below
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if profile.metric == "cosine":  # only the direction counts
        if not (np.isfinite(norms).all() and norms.all()):
            raise InvalidValue("An embedding of zeros (or of huge numbers) has no direction.")
        vectors = vectors / norms
    else:  # the length counts: the model's own (far off, distances would overflow)
        low, high = profile.norm_range
        for n, norm in enumerate(norms[:, 0]):
            if not low <= norm <= high:
                raise InvalidValue(
                    f"Embedding {n} has length {norm:.3g}; {profile.name}'s embeddings have "
                    f"lengths from {low} to {high}."
                )
    return sent, vectors.astype(np.float32)


@router.post(
    "/faces/{image_id}/verify",
    summary="Compare a photo's faces with one stored face (CompreFace)",
    openapi_extra=FILE_BODY,
)
async def verify_face(
    request: Request,
    image_id: str,
    limit: Annotated[int, Query(ge=0, description="Largest faces first; 0 for all.")] = 0,
    det_prob_threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
    face_plugins: Annotated[str | None, Query()] = None,
    status: Annotated[bool, Query()] = False,
) -> JSONResponse:
    """Each face of the photo with its ``similarity`` to stored face ``image_id``, and that
    face's ``subject``."""
    svc = services(request)
    start = time.perf_counter()
    person, stored = await _stored(svc, image_id)
    image = await read_image(request)
    analysis = await svc.pool.analyze(image.data, image.label, request.is_disconnected)
    faces = choose_faces(analysis.faces, det_prob_threshold, limit)
    count_faces(request, svc, f"{PREFIX}/faces/verify", len(faces))
    if not faces:
        raise NoFaceFound(NO_FACE)
    scoring = svc.gallery.profile.scoring(svc.settings)
    plugins = plugins_of(face_plugins)
    elapsed = round((time.perf_counter() - start) * 1000)
    result = [
        face_item(
            face,
            plugins,
            status,
            elapsed,
            subject=person,
            similarity=_verified(pair_distance(face.embedding, stored, scoring.metric), scoring),
        )
        for face in faces
    ]
    return JSONResponse(answer(svc, result, status))


@router.post(
    "/embeddings/recognize",
    summary="Each embedding's nearest subjects (CompreFace)",
    openapi_extra=EMBEDDINGS_BODY,
)
async def recognize_embeddings(
    request: Request, prediction_count: Annotated[int, Query(ge=1, le=100)] = 1
) -> JSONResponse:
    svc = services(request)
    sent, vectors = _embeddings(await json_body(request), svc)
    named = await svc.pool.name_vectors(vectors, prediction_count)
    result = []
    for row, (_, candidates) in zip(sent, named, strict=True):
        result.append(
            {
                "embedding": row,
                "similarities": [
                    {"subject": c.name, "similarity": round(c.similarity, 5)} for c in candidates
                ],
            }
        )
    return JSONResponse({"result": result})


@router.post(
    "/embeddings/faces/{image_id}/verify",
    summary="Compare embeddings with one stored face (CompreFace)",
    openapi_extra=EMBEDDINGS_BODY,
)
async def verify_embeddings(request: Request, image_id: str) -> JSONResponse:
    svc = services(request)
    _, stored = await _stored(svc, image_id)
    sent, vectors = _embeddings(await json_body(request), svc)
    scoring = svc.gallery.profile.scoring(svc.settings)
    result = [
        {
            "embedding": row,
            "similarity": _verified(pair_distance(vector, stored, scoring.metric), scoring),
        }
        for row, vector in zip(sent, vectors, strict=True)
    ]
    return JSONResponse({"result": result})

"""KServe's Open Inference Protocol v2 (REST): health, metadata and inference of three models.

KServe runs the image as a custom predictor and probes ``/v2/health/*``; tritonclient and
KServe's own client call the models. Every model takes ``image``, ``BYTES[N]``: N photos (base64
strings in JSON, raw bytes in the binary extension). Faces per photo vary, so outputs are padded
to the most faces of the batch, ``K``, and ``counts`` says how many of each row are real.

- ``face-detect``: ``boxes`` FP32[N,K,4] (left, top, right, bottom), ``scores`` FP32[N,K].
  ``parameters.threshold``: the smallest detector score kept.
- ``face-embed``: ``embedding`` FP32[N,D] of each photo's largest face (400 if one has none).
- ``face-recognize``: ``names`` BYTES[N,K] (``unknown`` for strangers, empty for padding),
  ``distances`` (-1: none) and ``confidences`` FP32[N,K], ``boxes`` FP32[N,K,4].
  ``parameters.threshold``: the distance threshold for this request instead of the server's.

Errors are ``{"error": "..."}`` (``api/errors.py``). The protocol lives in ``api/compat/oip.py``.
"""

from __future__ import annotations

import asyncio
import math
from enum import Enum
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from facelens import __version__
from facelens.api.bodies import decode_base64
from facelens.api.compat.oip import (
    HEADER_LENGTH,
    InferRequest,
    Tensor,
    encode_response,
    parse_request,
)
from facelens.api.deps import require_api_key, services
from facelens.api.errors import register_dialect
from facelens.api.recognize import count_faces, recognize_photo
from facelens.core.pipeline import Analysis
from facelens.core.recognition import Naming, Recognition
from facelens.errors import FaceLensError, InvalidValue, NoFaceFound, NotFound
from facelens.models.base import Box

VERSION = "1"
EXTENSIONS = ["binary_tensor_data"]
MAX_BATCH = 16
NO_DISTANCE = -1.0  # padding, and a face of an empty gallery (JSON has no NaN)
IMAGE_INPUT = {"name": "image", "datatype": "BYTES", "shape": [-1]}


def _outputs(*specs: tuple[str, str, list[int]]) -> list[dict[str, Any]]:
    counts = {"name": "counts", "datatype": "INT32", "shape": [-1]}
    return [{"name": n, "datatype": d, "shape": s} for n, d, s in specs] + [counts]


MODELS: dict[str, list[dict[str, Any]]] = {
    "face-detect": _outputs(("boxes", "FP32", [-1, -1, 4]), ("scores", "FP32", [-1, -1])),
    "face-embed": _outputs(("embedding", "FP32", [-1, -1])),
    "face-recognize": _outputs(
        ("names", "BYTES", [-1, -1]),
        ("distances", "FP32", [-1, -1]),
        ("confidences", "FP32", [-1, -1]),
        ("boxes", "FP32", [-1, -1, 4]),
    ),
}

TAGS: list[str | Enum] = ["KServe / Open Inference Protocol v2"]
# Checked by _model (404 for another name, as the protocol says); the enum is for the docs.
ModelName = Annotated[
    str, Path(json_schema_extra={"enum": ["face-detect", "face-embed", "face-recognize"]})
]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": 'The protocol\'s error: {"error": "..."}'} for status in (400, 404, 503)
}
NO_BODY: dict[int | str, dict[str, Any]] = {
    200: {"description": "Yes (no body)", "content": {}},
    503: {"description": "Not yet (no body)", "content": {}},
}


def _error(
    status: int, message: str, exc: FaceLensError | None, headers: dict[str, str] | None
) -> JSONResponse:
    """The Open Inference Protocol's error body."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


register_dialect(lambda path: path == "/v2" or path.startswith("/v2/"), _error)

router = APIRouter(prefix="/v2", tags=TAGS)
keyed = APIRouter(
    prefix="/v2",
    tags=TAGS,
    dependencies=[Depends(require_api_key)],
    responses={**ERRORS, 401: {"description": "An API key is needed"}},
)


def _model(name: str, version: str | None) -> str:
    if name not in MODELS:
        raise NotFound(f"No model {name!r}; the models are {', '.join(sorted(MODELS))}.")
    if version is not None and version != VERSION:
        raise NotFound(f"Model {name!r} has only version {VERSION}.")
    return name


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "facelens", "version": __version__, "extensions": EXTENSIONS}


@router.get(
    "/health/live", summary="Alive (200, no body)", response_class=Response, responses=NO_BODY
)
async def live() -> Response:
    return Response(status_code=200)


@router.get(
    "/health/ready",
    summary="Ready: a worker holds the models (503 if not)",
    response_class=Response,
    responses=NO_BODY,
)
async def ready(request: Request) -> Response:
    return Response(status_code=200 if services(request).pool.ready else 503)


@router.get(
    "/models/{name}/ready",
    summary="Model ready (200, 404 unknown, 503 not yet)",
    response_class=Response,
    responses={**NO_BODY, 404: ERRORS[404]},
)
async def model_ready(request: Request, name: ModelName) -> Response:
    return await model_version_ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready", include_in_schema=False)
async def model_version_ready(request: Request, name: str, version: str | None) -> Response:
    _model(name, version)
    return Response(status_code=200 if services(request).pool.ready else 503)


@keyed.get("/models/{name}", summary="Model metadata: inputs and outputs")
async def model_metadata(request: Request, name: ModelName) -> JSONResponse:
    return await model_version_metadata(request, name, None)


@keyed.get("/models/{name}/versions/{version}", include_in_schema=False)
async def model_version_metadata(request: Request, name: str, version: str | None) -> JSONResponse:
    _model(name, version)
    return JSONResponse(
        {
            "name": name,
            "versions": [VERSION],
            "platform": f"facelens-{services(request).pool.model_id}",
            "inputs": [IMAGE_INPUT],
            "outputs": MODELS[name],
        }
    )


def _images(infer: InferRequest) -> list[bytes]:
    tensor = infer.input("image")
    if tensor.datatype != "BYTES":
        raise InvalidValue(f"Input 'image' must be BYTES, not {tensor.datatype}.")
    assert isinstance(tensor.data, list)
    if not tensor.data:
        raise InvalidValue("Input 'image' holds no image.")
    if len(tensor.data) > MAX_BATCH:
        raise InvalidValue(f"{len(tensor.data)} images in one request; send at most {MAX_BATCH}.")
    if tensor.binary:
        return list(tensor.data)
    return [
        decode_base64(item, what=f"image[{i}] (JSON BYTES carry images as base64)")
        for i, item in enumerate(tensor.data)
    ]


MAX_DISTANCE = 4.0  # above any distance of either metric between unit-length vectors


def _threshold(infer: InferRequest) -> float | None:
    value = infer.parameters.get("threshold")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue("parameters.threshold must be a number.")
    return float(value)


def _padded(rows: list[list[Any]], width: int, fill: Any, dtype: Any) -> np.ndarray[Any, Any]:
    return np.array([row + [fill] * (width - len(row)) for row in rows], dtype=dtype)


def _ltrb(box: Box) -> list[float]:
    return [float(box.left), float(box.top), float(box.right), float(box.bottom)]


def _counts(per_image: list[int]) -> Tensor:
    return Tensor("counts", "INT32", (len(per_image),), np.array(per_image, dtype=np.int32), True)


def _detect(analyses: list[Analysis], threshold: float | None) -> list[Tensor]:
    faces = [[f for f in a.faces if threshold is None or f.score >= threshold] for a in analyses]
    k = max(len(f) for f in faces)
    boxes = _padded([[_ltrb(f.box) for f in row] for row in faces], k, [0, 0, 0, 0], np.float32)
    scores = _padded([[f.score for f in row] for row in faces], k, 0.0, np.float32)
    n = len(faces)
    return [
        Tensor("boxes", "FP32", (n, k, 4), boxes.reshape(n, k, 4), True),
        Tensor("scores", "FP32", (n, k), scores.reshape(n, k), True),
        _counts([len(row) for row in faces]),
    ]


def _embed(analyses: list[Analysis]) -> list[Tensor]:
    vectors = []
    for i, analysis in enumerate(analyses):
        if not analysis.faces:
            raise NoFaceFound(f"image[{i}] has no face to embed.")
        vectors.append(analysis.largest().embedding)
    matrix = np.stack(vectors).astype(np.float32)
    return [
        Tensor("embedding", "FP32", matrix.shape, matrix, True),
        _counts([len(a.faces) for a in analyses]),
    ]


def _recognize(recognitions: list[Recognition]) -> list[Tensor]:
    named = [r.faces for r in recognitions]
    k = max(len(row) for row in named)
    n = len(named)
    names = [[f.match.name.encode() for f in row] + [b""] * (k - len(row)) for row in named]
    distances = _padded(
        [
            [f.match.distance if f.match.distance is not None else NO_DISTANCE for f in row]
            for row in named
        ],
        k,
        NO_DISTANCE,
        np.float32,
    )
    confidences = _padded([[f.match.confidence for f in row] for row in named], k, 0.0, np.float32)
    boxes = _padded([[_ltrb(f.box) for f in row] for row in named], k, [0, 0, 0, 0], np.float32)
    return [
        Tensor("names", "BYTES", (n, k), [name for row in names for name in row], True),
        Tensor("distances", "FP32", (n, k), distances.reshape(n, k), True),
        Tensor("confidences", "FP32", (n, k), confidences.reshape(n, k), True),
        Tensor("boxes", "FP32", (n, k, 4), boxes.reshape(n, k, 4), True),
        _counts([len(row) for row in named]),
    ]


@keyed.post(
    "/models/{name}/infer",
    summary="Run a model on images (JSON, or the binary tensor extension)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"inputs": {"type": "array"}}}
                }
            }
        }
    },
)
async def infer(request: Request, name: ModelName) -> Response:
    return await infer_version(request, name, None)


@keyed.post("/models/{name}/versions/{version}/infer", include_in_schema=False)
async def infer_version(request: Request, name: str, version: str | None) -> Response:
    svc = services(request)
    _model(name, version)
    body = await request.body()
    parsed = await run_in_threadpool(parse_request, body, request.headers.get(HEADER_LENGTH))
    images = _images(parsed)
    threshold = _threshold(parsed)
    if name == "face-recognize" and threshold is not None and not 0 < threshold <= MAX_DISTANCE:
        raise InvalidValue(
            f"parameters.threshold is a distance for face-recognize: above 0 and at most "
            f"{MAX_DISTANCE:g}."
        )
    svc.pool.check_capacity()
    route = f"/v2/models/{name}/infer"
    if name == "face-recognize":
        naming = Naming(threshold=threshold)
        recognitions = await asyncio.gather(
            *(
                recognize_photo(
                    request, svc, data, f"image[{i}]", route=route, naming=naming, queued=False
                )
                for i, data in enumerate(images)
            )
        )
        outputs = _recognize(list(recognitions))
    else:
        analyses: list[Analysis] = list(
            await asyncio.gather(
                *(
                    svc.pool.analyze(data, f"image[{i}]", request.is_disconnected, queued=False)
                    for i, data in enumerate(images)
                )
            )
        )
        count_faces(request, svc, route, sum(len(a.faces) for a in analyses))
        outputs = _detect(analyses, threshold) if name == "face-detect" else _embed(analyses)
    content, headers = encode_response(name, VERSION, parsed, outputs)
    return Response(content, headers=headers)

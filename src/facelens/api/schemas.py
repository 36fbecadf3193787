"""The JSON shapes of the HTTP API (responses and JSON request bodies), for OpenAPI and checks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    code: str = Field(description="Stable machine-readable code, e.g. bad_image, not_found.")
    message: str = Field(description="What went wrong and what to do, in one line.")


class ErrorOut(_Model):
    error: ErrorDetail


class BoxOut(_Model):
    """A face box in pixels of the original (EXIF-rotated) image."""

    left: int
    top: int
    right: int
    bottom: int


class RunnerUp(_Model):
    name: str
    distance: float | None


class RecognizedFaceOut(_Model):
    name: str = Field(description="The person's name, or 'unknown'.")
    distance: float | None = Field(
        description="Distance to that person's closest stored face, lower is closer: for the "
        "sface model 1 - cosine similarity, for dlib Euclidean."
    )
    confidence: float = Field(description="0..1, 0.5 exactly at the threshold.")
    box: BoxOut
    ambiguous: bool = Field(description="The runner-up is within the ambiguity margin.")
    runner_up: RunnerUp | None
    margin: float | None


class RecognizeOut(_Model):
    faces: list[RecognizedFaceOut]
    width: int
    height: int
    model: str
    timings_ms: dict[str, float] = Field(
        description="Milliseconds per stage: queue, decode, detect, align, embed, match, total; "
        "decode_full when a large JPEG was decoded reduced and a face was too small in it."
    )


class DetectedFaceOut(_Model):
    box: BoxOut
    score: float = Field(description="The detector's own score (higher is surer).")
    landmarks: list[list[float]] = Field(
        description="5 points [x, y] in image pixels. sface: the subject's right eye, left eye, "
        "nose tip, right and left mouth corner. dlib: eye corners and the base of the nose."
    )


class DetectOut(_Model):
    faces: list[DetectedFaceOut]
    width: int
    height: int
    timings_ms: dict[str, float]


class EmbeddedFaceOut(DetectedFaceOut):
    embedding: list[float] = Field(
        description="The face descriptor of the model in use (`model`; sface's is L2-normalised)."
    )


class EmbedOut(_Model):
    faces: list[EmbeddedFaceOut]
    width: int
    height: int
    model: str
    timings_ms: dict[str, float]


class VerifiedImageOut(_Model):
    width: int
    height: int
    faces: list[BoxOut] = Field(
        description="Every face found, in the order first_face/second_face index them."
    )
    compared: int = Field(description="The index in `faces` of the face compared.")


class VerifyOut(_Model):
    same_person: bool
    distance: float
    threshold: float
    faces_found: list[int]
    notes: list[str]
    images: list[VerifiedImageOut] | None = Field(
        default=None,
        description="The first and the second image: their size, every face's box and which "
        "was compared (pick another with ?first_face= or ?second_face=).",
    )
    timings_ms: dict[str, float]


class PersonIn(_Model):
    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])


class PersonOut(_Model):
    name: str
    face_count: int


class PersonListed(PersonOut):
    thumbnail_face_id: int | None = Field(
        description="The person's first face with a kept thumbnail (GET .../faces/{id}/thumbnail), "
        "null if none."
    )


class FaceRecordOut(_Model):
    id: int
    source: str | None = Field(description="The file or upload the face came from.")
    box: BoxOut
    created_at: datetime
    sharpness: float | None = Field(
        description="Variance of the Laplacian of the face at 112 px (blurred faces score under "
        "20); null for faces enrolled before it was measured."
    )
    thumbnail: bool = Field(description="A thumbnail is kept (GET .../faces/{id}/thumbnail).")


class PersonDetail(PersonOut):
    faces: list[FaceRecordOut]


class PeoplePage(_Model):
    people: list[PersonListed]
    total: int
    offset: int
    limit: int
    next_offset: int | None = Field(
        description="Pass as offset for the next page; null at the end."
    )


class PersonDeleted(_Model):
    name: str
    faces_removed: int


class FaceDeleted(_Model):
    name: str
    face_id: int


class FaceMoveIn(_Model):
    to: str = Field(min_length=1, max_length=200, description="The person to give the face to.")


class FaceMoved(_Model):
    face_id: int
    to: str
    face_count: int = Field(description="Faces the receiving person has now.")


class MergeIn(_Model):
    source: str = Field(
        alias="from",
        min_length=1,
        max_length=200,
        description="The person whose faces move to the target, then deleted.",
    )


class PersonMerged(PersonOut):
    merged: str = Field(description="The person merged in (deleted).")
    faces_moved: int = Field(description="Faces of that person the target holds now.")
    duplicates_dropped: int = Field(
        description="Their faces of photos the target held already (the same file twice)."
    )


class PhotosIn(_Model):
    sha256: list[Annotated[str, Field(pattern="^[0-9a-fA-F]{64}$")]] = Field(
        min_length=1,
        max_length=1000,
        description="SHA-256 (hex) of photo files, as read from disk or uploaded.",
    )


class PhotoHolder(_Model):
    sha256: str
    person: str
    face_ids: list[int]


class PhotosOut(_Model):
    photos: list[PhotoHolder] = Field(
        description="Who holds faces of each photo asked about that is enrolled (none for "
        "the others); a photo enrolled for two people is listed twice."
    )


class FindingOut(_Model):
    kind: Literal["mismatch", "same_person", "duplicate", "small", "blurry", "empty"]
    person: str
    face_id: int | None = Field(
        description="The face the finding is about; for same_person the one of `person` "
        "closest to `other_person`; null for empty (a finding about the person)."
    )
    message: str
    fix: Literal["move", "merge", "remove", "remove_person"] = Field(
        description="move: the face to other_person (PATCH /v1/people/{person}/faces/{face_id} "
        '{"to": other_person}); merge: person into other_person (POST '
        '/v1/people/{other_person}/merge {"from": person}); remove: DELETE the face; '
        "remove_person: DELETE the person (or add photos of them)."
    )
    other_person: str | None
    other_face_id: int | None
    distance: float | None


class ReviewOut(_Model):
    faces_reviewed: int
    findings: list[FindingOut]
    threshold: float
    min_face_side: int
    min_sharpness: float
    duplicate_below: float


class EnrolItem(_Model):
    image: str = Field(description="The upload's file name (or field name).")
    status: Literal["enrolled", "already_enrolled", "skipped"]
    face_ids: list[int]
    box: BoxOut | None
    reason: str | None = Field(description="Why nothing was enrolled, when skipped.")


class EnrolOut(_Model):
    name: str
    results: list[EnrolItem]
    enrolled: int = Field(description="Photos enrolled by this request.")
    face_count: int = Field(description="Faces the person has now.")


class NothingEnrolledOut(ErrorOut):
    """A 422 of an enrolment that was to create the person: when no photo gave a face
    (code ``nothing_enrolled``), what each photo did, as a successful answer has it."""

    results: list[EnrolItem] | None = Field(
        default=None, description="Per photo, why nothing was enrolled (nothing_enrolled)."
    )


def image_body(*fields: str, many: bool = False) -> dict[str, Any]:
    """OpenAPI for a body holding images as multipart files, JSON base64, or raw bytes."""
    binary = {"type": "string", "format": "binary"}
    b64 = {"type": "string", "contentEncoding": "base64", "description": "base64 of an image"}
    json_props: dict[str, Any] = {name: b64 for name in fields}
    if many:
        json_props = {"images": {"type": "array", "items": b64, "minItems": 1}}
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    name: ({"type": "array", "items": binary} if many else binary)
                    for name in (("images",) if many else fields)
                },
                "required": list(("images",) if many else fields),
            }
        },
        "application/json": {
            "schema": {"type": "object", "properties": json_props, "required": list(json_props)}
        },
    }
    if len(fields) == 1 or many:
        for raw in ("image/jpeg", "image/png", "image/webp", "application/octet-stream"):
            content[raw] = {"schema": binary}
    return {"requestBody": {"required": True, "content": content}}


def new_person_body(max_images: int) -> dict[str, Any]:
    """OpenAPI for ``POST /v1/people``: JSON (a name, and photos as base64 or none) or a
    multipart form (a text field ``name`` and image files)."""
    name = {"type": "string", "minLength": 1, "maxLength": 200}
    b64 = {"type": "string", "contentEncoding": "base64"}
    binary = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "name": name,
                            "images": {
                                "type": "array",
                                "items": b64,
                                "minItems": 1,
                                "maxItems": max_images,
                            },
                        },
                        "required": ["name"],
                        "additionalProperties": False,
                    }
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "name": name,
                            "images": {"type": "array", "items": binary},
                        },
                        "required": ["name", "images"],
                    }
                },
            },
        }
    }


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting our error shape for each status."""
    return {status: {"model": ErrorOut} for status in statuses}

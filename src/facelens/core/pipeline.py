"""The engine: detect → align → embed → match, the one place that orchestrates the models.

Detection runs on a copy downscaled to the profile's ``detect_max_side`` (large photos would
otherwise cost seconds); boxes and landmarks are mapped back and faces are aligned and embedded
from the full image, so the embedding does not lose detail. A large JPEG may come decoded
reduced (``Engine.decode_side``): its faces are then cut from the reduced pixels when each is
at least the aligner's chip in them (the chip is never enlarged from them), from the full
image, decoded then, otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from facelens.core.imaging import DecodedImage, downscale, face_thumbnail, sharpness
from facelens.core.matching import (
    Candidate,
    GalleryIndex,
    Match,
    identify_ranked,
    pair_distance,
)
from facelens.errors import InvalidValue, NoFaceFound
from facelens.models.base import (
    Aligner,
    Box,
    Detection,
    Detector,
    Embedder,
    Embeddings,
    Landmarks,
    RGBImage,
)
from facelens.models.profiles import ModelProfile, profile_for
from facelens.models.scoring import Scoring
from facelens.settings import Settings


@dataclass(frozen=True, slots=True)
class Face:
    """A face found in an image: box in original pixels, detector score, its descriptor; for
    enrolment also its sharpness and a small JPEG of it (see :meth:`Engine.analyze`)."""

    box: Box
    score: float
    landmarks: Landmarks
    embedding: Embeddings
    sharpness: float | None = None
    thumbnail: bytes | None = None


@dataclass(frozen=True, slots=True)
class Analysis:
    """Every face of one image, and the milliseconds each stage took."""

    width: int
    height: int
    faces: tuple[Face, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def largest(self) -> Face:
        """The face with the largest box; :class:`NoFaceFound` if there is none."""
        if not self.faces:
            raise NoFaceFound("No face was found in the image.")
        return max(self.faces, key=lambda f: f.box.area)


@dataclass(frozen=True, slots=True)
class RecognizedFace:
    """A face, the name it was given, and the people offered for it (best first; the named
    person first when there is one)."""

    face: Face
    match: Match
    candidates: tuple[Candidate, ...] = ()

    @property
    def box(self) -> Box:
        return self.face.box

    def as_dict(self) -> dict[str, Any]:
        m = self.match
        return {
            "name": m.name,
            "distance": None if m.distance is None else round(m.distance, 4),
            "confidence": round(m.confidence, 4),
            "box": self.box.as_dict(),
            "ambiguous": m.ambiguous,
            "runner_up": None
            if m.runner_up is None
            else {
                "name": m.runner_up,
                "distance": None
                if m.runner_up_distance is None
                else round(m.runner_up_distance, 4),
            },
            "margin": None if m.margin is None else round(m.margin, 4),
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether two images show the same person: the largest face of each, or the faces
    chosen (``compared``: their indexes in each analysis's ``faces``)."""

    same_person: bool
    distance: float
    threshold: float
    faces_found: tuple[int, int]
    compared: tuple[int, int] = (0, 0)
    chosen: tuple[bool, bool] = (False, False)

    @classmethod
    def compare(
        cls,
        first: Analysis,
        second: Analysis,
        scoring: Scoring,
        choose: tuple[int | None, int | None] = (None, None),
    ) -> Verification:
        """Compare the largest face of each analysis, or the face ``choose`` names (its
        index in that analysis's ``faces``); needs no model."""
        faces, compared = [], []
        for which, analysis, index in (("first", first, choose[0]), ("second", second, choose[1])):
            if not analysis.faces:
                raise NoFaceFound(f"No face was found in the {which} image.")
            if index is None:  # the largest (the first of equals, as Analysis.largest)
                index = max(range(len(analysis.faces)), key=lambda k: analysis.faces[k].box.area)
            elif not 0 <= index < len(analysis.faces):
                count = len(analysis.faces)
                raise InvalidValue(
                    f"The {which} image has {count} face{'s' if count != 1 else ''} "
                    f"(0 to {count - 1}): there is no face {index} in it."
                )
            faces.append(analysis.faces[index])
            compared.append(index)
        distance = pair_distance(faces[0].embedding, faces[1].embedding, scoring.metric)
        threshold = scoring.threshold
        return cls(
            distance <= threshold,
            distance,
            threshold,
            (len(first.faces), len(second.faces)),
            (compared[0], compared[1]),
            (choose[0] is not None, choose[1] is not None),
        )

    def as_dict(self) -> dict[str, Any]:
        notes = [
            f"image {i} has {n} faces; "
            + (f"face {index} was used, as asked" if chosen else "the largest was used")
            for i, (n, index, chosen) in enumerate(
                zip(self.faces_found, self.compared, self.chosen, strict=True), start=1
            )
            if n > 1
        ]
        return {
            "same_person": self.same_person,
            "distance": round(self.distance, 4),
            "threshold": self.threshold,
            "faces_found": list(self.faces_found),
            "notes": notes,
        }


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = round((time.perf_counter() - start) * 1000, 2)


class Engine:
    """Loads a profile's models once, then analyses images and matches faces against a gallery."""

    def __init__(
        self,
        settings: Settings,
        profile: ModelProfile,
        detector: Detector,
        aligner: Aligner,
        embedder: Embedder,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.detector = detector
        self.aligner = aligner
        self.embedder = embedder
        self.scoring = profile.scoring(settings)
        self.detect_max_side = settings.detect_max_side or profile.detect_max_side
        # OpenCV's networks are not thread-safe: a thread that embeds beside others on this
        # engine (the embedding threads of several video streams) holds this while it does.
        self.embedding_lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the models of the profile ``settings`` name (:class:`ModelError` if one is
        missing or damaged)."""
        profile = profile_for(settings.model)
        return cls(settings, profile, *profile.load(settings))

    @property
    def model_id(self) -> str:
        """What produced the embeddings; galleries refuse embeddings of another model."""
        return self.profile.id

    @property
    def decode_side(self) -> int:
        """The least longest side a JPEG to analyse is decoded at (``decode_image``'s
        ``reduce_to``): twice the detection size, so detection sees what it would have seen
        and most faces are large enough in it to be aligned from it."""
        return 2 * self.detect_max_side

    def detect(self, pixels: RGBImage) -> list[Detection]:
        """The faces of ``pixels``, found on a copy at most ``detect_max_side`` pixels across,
        boxes and landmarks in the image's own pixels (empty boxes left out)."""
        height, width = pixels.shape[:2]
        small, factor = downscale(pixels, self.detect_max_side)
        detections = [d.scaled(factor, width, height) for d in self.detector.detect(small)]
        return [d for d in detections if d.box.area > 0]

    def analyze(self, image: DecodedImage, *, enrolment: bool = False) -> Analysis:
        """Find, align and embed every face of ``image``. For ``enrolment``, also measure each
        face's sharpness and keep a thumbnail of it (unless thumbnails are switched off)."""
        timings: dict[str, float] = {}
        with _timed(timings, "detect"):
            kept = self.detect(image.pixels)
        reduction = image.reduction
        if reduction is not None and (enrolment or not self._large_enough(kept)):
            with _timed(timings, "decode_full"):
                image = reduction.full()
            kept = [reduction.detection(d) for d in kept]
            reduction = None
        with _timed(timings, "align"):
            aligned = self.aligner.align(image.pixels, kept)
        with _timed(timings, "embed"):
            vectors = self.embedder.embed(aligned)
        if reduction is None:
            faces = tuple(
                Face(d.box, d.score, a.landmarks, vectors[i])
                for i, (d, a) in enumerate(zip(kept, aligned, strict=True))
            )
        else:  # boxes and landmarks in the full image's pixels
            faces = tuple(
                Face(reduction.box(d.box), d.score, reduction.points(a.landmarks), vectors[i])
                for i, (d, a) in enumerate(zip(kept, aligned, strict=True))
            )
        if enrolment:
            thumbnails = self.settings.face_thumbnails
            faces = tuple(
                replace(
                    f,
                    sharpness=sharpness(image.pixels, f.box),
                    thumbnail=face_thumbnail(image.pixels, f.box) if thumbnails else None,
                )
                for f in faces
            )
        return Analysis(image.width, image.height, faces, timings)

    def _large_enough(self, detections: list[Detection]) -> bool:
        """Whether every face is at least the aligner's chip on each side (so its chip is cut
        without enlarging it)."""
        side = self.aligner.chip_size
        return all(min(d.box.width, d.box.height) >= side for d in detections)

    def verify(self, first: Analysis, second: Analysis) -> Verification:
        """Compare the largest face of each analysis."""
        return Verification.compare(first, second, self.scoring)


def match_faces(
    faces: Sequence[Face],
    index: GalleryIndex,
    scoring: Scoring,
    *,
    top: int = 0,
    timings: dict[str, float] | None = None,
) -> list[RecognizedFace]:
    """Names for ``faces`` (one image's), assigned jointly, with up to ``top`` candidates
    each (none by default); needs no model. The time it took goes to ``timings["match"]``."""
    vectors = (
        np.stack([f.embedding for f in faces]) if faces else np.zeros((0, index.dim), np.float32)
    )
    with _timed({} if timings is None else timings, "match"):
        named = identify_ranked(vectors, index, scoring, top)
    return [RecognizedFace(f, m, c) for f, (m, c) in zip(faces, named, strict=True)]


def detection_probability(score: float) -> float:
    """A detector's score as a 0..1 probability (YuNet's is one; dlib's HOG margin is clipped)."""
    return min(1.0, max(0.0, score))


def choose_faces(
    faces: Sequence[Face], min_probability: float | None = None, largest: int = 0
) -> list[Face]:
    """The faces at least ``min_probability`` likely to be faces; with ``largest``, that many
    of them, largest first (0: all, in their order)."""
    chosen = [
        f
        for f in faces
        if min_probability is None or detection_probability(f.score) >= min_probability
    ]
    if largest:
        chosen = sorted(chosen, key=lambda f: f.box.area, reverse=True)[:largest]
    return chosen

"""dlib backends: HOG and CNN (MMOD) detectors, the 5-point aligner, the ResNet embedder.

Weights come from the ``face_recognition_models`` package (CC0), installed with the ``dlib``
extra (``facelens[dlib]``) and checked by SHA-256; nothing is ever downloaded. The embedding is
the same one the ``face_recognition`` library computes (150x150 chips, padding 0.25, no
jitter), so that library's threshold applies unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from facelens.errors import ModelError
from facelens.models.base import AlignedFace, Box, Detection, Embeddings, RGBImage
from facelens.models.weights import WeightFile, verified
from facelens.system import extras

dlib = extras.load("dlib", "dlib", "dlib's models (--model dlib, --detector hog or cnn)")

T = TypeVar("T")

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _weight(filename: str, sha256: str) -> WeightFile:
    return WeightFile(
        "face_recognition_models",
        "0.3.0",
        f"face_recognition_models/models/{filename}",
        sha256,
        "CC0-1.0",
    )


SHAPE_PREDICTOR_5 = _weight(
    "shape_predictor_5_face_landmarks.dat",
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
)
RESNET = _weight(
    "dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)
MMOD = _weight(
    "mmod_human_face_detector.dat",
    "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
)


def _load(factory: Callable[[str], T], weight: WeightFile, what: str) -> T:
    """Load one dlib model from its checked weight file, as a :class:`ModelError` if that fails."""
    path = verified(weight)
    try:
        return factory(str(path))
    except RuntimeError as exc:
        raise ModelError(
            f"Cannot load dlib's {what} from {path} ({exc}). {weight.reinstall}"
        ) from exc


def _to_box(rect: Any, width: int, height: int) -> Box:  # a dlib.rectangle
    return Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1).clipped(width, height)


class HogDetector:
    """dlib's frontal-face HOG detector: fast on CPU, releases the GIL."""

    name = "hog"
    gives_landmarks = False

    def __init__(self, upsample: int = 1) -> None:
        self._upsample = upsample
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        rects, scores, _ = self._detector.run(image, self._upsample, 0.0)
        return [
            Detection(_to_box(r, width, height), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]


class CnnDetector:
    """dlib's MMOD CNN detector: finds more profile and small faces, ~2 s per image on a CPU."""

    name = "cnn"
    gives_landmarks = False

    def __init__(self, upsample: int = 1) -> None:
        self._upsample = upsample
        self._detector = _load(dlib.cnn_face_detection_model_v1, MMOD, "CNN face detector")

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        found = self._detector(image, self._upsample)
        return [Detection(_to_box(d.rect, width, height), float(d.confidence)) for d in found]


class FivePointAligner:
    """dlib's 5-landmark shape predictor and its face-chip alignment (150x150, padding 0.25)."""

    name = "dlib-5pt"
    needs_landmarks = False  # it finds its own 5 points inside the detector's box
    chip_size = CHIP_SIZE

    def __init__(self) -> None:
        self._predictor = _load(dlib.shape_predictor, SHAPE_PREDICTOR_5, "5-point shape predictor")

    def align(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]:
        if not detections:
            return []
        shapes = dlib.full_object_detections()
        for box in (d.box for d in detections):
            shapes.append(
                self._predictor(
                    image, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
                )
            )
        chips = dlib.get_face_chips(image, shapes, size=CHIP_SIZE, padding=CHIP_PADDING)
        faces = []
        for shape, chip in zip(shapes, chips, strict=True):
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            faces.append(AlignedFace(np.asarray(chip, dtype=np.uint8), points))
        return faces


class ResNetEmbedder:
    """dlib's ResNet face descriptor, compared by Euclidean distance (see the dlib profile)."""

    name = "dlib-resnet-v1"
    dim = 128

    def __init__(self) -> None:
        self._model = _load(dlib.face_recognition_model_v1, RESNET, "ResNet face descriptor")

    def embed(self, faces: Sequence[AlignedFace]) -> Embeddings:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.compute_face_descriptor([f.chip for f in faces])
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)

"""dlib backends: HOG and CNN (MMOD) detectors, the 5-point aligner, the ResNet 128-D embedder.

Weights come from the ``face_recognition_models`` package, installed with facelens; nothing is
ever downloaded. The embedding is the same one the ``face_recognition`` library computes
(150x150 chips, padding 0.25, no jitter), so its 0.6 threshold applies unchanged.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import dlib
import numpy as np

from facelens.errors import ModelError
from facelens.models.base import AlignedFace, Box, Detection, Embeddings, RGBImage

T = TypeVar("T")

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def weights_path(filename: str) -> Path:
    """The path of one of dlib's weight files from the ``face_recognition_models`` package."""
    spec = importlib.util.find_spec("face_recognition_models")
    # find_spec does not import the package: its __init__ needs pkg_resources, which we avoid.
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelError(
            "The package 'face_recognition_models' (dlib's model weights) is not installed. "
            "Reinstall facelens with its locked dependencies (see the README's set-up command)."
        )
    path = Path(locations[0]) / "models" / filename
    if not path.is_file():
        raise ModelError(
            f"Model file {path} is missing; the 'face_recognition_models' installation is "
            "incomplete. Reinstall it (see the README's set-up command)."
        )
    return path


def _load(factory: Callable[[str], T], filename: str, what: str) -> T:
    """Load one dlib model from its weight file, as a :class:`ModelError` if that fails."""
    path = weights_path(filename)
    try:
        return factory(str(path))
    except RuntimeError as exc:
        raise ModelError(
            f"Cannot load dlib's {what} from {path} ({exc}); the file may be damaged. "
            "Reinstall face_recognition_models (see the README's set-up command)."
        ) from exc


def _to_box(rect: dlib.rectangle, width: int, height: int) -> Box:
    return Box(rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1).clipped(width, height)


class HogDetector:
    """dlib's frontal-face HOG detector: fast on CPU, releases the GIL."""

    name = "hog"

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

    def __init__(self, upsample: int = 1) -> None:
        self._upsample = upsample
        self._detector = _load(
            dlib.cnn_face_detection_model_v1, "mmod_human_face_detector.dat", "CNN face detector"
        )

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        found = self._detector(image, self._upsample)
        return [Detection(_to_box(d.rect, width, height), float(d.confidence)) for d in found]


class FivePointAligner:
    """dlib's 5-landmark shape predictor and its face-chip alignment (150x150, padding 0.25)."""

    name = "dlib-5pt"

    def __init__(self) -> None:
        self._predictor = _load(
            dlib.shape_predictor, "shape_predictor_5_face_landmarks.dat", "5-point shape predictor"
        )

    def align(self, image: RGBImage, boxes: Sequence[Box]) -> list[AlignedFace]:
        if not boxes:
            return []
        shapes = dlib.full_object_detections()
        for box in boxes:
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
    """dlib's ResNet face descriptor: 128-D, Euclidean distance < 0.6 means the same person."""

    name = "dlib-resnet-v1"
    dim = 128

    def __init__(self) -> None:
        self._model = _load(
            dlib.face_recognition_model_v1,
            "dlib_face_recognition_resnet_model_v1.dat",
            "ResNet face descriptor",
        )

    def embed(self, faces: Sequence[AlignedFace]) -> Embeddings:
        if not faces:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.compute_face_descriptor([f.chip for f in faces])
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)

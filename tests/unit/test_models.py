"""Model files: a missing weight file fails with a message that says how to repair it."""

from __future__ import annotations

import pytest

from facelens.errors import ModelError
from facelens.models import DETECTORS, embedding_model_id
from facelens.models.dlib import weights_path
from facelens.settings import Settings


def test_the_shipped_weights_are_found() -> None:
    for name in (
        "shape_predictor_5_face_landmarks.dat",
        "dlib_face_recognition_resnet_model_v1.dat",
        "mmod_human_face_detector.dat",
    ):
        assert weights_path(name).stat().st_size > 500_000


def test_a_missing_weight_file_is_a_model_error_saying_what_to_do() -> None:
    with pytest.raises(ModelError, match=r"missing.*Reinstall"):
        weights_path("no_such_model.dat")


def test_every_configurable_detector_has_a_backend() -> None:
    assert set(DETECTORS) == {"hog", "cnn", "haar"}
    with pytest.raises(ValueError, match="detector"):
        Settings(detector="yolo")  # type: ignore[arg-type]


def test_model_id_names_aligner_and_embedder() -> None:
    assert embedding_model_id(Settings()) == "dlib-5pt+dlib-resnet-v1"

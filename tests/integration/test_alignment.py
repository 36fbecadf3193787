"""YuNet's landmarks and the ArcFace alignment on a real photo, turned: eyes come out level,
the subject's right eye on the image's left, where SFace expects them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens.core.imaging import read_image_file
from facelens.models.base import RGBImage
from facelens.models.opencv_zoo import (
    ARCFACE_TEMPLATE,
    CROP_SIZE,
    ArcFaceAligner,
    YuNetDetector,
    similarity_transform,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> RGBImage:
    return read_image_file(faces_dir / "probes" / "obama-720p.jpg", max_pixels=10**8).pixels


def turned(image: RGBImage, degrees: float) -> RGBImage:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.ascontiguousarray(cv2.warpAffine(image, matrix, (width, height)))


def test_yunet_landmarks_are_eyes_nose_and_mouth_in_arcface_order(
    detector: YuNetDetector, photo: RGBImage
) -> None:
    (face,) = detector.detect(photo)
    assert face.landmarks is not None and face.landmarks.shape == (5, 2)
    right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
    assert right_eye[0] < nose[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert mouth_right[0] < mouth_left[0]
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])
    box = face.box
    assert all(box.left <= x <= box.right and box.top <= y <= box.bottom for x, y in face.landmarks)


@pytest.mark.parametrize("degrees", [0, 25, -40, 180])
def test_the_aligned_crop_is_upright_whatever_the_photo_turn(
    detector: YuNetDetector, photo: RGBImage, degrees: float
) -> None:
    image = turned(photo, degrees)
    face = max(detector.detect(image), key=lambda d: d.box.area)
    (aligned,) = ArcFaceAligner().align(image, [face])
    assert aligned.chip.shape == (CROP_SIZE, CROP_SIZE, 3)
    # Find the landmarks again, independently, in the crop (on a larger canvas: YuNet wants
    # some context around a face).
    canvas = np.zeros((3 * CROP_SIZE, 3 * CROP_SIZE, 3), dtype=np.uint8)
    canvas[CROP_SIZE : 2 * CROP_SIZE, CROP_SIZE : 2 * CROP_SIZE] = aligned.chip
    found = detector.detect(cv2.resize(canvas, None, fx=2, fy=2))
    assert found, "no face found in the aligned crop"
    assert found[0].landmarks is not None
    points = found[0].landmarks / 2 - CROP_SIZE
    right_eye, left_eye = points[0], points[1]
    assert abs(right_eye[1] - left_eye[1]) < 5  # level eyes
    assert right_eye[0] < left_eye[0]  # not mirrored, not upside down
    assert np.abs(points[:2] - ARCFACE_TEMPLATE[:2]).max() < 8  # where the template puts them


def test_similarity_transform_recovers_a_turn_scale_and_shift_exactly() -> None:
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = ARCFACE_TEMPLATE * 3.0
    target = source @ (0.5 * rotation).T + np.array([10.0, -4.0])
    matrix = similarity_transform(source, target)
    assert np.allclose(matrix[:, :2], 0.5 * rotation, atol=1e-9)
    assert np.allclose(matrix[:, 2], [10.0, -4.0], atol=1e-9)


def test_similarity_transform_never_mirrors() -> None:
    mirrored = ARCFACE_TEMPLATE * np.array([-1.0, 1.0])
    matrix = similarity_transform(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0

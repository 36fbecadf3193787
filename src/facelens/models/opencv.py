"""OpenCV's Haar cascade face detector: the original demo's detector, kept as an option."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens.errors import ModelError
from facelens.models.base import Box, Detection, RGBImage

CASCADE_FILE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """Frontal faces with OpenCV's bundled Haar cascade; fast, more false positives than HOG."""

    name = "haar"
    gives_landmarks = False

    def __init__(self, min_size: int = 30) -> None:
        path = Path(cv2.data.haarcascades) / CASCADE_FILE  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ModelError(
                f"Cannot load OpenCV's Haar cascade {path}; reinstall opencv-python-headless "
                "with the README's set-up command."
            )
        self._min_size = min_size

    def detect(self, image: RGBImage) -> list[Detection]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=5,
            minSize=(self._min_size, self._min_size),
            outputRejectLevels=True,
        )
        height, width = image.shape[:2]
        return [
            Detection(Box(int(x), int(y), int(x + w), int(y + h)).clipped(width, height), float(s))
            for (x, y, w, h), s in zip(
                np.asarray(rects).reshape(-1, 4), np.ravel(weights), strict=True
            )
        ]

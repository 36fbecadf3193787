"""The model layer's interfaces: a backend is one file that implements these Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
"""An image as an ``(height, width, 3)`` uint8 array in RGB order."""

Embeddings = npt.NDArray[np.float32]
"""Face descriptors as an ``(n, dim)`` float32 array."""


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in integer pixels; ``right`` and ``bottom`` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def scaled(self, factor: float) -> Box:
        """The box in an image ``factor`` times as large."""
        return Box(
            round(self.left * factor),
            round(self.top * factor),
            round(self.right * factor),
            round(self.bottom * factor),
        )

    def clipped(self, width: int, height: int) -> Box:
        """The box limited to an image of ``width`` x ``height`` pixels."""
        return Box(
            min(max(self.left, 0), width),
            min(max(self.top, 0), height),
            min(max(self.right, 0), width),
            min(max(self.bottom, 0), height),
        )

    def as_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}


Landmarks = npt.NDArray[np.float64]
"""Face landmarks as an ``(n, 2)`` float64 array of x, y pixels."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One face found by a detector: its box, the detector's own score (higher is surer), and
    its landmarks when the detector gives them (YuNet: right eye, left eye, nose tip, right and
    left mouth corner, the subject's right being on the image's left)."""

    box: Box
    score: float
    landmarks: Landmarks | None = None

    def scaled(self, factor: float, width: int, height: int) -> Detection:
        """The detection in an image ``factor`` times as large, clipped to its size."""
        return Detection(
            self.box.scaled(factor).clipped(width, height),
            self.score,
            None if self.landmarks is None else self.landmarks * factor,
        )


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A face cut out and aligned for the embedder, with the landmarks used (pixels, x/y)."""

    chip: RGBImage
    landmarks: Landmarks


class Detector(Protocol):
    """Image → face boxes."""

    name: str
    gives_landmarks: bool

    def detect(self, image: RGBImage) -> list[Detection]:
        """Every face in ``image``, boxes in that image's pixels."""
        ...


class Aligner(Protocol):
    """Image and detections → aligned face chips the embedder expects."""

    name: str
    needs_landmarks: bool
    """True if it aligns with the detector's landmarks (so only such detectors can feed it)."""
    chip_size: int
    """The side of the chips it cuts, in pixels: a face at least this large is cut without
    being enlarged."""

    def align(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]:
        """One aligned face per detection, in their order, cut from ``image`` (full size)."""
        ...


class Embedder(Protocol):
    """Aligned faces → descriptors, all faces of an image in one call."""

    name: str
    dim: int

    def embed(self, faces: Sequence[AlignedFace]) -> Embeddings:
        """An ``(len(faces), dim)`` array; empty input gives a ``(0, dim)`` array."""
        ...

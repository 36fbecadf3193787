"""When the face in a track's box may no longer be the face that was named: the picture cut
to another shot, the face in the box looks different, the box jumped, or the face was out of
sight for a while. Cheap signals, looked at on every processed frame; after one, a track's
name is shown again only once an embedding of the face now in its box confirms it
(``tracks.py``).

Measured on the shared clip (a panning camera, three hard cuts) at 5, 10 and 25 processed
frames a second: the hue-saturation histograms of consecutive processed frames correlate at
0.27-0.53 across its cuts and at 0.89 or more everywhere else; those of a track's face (its
box and a margin) at 0.96 or more from frame to frame, and at 0.10 or less when a test clip
cuts from one person's photo to another's with the face at the same place (a cut the whole
frame's histogram does not see: most of the picture stays the same). A box's overlap (IoU)
with its previous one went down to 0.31 at 5 fps without a cut, and to 0.38 across the cut
where the tracker carried a name onto another face. So cuts are told by histograms, and a box
jump only by what no moving face does between two frames.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from facelens.models.base import Box, RGBImage

CUT_CORRELATION = 0.7  # consecutive processed frames correlating less: a cut
LOOK_CORRELATION = 0.5  # a track's face correlating less with its look on the frame before
JUMP_OVERLAP = 0.2  # a box overlapping its previous one less (IoU): a jump
JUMP_AREA = 1.6  # or one this many times larger or smaller
GAP_S = 0.5  # a face out of sight this long, then found again in the same track
_SMALL = (160, 90)  # frames are compared at this size (the histograms do not need more)


class CutDetector:
    """Tells, frame after frame, whether the picture cut to another shot."""

    def __init__(self) -> None:
        self._previous: npt.NDArray[Any] | None = None

    def cut(self, pixels: RGBImage) -> bool:
        """Whether ``pixels`` belongs to another shot than the frame given before it."""
        histogram = _histogram(cv2.resize(pixels, _SMALL, interpolation=cv2.INTER_AREA), [30, 32])
        previous, self._previous = self._previous, histogram
        if previous is None:
            return False
        return bool(cv2.compareHist(previous, histogram, cv2.HISTCMP_CORREL) < CUT_CORRELATION)


def _histogram(pixels: npt.NDArray[Any], bins: list[int]) -> npt.NDArray[Any]:
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)
    histogram: npt.NDArray[Any] = cv2.calcHist([hsv], [0, 1], None, bins, [0, 180, 0, 256])
    cv2.normalize(histogram, histogram)
    return histogram


def look(pixels: RGBImage, box: Box) -> npt.NDArray[Any] | None:
    """The colours of the face in ``box`` and a margin around it (hair, skin, collar)."""
    height, width = pixels.shape[:2]
    dx, dy = box.width // 5, box.height // 5
    around = Box(box.left - dx, box.top - dy, box.right + dx, box.bottom + dy).clipped(
        width, height
    )
    region = pixels[around.top : around.bottom, around.left : around.right]
    if region.size == 0:
        return None
    small = cv2.resize(np.ascontiguousarray(region), (48, 48), interpolation=cv2.INTER_AREA)
    return _histogram(small, [16, 8])


def looks_changed(before: npt.NDArray[Any] | None, after: npt.NDArray[Any] | None) -> bool:
    """Whether two looks of a track's face (:func:`look`) are of different faces."""
    if before is None or after is None:
        return False
    return bool(cv2.compareHist(before, after, cv2.HISTCMP_CORREL) < LOOK_CORRELATION)


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inner = Box(
        max(a.left, b.left), max(a.top, b.top), min(a.right, b.right), min(a.bottom, b.bottom)
    )
    union = a.area + b.area - inner.area
    return inner.area / union if union > 0 else 0.0


def jumped(before: Box, after: Box) -> bool:
    """Whether a face's box moved or resized more than a face does between two frames."""
    if overlap(before, after) < JUMP_OVERLAP:
        return True
    small, large = sorted((max(before.area, 1), max(after.area, 1)))
    return large / small > JUMP_AREA

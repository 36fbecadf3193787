"""Video clips made at test time from the shared photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens.core.pipeline import Engine

SIZE = (1280, 720)
BACKGROUND = (90, 110, 120)  # BGR: the same wall behind everybody


def face_at(engine: Engine, photo: Path, centre: tuple[int, int], width: int) -> np.ndarray:
    """A frame (BGR, SIZE) of ``photo`` moved and scaled so that its largest face is
    ``width`` pixels wide at ``centre``, on a plain background."""
    bgr = cv2.imread(str(photo))
    assert bgr is not None, photo
    faces = engine.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert faces, f"no face in {photo}"
    box = max(faces, key=lambda d: d.box.area).box
    scale = width / box.width
    x, y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    move = np.array([[scale, 0, centre[0] - scale * x], [0, scale, centre[1] - scale * y]])
    return cv2.warpAffine(bgr, move, SIZE, borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND)


def same_place_cut(
    engine: Engine, first: Path, second: Path, target: Path, *, seconds: float = 2.0
) -> Path:
    """An .mp4 at 25 fps: ``first``'s face for ``seconds``, then a hard cut to ``second``'s
    face at the very same place and size for as long. Most of the picture (the background)
    does not change: only the face does."""
    frames = [face_at(engine, photo, (640, 300), 160) for photo in (first, second)]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"mp4v"), 25, SIZE)
    for frame in frames:
        for _ in range(round(seconds * 25)):
            writer.write(frame)
    writer.release()
    assert target.stat().st_size > 1000
    return target

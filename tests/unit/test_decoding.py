"""The bound on decoded frame sizes set in OpenCV's own FFmpeg (no camera: its decoder
contexts, made as OpenCV makes them, and a real decode of a JPEG over the bound)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelens.video import decoding


def test_decoders_made_inside_take_the_limit_and_the_default_comes_back_after() -> None:
    libraries = decoding._libraries()
    assert libraries is not None, "the libavcodec inside OpenCV's wheel was not found"
    before = libraries.current()
    assert before is not None and before > 1_000_000_000  # FFmpeg's own: INT_MAX
    with decoding.pixels_limited(100_000) as limited:
        assert limited and libraries.current() == 100_000
    assert libraries.current() == before


def test_a_frame_over_the_limit_is_not_decoded_by_opencvs_ffmpeg(tmp_path: Path) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.full((480, 640, 3), 128, np.uint8))
    assert ok
    video = tmp_path / "frames.mjpeg"  # raw MJPEG: FFmpeg's mjpeg demuxer and decoder
    video.write_bytes(jpeg.tobytes() * 3)

    def frames(limit: int) -> int:
        with decoding.pixels_limited(limit):
            capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        count = 0
        while capture.read()[0]:
            count += 1
        capture.release()
        return count

    assert frames(640 * 480) == 3
    assert frames(640 * 480 - 1) == 0

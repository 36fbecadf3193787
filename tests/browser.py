"""Debian's Chromium driven by Playwright (``executable_path``: nothing is downloaded), and the
shared video clip as a file Chromium's fake camera can play."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def playwright_session() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium package.")
    with sync_playwright() as playwright:
        yield playwright


@contextmanager
def chromium(playwright: Playwright, *extra_args: str) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])
    try:
        yield launched
    finally:
        launched.close()


def fake_camera_args(video: Path) -> list[str]:
    """Chromium flags that grant the camera without asking and feed it from ``video`` (.y4m)."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]


def to_y4m(source: Path, target: Path, fps: int = 25) -> Path:
    """Transcode a video to YUV4MPEG2 (4:2:0), the raw format Chromium's fake camera reads."""
    capture = cv2.VideoCapture(str(source))
    frames = 0
    with target.open("wb") as out:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            height, width = frame.shape[:2]
            if frames == 0:
                out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
            frames += 1
    capture.release()
    if frames == 0:
        pytest.fail(f"{source}: OpenCV could not read a frame of the clip.")
    return target

"""Debian's Chromium driven by Playwright (``executable_path``: nothing is downloaded), and the
shared video clip as a file Chromium's fake camera can play."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

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


AXE_VERSION = "4.14.1"  # axe-core, Deque's accessibility rules engine, from the npm registry


def axe_script(cache: Path) -> Path:
    """axe-core's browser build, installed once with npm into ``cache``."""
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is missing: the accessibility test installs axe-core with it.")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(cache),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return script


def accessibility_violations(page: Page, script: Path) -> list[dict[str, object]]:
    """What axe-core finds on the page as it is now against WCAG 2.1 A and AA, serious or
    critical only; each with its rule id, help text and the elements concerned."""
    page.add_script_tag(path=str(script))
    found: list[dict[str, object]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
            return result.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => ({id: v.id, help: v.help,
                            nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
        }"""
    )
    return found

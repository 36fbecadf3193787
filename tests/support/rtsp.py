"""A real RTSP camera for the stream tests: GStreamer's RTSP server (Debian's
``gir1.2-gst-rtsp-server-1.0``, run by Debian's Python) streaming a video on a free loopback
port; it can be killed (connections cut) and started again on the same port."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import cv2
import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def _as_mjpeg_avi(video: Path, target: Path) -> Path:
    """The video as MJPEG in an .avi (what the server's GStreamer demuxes without FFmpeg)."""
    capture = cv2.VideoCapture(str(video))
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer: cv2.VideoWriter | None = None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if writer is None:
            height, width = frame.shape[:2]
            fourcc = cv2.VideoWriter.fourcc(*"MJPG")
            writer = cv2.VideoWriter(str(target), fourcc, rate, (width, height))
        writer.write(frame)
    capture.release()
    assert writer is not None, f"{video}: no frames"
    writer.release()
    return target


class RtspCamera:
    def __init__(self, video: Path, folder: Path) -> None:
        available = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True,
        )
        if available.returncode != 0:
            pytest.fail(
                "The RTSP tests need GStreamer's RTSP server for Debian's Python: scripts/test "
                "installs gir1.2-gst-rtsp-server-1.0, python3-gi and gstreamer1.0-plugins-good."
            )
        self.video = _as_mjpeg_avi(video, folder / "clip.avi")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/clip"

    def start(self) -> RtspCamera:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), str(self.video)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            assert self.process.poll() is None, "the RTSP server ended at start"
            assert time.monotonic() < deadline, "the RTSP server did not listen"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # a power cut, not a goodbye
            self.process.wait(timeout=10)
            self.process = None

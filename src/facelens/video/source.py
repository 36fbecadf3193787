"""Frames from a video file, an RTSP/HTTP(S) URL or a local camera, read by OpenCV (FFmpeg is
inside its wheel) on a thread of their own.

From a live source only the newest frame is kept: when recognition is slower than the source,
older frames are dropped (and counted), never queued, so the delay from frame to event stays
bounded. A live source that fails or ends reconnects with capped exponential back-off and full
jitter, saying why in its status. A file is read frame by frame as fast as it is processed,
none dropped, its times being the frames' own (so a file gives the same events every time),
and ends when it ends. Credentials in URLs never leave this module
unmasked.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelens.errors import SourceNotAllowed
from facelens.models.base import RGBImage
from facelens.system import redact
from facelens.system.backoff import backoff_s
from facelens.video.policy import SourcePolicy, Target, is_camera_index

log = logging.getLogger(__name__)

# A source that ran this long before failing was no flapping one: its back-off starts over.
STEADY_S = 30.0
# OpenCV reads its FFmpeg options from this variable at each open: process-wide, so it is set
# under a lock around the open (several sources of one 'watch' open on their own threads).
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPENING = threading.Lock()

RECONNECT_FIRST_S = 1.0
RECONNECT_CAP_S = 30.0
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000


def mask(source: str) -> str:
    """``source`` with any ``user:password@`` of a URL replaced by ``***@``, and the values of
    secret-looking query keys (``?api_key=``, ``&password=`` ...) by ``***``."""
    return redact.mask(source)


def is_live(source: str) -> bool:
    """Cameras and network streams are live (they reconnect); files end."""
    return is_camera_index(source) or source.startswith("/dev/") or "://" in source


@dataclass(frozen=True, slots=True)
class Frame:
    pixels: RGBImage
    number: int  # frames read from the source so far, this one included
    taken_at: float  # seconds: time.monotonic() when read live; a file's own time in it


@dataclass(frozen=True, slots=True)
class SourceStatus:
    state: str  # connecting, running, retrying, ended, stopped
    detail: str  # e.g. "retrying in 8 s: cannot open"
    frames_read: int
    frames_dropped: int
    reconnects: int


class FrameSource:
    """Reads ``source`` on a thread; :meth:`latest` hands out the newest unseen frame.
    ``policy`` says whether the source may be read at all (else :class:`SourceNotAllowed`),
    how FFmpeg may open it and how large its frames may be."""

    def __init__(self, source: str, policy: SourcePolicy) -> None:
        self.source = source
        self.shown = mask(source)
        self.live = is_live(source)
        self.policy = policy
        target = policy.check(source, self.shown, resolve=False)  # resolved at each open
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True  # the newest frame was handed out already
        self._stop = threading.Event()
        self._state, self._detail = "connecting", ""
        self._read = self._dropped = self._reconnects = 0
        if target.kind == "file" and not Path(str(target.open_as)).is_file():
            raise FileNotFoundError(source)
        self._thread = threading.Thread(target=self._run, name=f"source {self.shown}", daemon=True)

    def start(self) -> FrameSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=10)

    @property
    def ended(self) -> bool:
        """The source will give no more frames (a file at its end, or stopped)."""
        return not self._thread.is_alive() and self._taken

    def status(self) -> SourceStatus:
        with self._lock:
            return SourceStatus(
                self._state, self._detail, self._read, self._dropped, self._reconnects
            )

    def latest(self, timeout: float) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` s for one."""
        with self._lock:
            if self._taken:
                self._lock.wait_for(
                    lambda: not self._taken or self._stop.is_set() or not self._thread.is_alive(),
                    timeout,
                )
            if self._taken or self._frame is None:
                return None
            self._taken = True
            self._lock.notify_all()  # a file's reader waits for this to read on
            return self._frame

    # -- the reading thread -------------------------------------------------------------------

    def _set(self, state: str, detail: str = "") -> None:
        with self._lock:
            if (state, detail) != (self._state, self._detail):
                log.info("source %s: %s%s", self.shown, state, f" ({detail})" if detail else "")
            self._state, self._detail = state, detail

    def _open(self) -> tuple[cv2.VideoCapture | None, str]:
        """The opened capture, or None and why not. Frames over the pixel limit are refused
        here, on their declared size, before the first is decoded into an image."""
        try:  # again at each open: a host name may resolve elsewhere by now
            target = self.policy.check(self.source, self.shown)
        except SourceNotAllowed as exc:
            return None, exc.message
        capture = _capture(target)
        if not capture.isOpened():
            capture.release()
            return None, "cannot open"
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > self.policy.max_pixels:
            capture.release()
            return None, self._too_large(width, height)
        return capture, ""

    def _too_large(self, width: int, height: int) -> str:
        return f"frames of {width}x{height} exceed FACELENS_MAX_PIXELS ({self.policy.max_pixels})"

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._set("connecting")
            capture, why = self._open()
            if capture is not None:
                why, steady_s = self._read_all(capture)
                capture.release()
                if steady_s >= STEADY_S:  # a source that opens and ends at once backs off
                    failures = 0
            if not self.live:
                self._set("ended" if why == "ended" else "stopped", why)
                break
            if self._stop.is_set():
                break
            failures += 1
            wait = backoff_s(failures, RECONNECT_FIRST_S, RECONNECT_CAP_S)
            with self._lock:
                self._reconnects += 1
            self._set("retrying", f"retrying in {wait:.0f} s: {why}")
            self._stop.wait(wait)
        if self._stop.is_set():
            self._set("stopped")
        with self._lock:
            self._lock.notify_all()

    def _read_all(self, capture: cv2.VideoCapture) -> tuple[str, float]:
        """Read until the source fails or ends; why it stopped, and for how many seconds it
        delivered frames."""
        self._set("running")
        file_fps = capture.get(cv2.CAP_PROP_FPS) if not self.live else 0.0
        file_fps = file_fps if 0 < file_fps < 1000 else 25.0
        count = 0
        first = time.monotonic()
        while not self._stop.is_set():
            if not self.live:  # a file waits for its frame to be taken: none is dropped
                with self._lock:
                    self._lock.wait_for(lambda: self._taken or self._stop.is_set())
            ok, bgr = capture.read()
            if count == 0:
                first = time.monotonic()
            delivered_s = time.monotonic() - first if count else 0.0
            if not ok or bgr is None:
                why = "ended" if not self.live else "the stream stopped sending frames"
                return why, delivered_s
            height, width = bgr.shape[:2]
            if width * height > self.policy.max_pixels:  # grew after the first frames
                return self._too_large(width, height), delivered_s
            count += 1
            pixels: RGBImage = np.ascontiguousarray(
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8
            )
            taken_at = time.monotonic() if self.live else count / file_fps
            with self._lock:
                self._read += 1
                if not self._taken:
                    self._dropped += 1  # the one not handed out yet is replaced
                self._frame = Frame(pixels, self._read, taken_at)
                self._taken = False
                self._lock.notify_all()
        return "stopped", time.monotonic() - first if count else 0.0


def _capture(target: Target) -> cv2.VideoCapture:
    """``target`` opened by OpenCV, FFmpeg bound by the target's options."""
    if target.kind == "device":
        return cv2.VideoCapture(target.open_as)
    with _OPENING:
        before = os.environ.get(FFMPEG_OPTIONS)
        # Set, it replaces OpenCV's own default (RTSP over TCP): the options carry it.
        os.environ[FFMPEG_OPTIONS] = target.ffmpeg_options
        try:
            if target.kind == "url":  # FFmpeg would otherwise wait ~30 s on a dead stream
                timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
                timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
                return cv2.VideoCapture(str(target.open_as), cv2.CAP_FFMPEG, timeouts)
            return cv2.VideoCapture(str(target.open_as), cv2.CAP_FFMPEG)
        finally:
            if before is None:
                del os.environ[FFMPEG_OPTIONS]
            else:
                os.environ[FFMPEG_OPTIONS] = before

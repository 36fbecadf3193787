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
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelens import redact
from facelens.models.base import RGBImage

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 1.0
RECONNECT_CAP_S = 30.0
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 10_000


def mask(source: str) -> str:
    """``source`` with any ``user:password@`` of a URL replaced by ``***@``, and the values of
    secret-looking query keys (``?api_key=``, ``&password=`` ...) by ``***``."""
    return redact.mask(source)


def backoff_s(
    attempt: int, first: float = RECONNECT_FIRST_S, cap: float = RECONNECT_CAP_S
) -> float:
    """How long to wait before reconnect ``attempt`` (1, 2, ...): full jitter over a doubling
    window capped at ``cap``, so many cameras that drop at once do not retry in step."""
    return random.uniform(0, min(cap, first * 2 ** (attempt - 1)))


def is_live(source: str) -> bool:
    """Cameras and network streams are live (they reconnect); files end."""
    return source.isdigit() or source.startswith("/dev/") or "://" in source


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
    """Reads ``source`` on a thread; :meth:`latest` hands out the newest unseen frame."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.shown = mask(source)
        self.live = is_live(source)
        self._lock = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True  # the newest frame was handed out already
        self._stop = threading.Event()
        self._state, self._detail = "connecting", ""
        self._read = self._dropped = self._reconnects = 0
        if not self.live and not Path(source).is_file():
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

    def _open(self) -> cv2.VideoCapture | None:
        if self.source.isdigit():
            capture = cv2.VideoCapture(int(self.source))
        elif "://" in self.source:  # FFmpeg would otherwise wait ~30 s on a dead stream
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
            timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
            capture = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, timeouts)
        else:
            capture = cv2.VideoCapture(self.source)
        if capture.isOpened():
            return capture
        capture.release()
        return None

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._set("connecting")
            capture = self._open()
            if capture is None:
                why = "cannot open"
            else:
                failures = 0
                why = self._read_all(capture)
                capture.release()
            if not self.live:
                self._set("ended" if why == "ended" else "stopped", why)
                break
            if self._stop.is_set():
                break
            failures += 1
            wait = backoff_s(failures)
            with self._lock:
                self._reconnects += 1
            self._set("retrying", f"retrying in {wait:.0f} s: {why}")
            self._stop.wait(wait)
        if self._stop.is_set():
            self._set("stopped")
        with self._lock:
            self._lock.notify_all()

    def _read_all(self, capture: cv2.VideoCapture) -> str:
        """Read until the source fails or ends; why it stopped."""
        self._set("running")
        file_fps = capture.get(cv2.CAP_PROP_FPS) if not self.live else 0.0
        file_fps = file_fps if 0 < file_fps < 1000 else 25.0
        count = 0
        while not self._stop.is_set():
            if not self.live:  # a file waits for its frame to be taken: none is dropped
                with self._lock:
                    self._lock.wait_for(lambda: self._taken or self._stop.is_set())
            ok, bgr = capture.read()
            if not ok or bgr is None:
                return "ended" if not self.live else "the stream stopped sending frames"
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
        return "stopped"

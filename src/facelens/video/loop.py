"""Watching streams: each source's newest frame goes through its tracker, in turn, on one
engine; events are stored in the event log first, then handed to the caller (printed) and to
the delivery threads. The one frame loop of ``facelens watch`` and of a server's stream
process."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from facelens.core.annotate import KNOWN_COLOUR, UNKNOWN_COLOUR, Label, draw_labels
from facelens.core.matching import UNKNOWN
from facelens.errors import StorageError
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.video.source import Frame, FrameSource, mask
from facelens.video.tracks import StreamTracker

log = logging.getLogger(__name__)


def stream_name(source: str, taken: set[str]) -> str:
    """A short name for a source (file stem, camera index, host and path), unique in ``taken``."""
    if source.isdigit():
        base = f"camera{source}"
    elif "://" in source:
        parts = urlsplit(mask(source))
        base = (parts.hostname or "stream") + (
            f"-{PurePosixPath(parts.path).stem}" if PurePosixPath(parts.path).stem else ""
        )
    else:
        base = Path(source).stem or "stream"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


RATE_WINDOW_S = 5.0  # frames and embeddings per second: over this many seconds


class RateMeter:
    """Frames and embeddings per second over the last RATE_WINDOW_S seconds."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int, int]] = deque()

    def add(self, now: float, frames: int, embeddings: int) -> None:
        self._samples.append((now, frames, embeddings))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._samples and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()

    def rates(self, now: float) -> tuple[float, float]:
        """(frames, embeddings) per second lately; 0 for a stream that gave no frames."""
        self._forget(now)
        if len(self._samples) < 2:
            return 0.0, 0.0
        (t0, f0, e0), (t1, f1, e1) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-6)
        return round((f1 - f0) / span, 2), round((e1 - e0) / span, 2)


@dataclass(slots=True)
class Watched:
    source: FrameSource
    tracker: StreamTracker
    last_processed: float = -1e9
    finished: bool = False
    meter: RateMeter = field(default_factory=RateMeter)

    def status(self) -> dict[str, Any]:
        """What the stream does: its source's state, rates and counts (the status a server
        stream answers, and what its metrics are made of)."""
        source = self.source.status()
        fps, embeddings_per_s = self.meter.rates(time.monotonic())
        return {
            "state": source.state,
            "detail": source.detail,
            "fps": fps,
            "embeddings_per_s": embeddings_per_s,
            "frames_read": source.frames_read,
            "frames_dropped": source.frames_dropped,
            "reconnects": source.reconnects,
            **self.tracker.counts.as_dict(),
            # The faces on the newest processed frame (tracks kept a while out of sight are
            # not in view); a face in doubt (another shot, a jump) shows no name until it is
            # confirmed.
            "in_view": sorted(t.shown or UNKNOWN for t in self.tracker.in_view()),
        }


def annotated(frame: Frame, tracker: StreamTracker) -> np.ndarray:
    """The frame with the tracks seen on it boxed and named: a name only where an embedding
    of the face in the box confirmed it ("…" while it is being checked)."""
    labels = [
        Label(t.box, t.shown or "…", UNKNOWN_COLOUR if t.shown in (None, UNKNOWN) else KNOWN_COLOUR)
        for t in tracker.tracks.values()
        if t.last_seen == frame.taken_at
    ]
    return draw_labels(frame.pixels.copy(), labels)


class VideoOut:
    """Writes the processed frames of a stream, faces boxed and named, to an .mp4 file that
    plays at real speed: at the source's frame rate (a file's own; a live source's as read,
    measured over its first frames), each processed frame shown until the next one's time,
    so frames skipped (``--fps``) or dropped (recognition slower than a camera) leave no
    gap. A file processed whole gets each of its frames once, at its own rate."""

    MEASURE_FRAMES = 10  # the rate is measured over the first frames written ...
    MEASURE_S = 1.0  # ... or the first second of them, whichever comes first
    FALLBACK_FPS = 10.0  # a video of one frame (or of frames seconds apart): any rate does
    MAX_FPS = 1000.0  # a live source's burst does not make a rate past a file's largest
    MAX_HOLD_S = 5.0  # a frame is held at most this long (a camera away for minutes is cut)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fps: float | None = None  # known once measured
        self._writer: cv2.VideoWriter | None = None
        self._waiting: list[tuple[int, float, np.ndarray]] = []  # (number, time, BGR image)
        self._start = 0.0  # the time of the first frame
        self._cut = 0  # slots left out of long holds
        self._written = 0  # frames written, held ones included
        self._last: np.ndarray | None = None

    def __call__(self, watched: Watched, frame: Frame) -> None:
        drawn = cv2.cvtColor(annotated(frame, watched.tracker), cv2.COLOR_RGB2BGR)
        if self._writer is not None:
            self._put(frame.taken_at, drawn)
            return
        self._waiting.append((frame.number, frame.taken_at, drawn))
        first = self._waiting[0]
        if len(self._waiting) >= self.MEASURE_FRAMES or (
            frame.taken_at - first[1] >= self.MEASURE_S
        ):
            self._open()

    def _open(self) -> None:
        # Frames read per second of the source's time: a file's frames carry its own times,
        # a live source's the times they were read; numbers count every frame read, processed
        # or not. Pairs further apart than a second (a camera away) do not count.
        pairs = [
            (n1 - n0, t1 - t0)
            for (n0, t0, _), (n1, t1, _) in itertools.pairwise(self._waiting)
            if n1 > n0 and 0 < t1 - t0 <= self.MEASURE_S
        ]
        read, span = sum(n for n, _ in pairs), sum(t for _, t in pairs)
        self.fps = min(read / span, self.MAX_FPS) if pairs else self.FALLBACK_FPS
        _, t0, image = self._waiting[0]
        height, width = image.shape[:2]
        fourcc = cv2.VideoWriter.fourcc(*"mp4v")
        self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        self._start = t0
        waiting, self._waiting = self._waiting, []
        for _, taken_at, drawn in waiting:
            self._put(taken_at, drawn)

    def _put(self, taken_at: float, drawn: np.ndarray) -> None:
        assert self._writer is not None and self.fps is not None
        # The frame's place in the output; one that comes early (a live source's jitter)
        # takes the next free place rather than being lost.
        slot = round((taken_at - self._start) * self.fps) - self._cut
        latest = self._written - 1 + round(self.MAX_HOLD_S * self.fps)
        if slot > latest:
            self._cut += slot - latest
            slot = latest
        while self._last is not None and self._written < slot:
            self._writer.write(self._last)  # the previous frame, until this one's time
            self._written += 1
        self._writer.write(drawn)
        self._written += 1
        self._last = drawn

    def close(self) -> None:
        if self._writer is None and self._waiting:
            self._open()
        if self._writer is not None:
            self._writer.release()


def watch(
    streams: Sequence[Watched],
    events: EventLog,
    on_events: Callable[[list[Event]], None],
    *,
    fps: float | None,
    stop: threading.Event,
    on_frame: Callable[[Watched, Frame], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> list[StreamReport]:
    """Process frames until every source has ended or ``stop`` is set; then every track
    still there leaves. A file's frames wait for their embeddings (the same events every
    run); a live source's do not. ``on_frame`` is told each processed frame (after its
    events), ``on_tick`` is called on every turn, frames or not. Returns what each stream
    did."""

    emit = HeldEvents(events, on_events)
    try:
        while not stop.is_set():
            live = [w for w in streams if not w.finished]
            if not live:
                break
            wait = 0.5 / len(live)
            for watched in live:
                frame = watched.source.latest(timeout=wait)
                if frame is None:
                    if watched.source.ended:
                        watched.finished = True
                        emit(watched.tracker.finish())
                    elif watched.source.live:
                        emit(watched.tracker.expire(time.monotonic()))
                    continue
                if fps and frame.taken_at - watched.last_processed < 1.0 / fps:
                    continue  # over the asked rate: this frame is skipped
                watched.last_processed = frame.taken_at
                emit(watched.tracker.process(frame, wait=not watched.source.live))
                counts = watched.tracker.counts
                watched.meter.add(time.monotonic(), counts.frames, counts.embeddings)
                if on_frame is not None:
                    on_frame(watched, frame)
            emit([])  # events held after a failed write are tried again now and then
            if on_tick is not None:
                on_tick()
    finally:
        for watched in streams:
            if not watched.finished:
                watched.finished = True
                emit(watched.tracker.finish())
            watched.source.stop()
        emit.last_try()
    return [_report(w) for w in streams]


class HeldEvents:
    """Events on their way out: stored in the log first (durable), then told to
    ``on_events``. A storage failure (a full disk) does not stop the stream: its events wait
    here, in order, and are stored with the next ones, or every RETRY_S, once the log can be
    written again; past MAX_HELD the oldest are dropped (counted and logged)."""

    MAX_HELD = 1000  # a crop each (~10-30 KB): bounded memory on a small box
    RETRY_S = 5.0

    def __init__(self, events: EventLog, on_events: Callable[[list[Event]], None]) -> None:
        self.events = events
        self.on_events = on_events
        self.held: deque[Event] = deque()
        self.dropped = 0
        self.failure: StorageError | None = None
        self._tried_at = 0.0

    def __call__(self, found: list[Event]) -> None:
        if not found and (not self.held or time.monotonic() - self._tried_at < self.RETRY_S):
            return
        for event in found:
            if len(self.held) == self.MAX_HELD:
                self.held.popleft()
                self.dropped += 1
            self.held.append(event)
        batch = list(self.held)
        self._tried_at = time.monotonic()
        try:
            self.events.add(batch)
        except StorageError as exc:
            if self.failure is None:
                log.error(
                    "events not stored, held until the event log can be written again "
                    "(up to %d): %s",
                    self.MAX_HELD,
                    exc.message,
                )
            self.failure = exc
            return
        self.held.clear()
        if self.failure is not None:
            log.warning(
                "the event log is written again: %d held events stored, %d dropped",
                len(batch),
                self.dropped,
            )
            self.failure, self.dropped = None, 0
        self.on_events(batch)

    def last_try(self) -> None:
        """At the end: store what is held, or say how many events are lost."""
        if self.held:
            self._tried_at = 0.0
            self([])
        if self.held or self.dropped:
            log.error(
                "%d events were never stored (%s)",
                len(self.held) + self.dropped,
                self.failure.message if self.failure else "the event log could not be written",
            )


@dataclass(slots=True)
class StreamReport:
    name: str
    source: str
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    embeddings: int = 0
    tracks: int = 0
    people: set[str] = field(default_factory=set)


def _report(watched: Watched) -> StreamReport:
    status = watched.source.status()
    counts = watched.tracker.counts
    return StreamReport(
        watched.tracker.stream,
        watched.source.shown,
        status.frames_read,
        counts.frames,
        status.frames_dropped,
        status.reconnects,
        counts.embeddings,
        counts.tracks,
        set(watched.tracker.names_seen),
    )
